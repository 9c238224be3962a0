"""The health half of the ops dashboard, as of now: every job (from
``JobRun``), the payout queue (the outbox the wallet service acknowledges),
ingestion (the event stream's consumer group in Redis, the quarantine) and
the projections.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, replace
from typing import Any, cast

import redis
from django.conf import settings
from django.db import connection
from django.db.models import Count, Max, Min

from jobs.display import real_seconds, time_lapse
from jobs.models import DONE_STATUSES, JobRun, JobRunStatus
from jobs.registry import Daily, JobSpec, all_jobs
from ledger.models import Event, ProjectionCheckpoint, QuarantinedInput, QuarantineStatus
from monitoring.metrics import consumer_backlog


@dataclass(frozen=True)
class JobHealth:
    name: str
    description: str
    schedule: str
    last: JobRun | None
    last_success_at: dt.datetime | None
    state: str
    late: bool
    # Over the last 24 hours: runs whose runner died, and users (or assets) left out.
    abandoned: int = 0
    exceptions: int = 0
    # The last run's length in real seconds (jobs.display), None while it runs.
    duration: float | None = None


def _interval(spec: JobSpec) -> dt.timedelta:
    return spec.schedule if isinstance(spec.schedule, dt.timedelta) else dt.timedelta(days=1)


def _schedule_text(spec: JobSpec) -> str:
    if isinstance(spec.schedule, Daily):
        return f"daily at {spec.schedule.hour:02d}:{spec.schedule.minute:02d} UTC"
    seconds = int(spec.schedule.total_seconds())
    if seconds < 60:
        return f"every {seconds} s"
    return f"every {seconds // 60} min" if seconds < 3600 else f"every {seconds // 3600} h"


# Abandoned runs and exceptions are counted over this window.
HEALTH_WINDOW = dt.timedelta(hours=24)


# Under a time-lapse, the least real time a job may go without success before
# it counts as late. The time-lapse's scheduler (demo drive_jobs) starts an
# interval job at most every 2 real seconds and runs a simulated day's daily
# jobs one after the other, so at 2000x a 5-minute job succeeds only every
# hour or so of lapsed time: judged by its schedule alone, every healthy
# frequent job would be late. 30 real seconds is many of its loops, and still
# well under the minute a simulated day lasts at that speed.
LAPSE_REAL_GRACE = dt.timedelta(seconds=30)


def allowed_gap(spec: JobSpec) -> dt.timedelta:
    """How long after its last success a job counts as late: one interval, plus
    a grace of one more interval, at least 10 minutes and at most 2 hours.
    Under a time-lapse, never less than ``LAPSE_REAL_GRACE`` of real time, on
    the lapsed clock."""
    interval = _interval(spec)
    grace = min(max(interval, dt.timedelta(minutes=10)), dt.timedelta(hours=2))
    lapse = time_lapse()
    if lapse is not None:
        return max(interval + grace, LAPSE_REAL_GRACE * lapse.speed)
    return interval + grace


def job_health(now: dt.datetime) -> list[JobHealth]:
    """Every declared job with its last run, its last success (a ``partial``
    run did its work too) and its troubles of the last 24 hours."""
    specs = all_jobs()
    since = now - HEALTH_WINDOW
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT j.name, last.id, ok.started_at
            FROM unnest(%s::text[]) AS j(name)
            LEFT JOIN LATERAL (
                SELECT id FROM jobs_jobrun WHERE job = j.name
                ORDER BY started_at DESC, id DESC LIMIT 1
            ) last ON true
            LEFT JOIN LATERAL (
                SELECT started_at FROM jobs_jobrun WHERE job = j.name AND status = ANY(%s)
                ORDER BY started_at DESC, id DESC LIMIT 1
            ) ok ON true
            """,
            [[spec.name for spec in specs], [status.value for status in DONE_STATUSES]],
        )
        found = {name: (run_id, success) for name, run_id, success in cursor.fetchall()}
        # The window's runs are one primary-key range (as in monitoring.metrics).
        cursor.execute(
            """
            SELECT job, count(*) FROM jobs_jobrun
            WHERE id > coalesce(
                    (SELECT id FROM jobs_jobrun WHERE started_at < %(since)s
                     ORDER BY id DESC LIMIT 1), 0)
                AND started_at >= %(since)s AND status = %(abandoned)s
            GROUP BY job
            """,
            {"since": since, "abandoned": JobRunStatus.ABANDONED.value},
        )
        abandoned = dict(cursor.fetchall())
        cursor.execute(
            "SELECT job, count(*) FROM jobs_jobexception WHERE created_at >= %s GROUP BY job",
            [since],
        )
        exceptions = dict(cursor.fetchall())
    runs = JobRun.objects.in_bulk([run_id for run_id, _ in found.values() if run_id is not None])
    result = []
    for spec in specs:
        run_id, success = found.get(spec.name, (None, None))
        last = runs.get(run_id) if run_id is not None else None
        state = last.status if last is not None else "never run"
        # Both times are read from the one clock, lapsed under a time-lapse.
        late = success is not None and now - success > allowed_gap(spec)
        result.append(
            JobHealth(
                spec.name,
                spec.description,
                _schedule_text(spec),
                last,
                success,
                state,
                late,
                abandoned=abandoned.get(spec.name, 0),
                exceptions=exceptions.get(spec.name, 0),
                duration=real_seconds(last.started_at, last.finished_at) if last else None,
            )
        )
    return result


@dataclass(frozen=True)
class PayoutQueue:
    """Credits the wallet service has not acknowledged applying yet."""

    unacknowledged: int
    # Not relayed to the payout stream yet (``publish_payouts``).
    unpublished: int
    oldest_id: int | None
    oldest_at: dt.datetime | None
    oldest_age_seconds: float | None


