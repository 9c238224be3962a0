"""The one clock.

Every part of the product reads the current instant from :func:`now`. Jobs
never call it inside their logic: they take their day or instant as an
argument, and only their schedulers (Beat, the command line) ask the clock.
``FROZEN_NOW`` (RFC 3339) freezes the clock for a whole process, which tests,
reruns and acceptance runs use. ``TIME_LAPSE`` (``<instant>@<unix seconds>x<speed>``)
makes it run faster: the clock reads ``<instant>`` at the real moment ``<unix
seconds>`` and advances ``<speed>`` times as fast as real time, the same in
every process that inherits the variable; the demo's time-lapse plays a whole
campaign with it. Production settings refuse both.
"""

from __future__ import annotations

import datetime as dt
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

UTC = dt.UTC


def parse_instant(text: str) -> dt.datetime:
    """Parse an RFC 3339 instant with an offset and return it in UTC."""
    value = dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    if value.tzinfo is None:
        raise ValueError(f"instant {text!r} has no UTC offset")
    return value.astimezone(UTC)


# Set while one unit of work (a job run, a top-up) stamps everything it writes
# with one instant: see :func:`pinned`.
_pinned: ContextVar[dt.datetime | None] = ContextVar("clock_pinned", default=None)


@contextmanager
def pinned(at: dt.datetime) -> Iterator[None]:
    """Make :func:`now` read ``at`` in this context: a job run's decisions are
    all stamped with the instant the run started, never with the moments its
    statements happened to execute, so the same run replayed from the log
    (``replay``) writes the same rows and events, byte for byte."""
    token = _pinned.set(at)
    try:
        yield
    finally:
        _pinned.reset(token)


def now() -> dt.datetime:
    pinned_at = _pinned.get()
    if pinned_at is not None:
        return pinned_at
    frozen = os.environ.get("FROZEN_NOW")
    if frozen:
        return parse_instant(frozen)
    lapse = os.environ.get("TIME_LAPSE")
    if lapse:
        return lapsed(lapse, time.time())
    return dt.datetime.now(tz=UTC)


def real_now() -> dt.datetime:
    """The wall clock, ignoring ``FROZEN_NOW`` and ``TIME_LAPSE``: only for what
    the outside world checks against real time (a JWT's expiry)."""
    return dt.datetime.now(tz=UTC)


def start_time_lapse(speed: int) -> str:
    """The ``TIME_LAPSE`` value for a clock that starts now, ``speed`` times as fast."""
    return time_lapse(now(), time.time(), speed)


def time_lapse(start: dt.datetime, origin: float, speed: int) -> str:
    """The ``TIME_LAPSE`` value for a clock reading ``start`` at real ``origin``."""
    return f"{start.isoformat()}@{origin:.6f}x{speed}"


def lapsed(spec: str, real: float) -> dt.datetime:
    """The time-lapse clock's reading at the real moment ``real`` (unix seconds)."""
    try:
        start_text, rest = spec.rsplit("@", 1)
        origin_text, speed_text = rest.split("x", 1)
        start, origin, speed = parse_instant(start_text), float(origin_text), int(speed_text)
    except ValueError:
        raise ValueError(
            f"TIME_LAPSE {spec!r}: expected <instant>@<unix seconds>x<speed>"
        ) from None
    elapsed_us = round((real - origin) * 1_000_000) * speed
    return start + dt.timedelta(microseconds=elapsed_us)


def today() -> dt.date:
    return now().date()


def start_of_day(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time.min, tzinfo=UTC)
