"""How draft Earn terms are backtested (replay.forecasts): placed on the window,
snapshotted, accrued and distributed by the program's own jobs, their
figures read.

Who uses Earn is the record: activations and deactivations are the
product's own events (``earn.activated``, ``earn.deactivated``), which the
backtest does not copy with the exchange's facts, so this forecast copies
the recorded ones into the scratch log (same ids and instants) before the
window is walked; a snapshot only sees those at or before its instant.
Wallets and positions are the recorded facts. The draft's terms apply from
the window's first day; ``earn_snapshot``, ``accrue_earn_interest`` and
``distribute_earn_interest`` run as Beat runs them. The pool is funded
without limit in the scratch database, so every day's interest is paid: the
cost is compared with the draft's top-ups in the report.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from earn import selectors
from earn.jobs import LATE_DAYS, POOL_PROGRAM, SNAPSHOT_LATENESS
from earn.models import EarnDistribution
from ledger.event_store import DomainEvent, append_domain_events
from ledger.money import for_people
from replay import forecasts
from replay.forecasts import Context, Figures, Refused, Rows, Series, Window, per_asset, per_day

SECTION = "earn_terms"
ACTIVATIONS = ("earn.activated", "earn.deactivated")
# ``--live`` names the live Earn program.
LIVE_NAME = "earn"
CHUNK = 5_000

ASSUMPTIONS = (
    "users activate and deactivate Earn as they did: the recorded activations are copied"
    " into the scratch log; their wallets and positions are the recorded ones",
    "the draft's terms apply from the window's first day; snapshots at the draft's times,"
    " each day accrued and paid the day after, by the program's own jobs",
    "the Earn pool is funded without limit in the scratch database, so every day's interest"
    " is paid; the cost is compared with the draft's top-ups",
    "cost per day: the interest of that day (paid the day after)",
)


def place(section: Any, context: Context) -> Any:
    """The draft's one set of terms, in force from the window's first day."""
    if not isinstance(section, list) or len(section) != 1 or not isinstance(section[0], dict):
        raise Refused(f"{SECTION}: a backtest takes a draft of one set of terms")
    return [{**section[0], "effective_from": context.window.first_day.isoformat()}]


class EarnForecast:
    jobs: tuple[str, ...] = ("earn_snapshot", "accrue_earn_interest", "distribute_earn_interest")

    def __init__(self, context: Context) -> None:
        self.context = context
        self.name = "Earn terms"

    def finish(self) -> dt.datetime:
        # The last day is accrued at 00:20 and paid at 00:40 the day after.
        return self.context.window.end + dt.timedelta(minutes=40)

    def budget_key(self) -> tuple[str, str]:
        return POOL_PROGRAM, "USDT"

    def wants(self, job: str, at: dt.datetime) -> bool:
        window = self.context.window
        if job == "earn_snapshot":
            # Only instants of the window's days (a run takes those of its cutoff's day).
            return window.start <= at - SNAPSHOT_LATENESS < window.end
        # Runs before the window's first day ends accrue and pay days before it.
        return at >= window.start + dt.timedelta(days=1)

    def act(self, at: dt.datetime) -> None:
        """Users need no assumed behaviour: their activations are the record."""

    def figures(self, rows: Rows) -> Figures:
        return earn_figures(rows, self.context.window, self.name)


def _copy_activations(context: Context) -> int:
    """The recorded activations and deactivations up to the window's end,
    appended to the scratch log as they were (folded into ``earn_activation``)."""
    found = context.source(
        "SELECT event_id, type, occurred_at, user_id, data FROM ledger_event"
        " WHERE origin = 'rewards' AND type = ANY(%(types)s) AND occurred_at < %(end)s"
        " ORDER BY position",
        {"types": list(ACTIVATIONS), "end": context.window.end},
    )
    events = [
        DomainEvent(event_id=e, type=t, occurred_at=at, user_id=user, data=data)
        for e, t, at, user, data in found
    ]
    for first in range(0, len(events), CHUNK):
        append_domain_events(events[first : first + CHUNK])
    return len(events)


def _before_the_window(context: Context) -> None:
    """The days before the window are not the forecast's: they count as paid,
    so the distribution's catch-up of earlier days does not accrue them."""
    first = context.window.first_day
    EarnDistribution.objects.bulk_create(
        EarnDistribution(
            day=first - dt.timedelta(days=back),
            distributed_at=context.window.start,
            credits=0,
            totals={},
        )
        for back in range(1, LATE_DAYS + 1)
    )


