"""Per-user exceptions: one user's bad data never stops a job for everyone.

A job that meets a user (or an asset) it cannot decide records a
:class:`~jobs.models.JobException` and goes on with everyone else; the run then
ends ``partial`` ("succeeded with exceptions") with ``exceptions: N`` in its
counts, and ops see who was left out and why (admin, metrics, dashboard).

Job functions take only their day or instant, so the run is passed implicitly:
``run_job`` installs a recorder for the run in a context variable, and
:func:`job_exceptions` joins it. A job function called directly (a test, a
shell, another job) gets a recorder of its own, whose exceptions are written
with no run when the call ends, and counted in what the job returns.

:func:`isolate_users` is the set-based counterpart: it runs a statement over a
chunk of users inside a savepoint and, when the database refuses the chunk's
data (numeric overflow, an invalid value), bisects the chunk down to the
single users at fault, records each of them and keeps everyone else's work.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from decimal import DecimalException
from typing import TypeVar

import psycopg
from django.db import DataError, transaction

from config import clock
from jobs.models import JobException, JobRun

logger = logging.getLogger(__name__)

T = TypeVar("T")

# Django wraps the errors of execute(); psycopg's own COPY raises psycopg's.
# A Decimal computation refused by Python (an invalid operation on a user's
# numbers) is that user's data too.
DATA_ERRORS: tuple[type[Exception], ...] = (DataError, psycopg.DataError, DecimalException)

DEFAULT_CHUNK = 5_000


@dataclass(frozen=True)
class Recorded:
    user_id: str
    scope: str
    reason: str
    detail: str


@dataclass
class ExceptionRecorder:
    """The exceptions of one run (or of one direct call of a job function)."""

    job: str
    run: JobRun | None = None
    items: list[Recorded] = field(default_factory=list)

    def record(self, *, scope: str, reason: str, user_id: str = "", detail: str = "") -> None:
        self.items.append(Recorded(user_id, scope, _one_line(reason), detail))
        logger.warning("job %s left out %s (%s): %s", self.job, user_id or "-", scope, reason)

    @contextmanager
    def staged(self) -> Iterator[None]:
        """Exceptions recorded inside are dropped if the block raises: the work
        they belong to was rolled back and will be tried again."""
        mark = len(self.items)
        try:
            yield
        except BaseException:
            del self.items[mark:]
            raise

    def save(self) -> int:
        """Write the exceptions recorded so far; returns how many there are."""
        now = clock.now()
        JobException.objects.bulk_create(
            JobException(
                run=self.run,
                job=self.job,
                user_id=item.user_id,
                scope=item.scope,
                reason=item.reason,
                detail=item.detail,
                created_at=now,
            )
            for item in self.items
        )
        return len(self.items)


_CURRENT: ContextVar[ExceptionRecorder | None] = ContextVar("job_exceptions", default=None)


@contextmanager
def run_recorder(job: str, run: JobRun) -> Iterator[ExceptionRecorder]:
    """For ``run_job``: collect the exceptions of ``run``; the runner saves them."""
    recorder = ExceptionRecorder(job, run)
    token = _CURRENT.set(recorder)
    try:
        yield recorder
    finally:
        _CURRENT.reset(token)


@dataclass
class ExceptionWindow:
    """What a job function sees: the recorder, and how many exceptions were
    recorded since it began (for its counts)."""

    recorder: ExceptionRecorder
    start: int

    @property
    def count(self) -> int:
        return len(self.recorder.items) - self.start

    def record(self, *, scope: str, reason: str, user_id: str = "", detail: str = "") -> None:
        self.recorder.record(scope=scope, reason=reason, user_id=user_id, detail=detail)

    def counts(self) -> dict[str, int]:
        """``{"exceptions": N}`` when some were recorded, else nothing."""
        return {"exceptions": self.count} if self.count else {}


@contextmanager
def job_exceptions(job: str) -> Iterator[ExceptionWindow]:
    """The recorder of the run in progress, or (called directly) a recorder
    of this call whose exceptions are written, with no run, when it ends."""
    current = _CURRENT.get()
    if current is not None:
        yield ExceptionWindow(current, len(current.items))
        return
    recorder = ExceptionRecorder(job)
    token = _CURRENT.set(recorder)
    try:
        yield ExceptionWindow(recorder, 0)
    except BaseException:
        _CURRENT.reset(token)
        _save_quietly(recorder)
        raise
    _CURRENT.reset(token)
    recorder.save()


def record_exception(*, scope: str, reason: str, user_id: str = "", detail: str = "") -> None:
    """Record an exception in the run in progress (or the direct call's recorder)."""
    current = _CURRENT.get()
    if current is None:
        raise RuntimeError("record_exception outside a job: use job_exceptions(job)")
    current.record(scope=scope, reason=reason, user_id=user_id, detail=detail)


def isolate_users(
    users: Sequence[str],
    work: Callable[[Sequence[str]], T],
    *,
    chunk_size: int = DEFAULT_CHUNK,
    what: str = "",
    errors: tuple[type[Exception], ...] = DATA_ERRORS,
) -> list[T]:
    """Run ``work(chunk)`` over ``users`` in chunks, each in a savepoint, and
    return the results of the chunks that succeeded.

    A chunk the database refuses for its data (``errors``) is rolled back to
    its savepoint and split in two, down to single users; a single user that
    still fails is recorded as an exception (scope ``user``) with the error's
    message, and everyone else's work is kept. A failure on a chunk costs
    about 2 log2(chunk) more statements; chunks without bad data cost one
    savepoint each. ``work`` must have no effect outside the database other
    than its result (it may run again on part of its chunk) and may record
    exceptions itself: those of a chunk rolled back are dropped with it.
    Any other error propagates: it is not one user's data."""
    recorder = _CURRENT.get()
    if recorder is None:
        raise RuntimeError("isolate_users outside a job: use job_exceptions(job)")
    results: list[T] = []
    pending = [list(users[i : i + chunk_size]) for i in range(0, len(users), chunk_size)]
    pending.reverse()
    while pending:
        chunk = pending.pop()
        try:
            with recorder.staged(), transaction.atomic():
                results.append(work(chunk))
        except errors as error:
            if len(chunk) > 1:
                half = len(chunk) // 2
                pending.extend([chunk[half:], chunk[:half]])  # the first half next
                continue
            reason = f"{type(error).__name__}: {error}"
            recorder.record(user_id=chunk[0], scope="user", reason=reason, detail=what)
    return results


def _one_line(text: str) -> str:
    lines = [line.strip() for line in str(text).splitlines() if line.strip()]
    return " ".join(lines)[:1000]


def _save_quietly(recorder: ExceptionRecorder) -> None:
    # The call failed: keep what it recorded if the database still lets us,
    # without hiding the failure itself.
    try:
        with transaction.atomic():
            recorder.save()
    except Exception:
        logger.exception("job %s: its exceptions could not be recorded", recorder.job)
