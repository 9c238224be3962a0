"""Surviving an outage of Redis or PostgreSQL, and showing that it happened.

PostgreSQL is the truth and Redis carries work; either may go away for a while
(a restart, a failover, a network cut). No process of the service exits for
that: the API lets requests through unthrottled while Redis is gone
(``monitoring.throttling``), the stream consumer waits and retries the same
batch (``ledger.stream``), a scheduled job is retried later (``jobs.tasks``).
This module holds what they share:

- :func:`outage_of`: whether an exception means a dependency did not answer
  (as opposed to a bug, or bad data that would fail again);
- :class:`Backoff`: exponential waits with jitter, so that many processes
  coming back do not hit a recovering server at the same instant;
- :func:`count`: tallies of what was done because of an outage, kept in
  PostgreSQL (``OutageCount``) and reported by ``/metrics``. A process adds
  its own in memory and writes them every few seconds; during a database
  outage they wait in memory until it answers again;
- :class:`ConsumerBeat` and :func:`consumer_states`: each stream consumer's
  last word (consuming, waiting for what since when, stopped) for ``/readyz``,
  ``/metrics`` and the dashboard.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
import random
import socket
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import psycopg
import redis
from django.db import DatabaseError, InterfaceError, OperationalError, connection, transaction

from config import clock

logger = logging.getLogger(__name__)

REDIS = "redis"
DATABASE = "database"

RATE_LIMIT = "rate_limit"
CONSUMER = "consumer"


def job_component(name: str) -> str:
    return f"job:{name}"


# --- what counts as an outage ----------------------------------------------------------

# SQLSTATE classes of a server that is gone, starting, stopping, out of
# resources or told to end the session (pg_terminate_backend is 57P01):
# nothing the statement could have caused, and gone once the server is back.
_TRANSIENT_CLASSES = ("08", "53", "57", "58")
# Transient whatever the class: serialization failures and deadlocks (40), a
# lock wait that timed out (55P03).
_TRANSIENT_STATES = ("40001", "40P01", "55P03")
# Class 57 but caused by the statement: a statement timeout (or a cancel) would
# only time out again on the same data.
_NOT_TRANSIENT_STATES = ("57014",)
# Redis replies of a server that cannot serve yet, or not writes: a replica
# after a failover (READONLY), a primary it lost (MASTERDOWN), a full disk
# (MISCONF), a cluster resharding (TRYAGAIN, CLUSTERDOWN).
_REDIS_TRANSIENT_REPLIES = ("READONLY", "MASTERDOWN", "MISCONF", "TRYAGAIN", "CLUSTERDOWN")


def outage_of(exc: BaseException) -> str | None:
    """``"redis"`` or ``"database"`` when ``exc`` says that dependency did not
    answer (worth waiting for and retrying the same work), else None."""
    if isinstance(exc, redis.ConnectionError | redis.TimeoutError):
        return REDIS  # BusyLoadingError (a restart loading its data) is a ConnectionError
    if isinstance(exc, redis.ResponseError):
        return REDIS if str(exc).startswith(_REDIS_TRANSIENT_REPLIES) else None
    if isinstance(exc, InterfaceError | psycopg.InterfaceError):
        return DATABASE
    if isinstance(exc, OperationalError | psycopg.OperationalError):
        # Django's error wraps the driver's, which carries the SQLSTATE (some
        # paths, such as COPY, raise the driver's own); a failure to connect or
        # a connection lost has none.
        state = getattr(exc, "sqlstate", None) or getattr(exc.__cause__, "sqlstate", None)
        if state is None or state in _TRANSIENT_STATES:
            return DATABASE
        if state.startswith(_TRANSIENT_CLASSES) and state not in _NOT_TRANSIENT_STATES:
            return DATABASE
    return None


def database_connection_broken() -> bool:
    """Whether this thread's database connection is open but no longer usable
    (an error that was not recognised as an outage may still have left it so)."""
    if connection.connection is None:
        return False
    try:
        return not connection.is_usable()
    except Exception:
        return True


def discard_database_connection() -> None:
    """Close this thread's database connection, so the next query opens a new
    one: after the server went away the old one only ever fails. Left alone
    inside a transaction (the caller's atomic block decides)."""
    if connection.in_atomic_block:
        return
    with contextlib.suppress(Exception):
        connection.close()


def describe(exc: BaseException) -> str:
    """One line naming the error, for logs, probes and the dashboard."""
    return " ".join(f"{type(exc).__name__}: {exc}".split())[:500]


@dataclass(frozen=True)
class Backoff:
    """Waits before retry n (1, 2, ...): ``first`` doubling up to ``cap``, each
    drawn between half and all of that (jitter)."""

    first: float = 0.5
    cap: float = 30.0

    def delay(self, attempt: int) -> float:
        ceiling = min(self.cap, self.first * 2 ** min(max(attempt - 1, 0), 30))
        return random.uniform(ceiling / 2, ceiling)  # noqa: S311 - jitter, not a secret


# --- tallies ---------------------------------------------------------------------------

# A process writes what it counted at most this often (and when asked to).
FLUSH_EVERY_SECONDS = 5.0

_lock = threading.Lock()
_pending: Counter[tuple[str, str]] = Counter()
_last_flush = 0.0


def count(component: str, dependency: str, n: int = 1) -> None:
    """Add ``n`` to what ``component`` did because ``dependency`` did not answer."""
    with _lock:
        _pending[(component, dependency)] += n
        due = time.monotonic() - _last_flush >= FLUSH_EVERY_SECONDS
    if due:
        flush()


def flush() -> bool:
    """Write this process's pending tallies; False (they stay pending) when the
    database does not take them."""
    global _last_flush
    with _lock:
        taken = dict(_pending)
        _pending.clear()
        _last_flush = time.monotonic()
    if not taken:
        return True
    keys = sorted(taken)  # the same row order in every writer: no deadlock
    try:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(
                """
                INSERT INTO monitoring_outagecount (component, dependency, count, last_at)
                SELECT t.component, t.dependency, t.n, now()
                FROM unnest(%s::text[], %s::text[], %s::bigint[]) AS t(component, dependency, n)
                ON CONFLICT (component, dependency) DO UPDATE
                SET count = monitoring_outagecount.count + EXCLUDED.count, last_at = now()
                """,
                [[k[0] for k in keys], [k[1] for k in keys], [taken[k] for k in keys]],
            )
    except (DatabaseError, InterfaceError):
        with _lock:
            _pending.update(taken)
        if database_connection_broken():
            discard_database_connection()
        return False
    return True


def pending() -> dict[tuple[str, str], int]:
    """What this process counted and has not written yet."""
    with _lock:
        return dict(_pending)


def outage_counts(cursor: Any) -> dict[tuple[str, str], int]:
    cursor.execute("SELECT component, dependency, count FROM monitoring_outagecount")
    return {(component, dependency): int(n) for component, dependency, n in cursor.fetchall()}


# --- stream consumers ------------------------------------------------------------------

CONSUMING = "consuming"
WAITING = "waiting"
STOPPED = "stopped"
# Derived, never written: no word from a consumer for SILENT_AFTER.
SILENT = "silent"

# A consumer writes its heartbeat this often, waiting or not.
HEARTBEAT_SECONDS = 5.0
# Six heartbeats missed: the process died, hangs, or cannot reach the database.
SILENT_AFTER = dt.timedelta(seconds=30)
# Consumers shown: those heard from in this window, not stopped.
LISTED_WINDOW = dt.timedelta(hours=1)


@dataclass
class ConsumerBeat:
    """Writes one consumer process's state to ``monitoring_consumerheartbeat``.

    A write that fails (the database is the dependency that is down) is
    dropped: the next one says it again, and a silent row says enough."""

    name: str
    stream: str
    group: str
    host: str = field(default_factory=lambda: f"{socket.gethostname()}:{os.getpid()}")
    started_at: dt.datetime = field(default_factory=clock.now)
    state: str = CONSUMING
    waiting_for: str = ""
    waiting_since: dt.datetime | None = None
    attempts: int = 0
    reason: str = ""
    _written: float = field(default=-1e18, repr=False)

    def consuming(self) -> None:
        self.state, self.waiting_for, self.waiting_since = CONSUMING, "", None
        self.attempts, self.reason = 0, ""
        self.write()

    def waiting(self, dependency: str, since: dt.datetime, attempts: int, reason: str) -> None:
        self.state, self.waiting_for, self.waiting_since = WAITING, dependency, since
        self.attempts, self.reason = attempts, reason
        self.write()

    def stopped(self) -> None:
        self.state = STOPPED
        self.write()

    def tick(self) -> None:
        """Write if the last write is HEARTBEAT_SECONDS old."""
        if time.monotonic() - self._written >= HEARTBEAT_SECONDS:
            self.write()

    def write(self) -> bool:
        self._written = time.monotonic()
        try:
            with connection.cursor() as cursor:
                cursor.execute(
                    """
                    INSERT INTO monitoring_consumerheartbeat (name, stream, "group", host,
                        started_at, seen_at, state, waiting_for, waiting_since, attempts, reason)
                    VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
                    ON CONFLICT (name) DO UPDATE SET stream = EXCLUDED.stream,
                        "group" = EXCLUDED."group", host = EXCLUDED.host,
                        started_at = EXCLUDED.started_at, seen_at = EXCLUDED.seen_at,
                        state = EXCLUDED.state, waiting_for = EXCLUDED.waiting_for,
                        waiting_since = EXCLUDED.waiting_since, attempts = EXCLUDED.attempts,
                        reason = EXCLUDED.reason
                    """,
                    [
                        self.name,
                        self.stream,
                        self.group,
                        self.host,
                        self.started_at,
                        clock.now(),
                        self.state,
                        self.waiting_for,
                        self.waiting_since,
                        self.attempts,
                        self.reason,
                    ],
                )
        except (DatabaseError, InterfaceError):
            if database_connection_broken():
                discard_database_connection()
            return False
        return True


@dataclass(frozen=True)
class ConsumerState:
    name: str
    stream: str
    group: str
    host: str
    state: str  # consuming, waiting, silent
    seen_at: dt.datetime
    seen_seconds_ago: float
    waiting_for: str = ""
    waiting_since: dt.datetime | None = None
    attempts: int = 0
    reason: str = ""

    def as_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "state": self.state,
            "seen_seconds_ago": round(self.seen_seconds_ago, 1),
        }
        if self.state == WAITING or (self.state == SILENT and self.waiting_for):
            body["waiting_for"] = self.waiting_for
            body["since"] = self.waiting_since.isoformat() if self.waiting_since else None
            body["retries"] = self.attempts
            body["reason"] = self.reason
        return body


def consumer_states(now: dt.datetime | None = None) -> list[ConsumerState]:
    """Every consumer heard from in the last hour and not stopped, by name."""
    now = now or clock.now()
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT name, stream, "group", host, state, seen_at, waiting_for, waiting_since,
                attempts, reason
            FROM monitoring_consumerheartbeat
            WHERE seen_at >= %s AND state <> %s
            ORDER BY name
            """,
            [now - LISTED_WINDOW, STOPPED],
        )
        rows = cursor.fetchall()
    states = []
    for name, stream, group, host, state, seen_at, waiting_for, since, attempts, reason in rows:
        age = max((now - seen_at).total_seconds(), 0.0)
        states.append(
            ConsumerState(
                name,
                stream,
                group,
                host,
                SILENT if now - seen_at > SILENT_AFTER else state,
                seen_at,
                age,
                waiting_for,
                since,
                attempts,
                reason,
            )
        )
    return states


def consumers_summary(states: list[ConsumerState]) -> str:
    """One word for all: ``none`` heard from, some ``silent``, some ``waiting``, or ``ok``."""
    kinds = {state.state for state in states}
    if not kinds:
        return "none"
    if SILENT in kinds:
        return SILENT
    if WAITING in kinds:
        return WAITING
    return "ok"
