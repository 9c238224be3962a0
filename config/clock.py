"""The one clock.

Every part of the product reads the current instant from :func:`now`. Jobs
never call it inside their logic: they take their day or instant as an
argument, and only their schedulers (Beat, the command line) ask the clock.
``FROZEN_NOW`` (RFC 3339) freezes the clock for a whole process, which tests,
reruns and acceptance runs use; production settings refuse it.
"""

from __future__ import annotations

import datetime as dt
import os

UTC = dt.UTC


def parse_instant(text: str) -> dt.datetime:
    """Parse an RFC 3339 instant with an offset and return it in UTC."""
    value = dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    if value.tzinfo is None:
        raise ValueError(f"instant {text!r} has no UTC offset")
    return value.astimezone(UTC)


def now() -> dt.datetime:
    frozen = os.environ.get("FROZEN_NOW")
    if frozen:
        return parse_instant(frozen)
    return dt.datetime.now(tz=UTC)


def today() -> dt.date:
    return now().date()


def start_of_day(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time.min, tzinfo=UTC)
