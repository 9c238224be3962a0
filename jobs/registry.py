"""The catalogue of scheduled jobs, declared next to the code they run.

Each app lists its jobs in ``<app>/jobs.py`` with :func:`job`. A job is a plain
function that takes its business key as an argument, ``day`` (a date: the
business day it decides) or ``at`` (an aware UTC instant), and returns its
counts. The same declaration feeds ``run_job``, the Celery task and the Beat
schedule, so a job can never be scheduled in one way and rerun in another.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

JobKey = Literal["day", "instant"]
Counts = dict[str, Any]


@dataclass(frozen=True)
class Daily:
    """Run once a day at hh:mm UTC."""

    hour: int
    minute: int = 0


Schedule = dt.timedelta | Daily


@dataclass(frozen=True)
class JobSpec:
    name: str
    func: Callable[..., Counts | None]
    key: JobKey
    schedule: Schedule
    description: str
    # A day job scheduled at instant T decides day T.date() + day_offset: the
    # default -1 settles yesterday once it is complete.
    day_offset: int = -1
    # False for a job that only delivers what others decided (the payout
    # relay): replay does not run it again.
    decides: bool = True

    def scheduled_key(self, now: dt.datetime) -> dict[str, Any]:
        """The business key Beat passes when it fires at ``now``."""
        if self.key == "day":
            return {"day": now.date() + dt.timedelta(days=self.day_offset)}
        return {"at": now}


_REGISTRY: dict[str, JobSpec] = {}
JobFunction = TypeVar("JobFunction", bound=Callable[..., Any])


def job(
    name: str,
    *,
    key: JobKey,
    schedule: Schedule,
    description: str,
    day_offset: int = -1,
    decides: bool = True,
) -> Callable[[JobFunction], JobFunction]:
    def register(func: JobFunction) -> JobFunction:
        existing = _REGISTRY.get(name)
        if existing is not None and existing.func.__qualname__ != func.__qualname__:
            raise ValueError(f"job {name!r} is declared twice")
        _REGISTRY[name] = JobSpec(name, func, key, schedule, description, day_offset, decides)
        return func

    return register


def all_jobs() -> list[JobSpec]:
    return sorted(_REGISTRY.values(), key=lambda spec: spec.name)


def get_job(name: str) -> JobSpec:
    try:
        return _REGISTRY[name]
    except KeyError:
        known = ", ".join(sorted(_REGISTRY)) or "none"
        raise KeyError(f"no job named {name!r}; known jobs: {known}") from None
