"""A backtest asked for in the admin runs in the background, as a Celery task."""

from __future__ import annotations

import datetime as dt
import logging
import traceback

from celery import shared_task

from config import clock
from replay import backtest
from replay.forecasts import Refused, Window
from replay.models import Backtest, BacktestStatus
from replay.scratch import current_database

logger = logging.getLogger(__name__)


@shared_task(name="replay.run_backtest")
def run_backtest(backtest_id: int) -> str:
    """Run a queued backtest once (a second delivery finds it taken) and store its report."""
    taken = Backtest.objects.filter(pk=backtest_id, status=BacktestStatus.QUEUED).update(
        status=BacktestStatus.RUNNING, started_at=clock.now()
    )
    if not taken:
        return "not queued"
    request = Backtest.objects.get(pk=backtest_id)
    seed = backtest.parse_seed(request.seed)
    Backtest.objects.filter(pk=backtest_id).update(seed=seed)
    try:
        report = backtest.launch(
            request.draft,
            Window(request.first_day, request.last_day),
            seed=seed,
            step=dt.timedelta(minutes=request.step_minutes),
            live=request.live or None,
            # One scratch database per request: two ops may run backtests at once.
            into=f"{current_database()}_backtest_{request.pk}",
        )
    except (Refused, RuntimeError) as failure:
        _finish(request, BacktestStatus.FAILED, error=str(failure))
        return "failed"
    except Exception:
        logger.exception("backtest #%s failed", backtest_id)
        _finish(request, BacktestStatus.FAILED, error=traceback.format_exc()[-4000:])
        raise
    _finish(request, BacktestStatus.SUCCEEDED, report=report)
    return "succeeded"


def _finish(request: Backtest, status: str, *, error: str = "", report: dict | None = None) -> None:
    Backtest.objects.filter(pk=request.pk).update(
        status=status, error=error, report=report, finished_at=clock.now()
    )
