"""How job runs are shown to people (the job-run admin, the ops dashboard).

A run's times are read from the one clock (``config.clock``). Under a
time-lapse that clock runs ``speed`` times as fast, so a run that took 0.2 real
seconds is recorded as lasting 0.2 x speed seconds; people want the real
figure. Production refuses the time-lapse, so there the two are the same.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from config import clock
from ledger.money import for_people


@dataclass(frozen=True)
class TimeLapse:
    # The lapsed clock's reading when the time-lapse began, and how many
    # lapsed seconds pass in one real second.
    start: dt.datetime
    speed: int


def time_lapse() -> TimeLapse | None:
    """The time-lapse the clock runs on (``TIME_LAPSE``), if any.

    ``FROZEN_NOW`` wins over it in ``clock.now()``, so a frozen clock has none.
    """
    spec = os.environ.get("TIME_LAPSE")
    if not spec or os.environ.get("FROZEN_NOW"):
        return None
    try:
        start_text, rest = spec.rsplit("@", 1)
        speed = int(rest.split("x", 1)[1])
        return TimeLapse(clock.parse_instant(start_text), speed)
    except (ValueError, IndexError):
        raise ValueError(
            f"TIME_LAPSE {spec!r}: expected <instant>@<unix seconds>x<speed>"
        ) from None


def real_seconds(started_at: dt.datetime, finished_at: dt.datetime | None) -> float | None:
    """How long a run took in real time (None while it runs).

    A run that started at or after the time-lapse began was timed on the
    lapsed clock: its recorded length is divided by the speed. An earlier run
    was timed on the real clock and is shown as recorded.
    """
    if finished_at is None:
        return None
    seconds = (finished_at - started_at).total_seconds()
    lapse = time_lapse()
    if lapse is not None and started_at >= lapse.start:
        seconds /= lapse.speed
    return seconds


def duration_text(seconds: float | None) -> str:
    """Seconds as the largest units that matter: 0.004 s, 0.4 s, 12 s, 3 min 5 s, 2 h 10 min, 3 d 4 h."""
    if seconds is None:
        return ""
    total = float(seconds)
    if total < 60:
        # Many runs take milliseconds, which "0.0 s" would hide.
        if total < 0.1:
            return f"{total:.3f} s"
        return f"{total:.1f} s" if total < 10 else f"{total:.0f} s"
    whole = int(total)
    days, rest = divmod(whole, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {minutes} min"
    return f"{minutes} min {secs} s"


# A job reports amounts as decimal strings (``format_amount``): shown to people
# with ``for_people``. Other strings (days, keys, messages) are shown as they are.
_DECIMAL = re.compile(r"-?\d+\.\d+")


def count_text(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return for_people(Decimal(repr(value)))
    if isinstance(value, str) and _DECIMAL.fullmatch(value):
        return for_people(Decimal(value))
    return str(value)


def counts_text(counts: dict[str, Any] | None) -> list[tuple[str, str]]:
    """A run's counts as (name, value) pairs for people, in the job's order."""
    return [(str(key), count_text(value)) for key, value in (counts or {}).items()]