def payout_queue(now: dt.datetime) -> PayoutQueue:
    """The payout outbox's backlog: what ``GET /api/v1/payouts`` would still
    hand out (not acknowledged through ``POST /api/v1/payouts/{id}/ack``) and
    how long the oldest of it has waited. Counted through the partial indexes
    ``payout_pending`` and ``payout_unpublished``, which hold exactly these ids."""
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT
                (SELECT count(*) FROM ledger_payoutinstruction WHERE acked_at IS NULL),
                (SELECT count(*) FROM ledger_payoutinstruction WHERE published_at IS NULL),
                oldest.id, oldest.created_at
            FROM (SELECT 1) one
            LEFT JOIN LATERAL (
                SELECT id, created_at FROM ledger_payoutinstruction
                WHERE acked_at IS NULL ORDER BY id LIMIT 1
            ) oldest ON true
            """
        )
        row = cursor.fetchone()
    assert row is not None
    unacknowledged, unpublished, oldest_id, oldest_at = row
    age = max((now - oldest_at).total_seconds(), 0.0) if oldest_at is not None else None
    return PayoutQueue(unacknowledged, unpublished, oldest_id, oldest_at, age)


@dataclass(frozen=True)
class StreamLag:
    """The inbound event stream as its consumer group sees it."""

    stream: str
    group: str
    problem: str = ""
    length: int | None = None
    consumers: int | None = None
    # Delivered to a consumer, not acknowledged yet.
    pending: int | None = None
    # Not delivered to any consumer yet (Redis 7 reports it; None when unknown).
    undelivered: int | None = None
    oldest_id: str | None = None
    oldest_at: dt.datetime | None = None
    lag_seconds: float | None = None


Entry = tuple[bytes, dict[bytes, bytes]]


def _entry_time(entry_id: str) -> dt.datetime:
    milliseconds = int(entry_id.split("-", 1)[0])
    return dt.datetime.fromtimestamp(milliseconds / 1000, tz=dt.UTC)


def _entry_key(entry_id: str) -> tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def stream_lag(
    client: redis.Redis, now: dt.datetime, *, stream: str | None = None, group: str | None = None
) -> StreamLag:
    """The oldest stream entry not yet processed (pending in a consumer, or not
    delivered yet) and how long ago it was added: the ingestion lag."""
    stream = stream or settings.EVENT_STREAM
    group = group or settings.EVENT_CONSUMER_GROUP
    try:
        length = int(client.xlen(stream))
        if length == 0 and not client.exists(stream):
            return StreamLag(stream, group, problem="the stream does not exist yet", length=0)
        groups = cast(list[dict[str, Any]], client.xinfo_groups(stream))
        info = next((g for g in groups if _text(g["name"]) == group), None)
        candidates: list[str] = []
        if info is None:
            # No consumer has started: everything in the stream is waiting.
            first = cast(list[Entry], client.xrange(stream, min="-", max="+", count=1))
            candidates += [_text(entry_id) for entry_id, _ in first]
            lag = StreamLag(
                stream,
                group,
                problem="the consumer group does not exist yet (no consumer has started)",
                length=length,
                consumers=0,
                pending=0,
                undelivered=length,
            )
        else:
            pending = int(info["pending"])
            # Redis before 7 (the embedded one) reports no lag: counted there, once.
            _, _, undelivered = consumer_backlog(client, stream, group)
            if pending:
                summary = cast(dict[str, Any], client.xpending(stream, group))
                candidates.append(_text(summary["min"]))
            # The first entry after the last one handed to a consumer.
            following = cast(
                list[Entry],
                client.xrange(stream, min=f"({_text(info['last-delivered-id'])}", max="+", count=1),
            )
            candidates += [_text(entry_id) for entry_id, _ in following]
            lag = StreamLag(
                stream,
                group,
                length=length,
                consumers=int(info["consumers"]),
                pending=pending,
                undelivered=undelivered,
            )
    except redis.RedisError as exc:
        return StreamLag(stream, group, problem=f"Redis did not answer: {exc}")
    if not candidates:
        return lag
    oldest = min(candidates, key=_entry_key)
    oldest_at = _entry_time(oldest)
    return replace(
        lag,
        oldest_id=oldest,
        oldest_at=oldest_at,
        lag_seconds=max((now - oldest_at).total_seconds(), 0.0),
    )


@dataclass(frozen=True)
class QuarantineHealth:
    open: int
    oldest_open_at: dt.datetime | None
    by_reason: list[tuple[str, int]]


def quarantine_health() -> QuarantineHealth:
    open_entries = QuarantinedInput.objects.filter(status=QuarantineStatus.OPEN)
    oldest = open_entries.aggregate(at=Min("received_at"))["at"]
    by_reason = list(
        open_entries.values("reason")
        .annotate(n=Count("id"))
        .order_by("-n", "reason")
        .values_list("reason", "n")
    )
    return QuarantineHealth(sum(n for _, n in by_reason), oldest, by_reason)


@dataclass(frozen=True)
class ProjectionHealth:
    projector: str
    position: int
    behind: int
    updated_at: dt.datetime


@dataclass(frozen=True)
class LogHealth:
    head: int
    last_appended_at: dt.datetime | None
    projections: list[ProjectionHealth]


def log_health() -> LogHealth:
    """The event log's head and how far each projector has folded it."""
    head = Event.objects.aggregate(head=Max("position"))["head"] or 0
    last = Event.objects.order_by("-position").values_list("received_at", flat=True).first()
    return LogHealth(
        head,
        last,
        [
            ProjectionHealth(c.projector, c.position, head - c.position, c.updated_at)
            for c in ProjectionCheckpoint.objects.order_by("projector")
        ],
    )