def programs(section: Any, context: Context) -> list[forecasts.Program]:
    _copy_activations(context)
    _before_the_window(context)
    forecasts.fund_without_limit(
        POOL_PROGRAM, list(selectors.terms_for(context.window.first_day).assets)
    )
    return [EarnForecast(context)]


def earn_figures(rows: Rows, window: Window, name: str) -> Figures:
    """The interest of the window's days, who earned it and what was paid, by
    the same SQL in the scratch database (the draft) and the live one (``--live``)."""
    params = {
        "first": window.first_day,
        "last": window.last_day,
        "start": window.start,
        "end": window.end,
    }
    ((active,),) = rows(
        "SELECT count(DISTINCT user_id) FROM earn_snapshot WHERE at >= %(start)s AND at < %(end)s",
        params,
    )
    ((earning, boosted),) = rows(
        "SELECT count(DISTINCT user_id) FILTER (WHERE interest > 0),"
        " count(DISTINCT user_id) FILTER (WHERE interest > 0 AND boosted_portion > 0)"
        " FROM earn_dailyinterest i WHERE i.day >= %(first)s AND i.day <= %(last)s",
        params,
    )
    by_asset = rows(
        "SELECT asset, count(*), sum(interest) FROM earn_dailyinterest i"
        " WHERE i.day >= %(first)s AND i.day <= %(last)s AND interest > 0 GROUP BY 1 ORDER BY 1",
        params,
    )
    paid = rows(
        "SELECT i.asset, sum(p.amount) FROM earn_dailyinterest i JOIN ledger_paiditem p"
        " ON p.payer = 'earn.interest' AND p.item_id = i.id"
        " WHERE i.day >= %(first)s AND i.day <= %(last)s GROUP BY 1 ORDER BY 1",
        params,
    )
    cost = per_asset(
        window,
        rows(
            "SELECT day, asset, sum(interest) FROM earn_dailyinterest i"
            " WHERE i.day >= %(first)s AND i.day <= %(last)s GROUP BY 1, 2",
            params,
        ),
    )
    # The pool's first asset is always charted, even when nothing is owed in it.
    cost.setdefault("USDT", [Decimal(0)] * len(window.days))
    earning_per_day = per_day(
        window,
        rows(
            "SELECT day, count(DISTINCT user_id) FROM earn_dailyinterest i"
            " WHERE i.day >= %(first)s AND i.day <= %(last)s AND interest > 0 GROUP BY 1",
            params,
        ),
    )
    return Figures(
        name=name,
        figures=[
            ("users active at a snapshot", f"{active:,}"),
            ("users earning", f"{earning:,}"),
            ("  at the boosted APR", f"{boosted:,}"),
            *(
                (f"interest {asset}", f"{int(count):,} days, {for_people(Decimal(total), asset)}")
                for asset, count, total in by_asset
            ),
            *((f"paid {asset}", for_people(Decimal(amount), asset)) for asset, amount in paid),
        ],
        cost=cost,
        series=[Series("earning", "Users earning interest, per day", "users", earning_per_day)],
    )


def live(name: str, context: Context) -> Figures | None:
    if name != LIVE_NAME:
        return None
    return earn_figures(context.source, context.window, LIVE_NAME)


forecasts.register(
    forecasts.Forecast(
        section=SECTION,
        assumptions=ASSUMPTIONS,
        place=place,
        programs=programs,
        live=live,
    )
)
