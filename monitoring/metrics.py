"""Prometheus metrics, computed when Prometheus scrapes ``/metrics``.

The service runs as many processes on many machines (web workers, Celery
workers, stream consumers), so counters kept in one process's memory would
show whichever worker answered the scrape. Every value here is read instead,
at scrape time, from the two places every process shares: PostgreSQL and
Redis. Each read is one aggregate statement over a small table or an index
range, never a query per row and never a scan of a large table:

- ingestion outcomes come from the tallies ingestion keeps in its own
  transaction (``monitoring.tallies`` says why not a count over the log);
- the open quarantine is counted through its (status, received_at) index;
- job outcomes come from ``JobRun``: the latest run of each job (the run for
  its latest business key) at the end of the (job, key) index, and the runs of
  the last 24 hours as one primary-key range (runs are numbered in the order
  they start); the users jobs left out (``JobException``) through its time index;
- credits come from the funding accounts: a funding account (one program, one
  asset) only ever receives top-ups and pays users, so what it has credited is
  its top-ups minus its balance. Top-ups are a handful of transactions found
  by the (kind, posted_at) index; the payout tables themselves, one row per
  credit, are never scanned;
- consumer lag is Redis's own bookkeeping of the consumer group (XINFO);
- the event log's chain head (``ledger.chain``): the last link, and the last
  link recorded before today (UTC) began, both found through an index of the
  links;
- outages come from ``monitoring.outages``: what processes did because Redis
  or PostgreSQL did not answer (rate-limit checks let through, consumer and
  job retries), counted in PostgreSQL so that a Redis outage is counted by the
  store that outlives it, and each stream consumer's last heartbeat.

Every scrape reads under a statement timeout, so a slow database makes the
scrape fail fast instead of piling up. If the database or Redis does not
answer, the other's metrics are still reported and
``rewards_scrape_source_up`` says which one failed.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable
from typing import Any, cast

import redis
from django.conf import settings
from django.db import connection, transaction
from django.http import HttpRequest, HttpResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4, generate_latest
from prometheus_client.registry import Collector, CollectorRegistry

from config import clock
from jobs.models import DONE_STATUSES, JobRunStatus
from jobs.registry import all_jobs
from ledger import chain
from monitoring import outages
from monitoring.tallies import ACCEPTED, DUPLICATE, REJECTED

logger = logging.getLogger(__name__)

# Runs are counted, and the longest found, over this window.
JOB_WINDOW = dt.timedelta(hours=24)
# On Redis before 7, or after entries were deleted, Redis cannot say the lag;
# it is then counted, up to this many entries.
LAG_COUNT_LIMIT = 10_000
REDIS_TIMEOUT_SECONDS = 2.0
# ledger.bookkeeping.fund_account records every top-up under this kind.
TOP_UP_KIND = "funding.top_up"
UNKNOWN_TYPE = "unknown"

Families = list[Metric]


class RewardsCollector(Collector):
    """Reads every metric of the service from PostgreSQL and Redis on each scrape."""

    def describe(self) -> Iterable[Metric]:
        # Nothing to announce ahead: no query may run when the collector is registered.
        return []

    def collect(self) -> Iterable[Metric]:
        up = GaugeMetricFamily(
            "rewards_scrape_source_up",
            "1 if the source answered this scrape, 0 if its metrics are missing from it.",
            labels=["source"],
        )
        for source, read in (("database", database_metrics), ("redis", stream_metrics)):
            try:
                families = read()
            except Exception:
                logger.exception("metrics: reading from %s failed", source)
                up.add_metric([source], 0)
                continue
            up.add_metric([source], 1)
            yield from families
        yield up


def database_metrics() -> Families:
    # What this process counted and has not written yet: a scrape of it is exact.
    outages.flush()
    with transaction.atomic(), connection.cursor() as cursor:
        # SET LOCAL: the timeout ends with this transaction, not with the connection.
        cursor.execute("SET LOCAL statement_timeout = '5s'")
        return [
            *ingestion_metrics(cursor),
            *quarantine_metrics(cursor),
            *job_metrics(cursor),
            *credit_metrics(cursor),
            *payout_metrics(cursor),
            *outage_metrics(cursor),
            *consumer_metrics(),
            *chain_metrics(),
        ]


def ingestion_metrics(cursor: Any) -> Families:
    """Inputs each door accepted, found duplicate, and rejected, by event type."""
    ingested = CounterMetricFamily(
        "rewards_events_ingested",
        "Events appended to the log, by door and event type.",
        labels=["source", "type"],
    )
    duplicate = CounterMetricFamily(
        "rewards_events_duplicate",
        "Re-deliveries of an event already stored with the same body, by door and type.",
        labels=["source", "type"],
    )
    rejected = CounterMetricFamily(
        "rewards_events_rejected",
        "Inputs refused and quarantined, by door, claimed event type and reason.",
        labels=["source", "type", "reason"],
    )
    cursor.execute(
        "SELECT source, event_type, outcome, reason, count FROM monitoring_ingestcount"
        " ORDER BY source, event_type, outcome, reason"
    )
    for source, event_type, outcome, reason, count in cursor.fetchall():
        label = event_type or UNKNOWN_TYPE
        if outcome == ACCEPTED:
            ingested.add_metric([source, label], count)
        elif outcome == DUPLICATE:
            duplicate.add_metric([source, label], count)
        elif outcome == REJECTED:
            rejected.add_metric([source, label, reason], count)
    return [ingested, duplicate, rejected]


def quarantine_metrics(cursor: Any) -> Families:
    """The quarantine's size: inputs waiting for ops to replay or discard them."""
    family = GaugeMetricFamily(
        "rewards_quarantine_open",
        "Quarantined inputs still open (neither replayed nor discarded), by reason.",
        labels=["reason"],
    )
    cursor.execute(
        "SELECT reason, count(*) FROM ledger_quarantinedinput WHERE status = 'open'"
        " GROUP BY reason ORDER BY reason"
    )
    for reason, count in cursor.fetchall():
        family.add_metric([reason], count)
    return [family]


def job_metrics(cursor: Any) -> Families:
    """Outcomes and durations of the scheduled jobs, from their run records."""
    now = clock.now()
    names = [spec.name for spec in all_jobs()]
    statuses = [status.value for status in JobRunStatus]
    runs = GaugeMetricFamily(
        "rewards_job_runs",
        "Runs started in the last 24 hours, by job and outcome (running, succeeded, partial:"
        " succeeded with exceptions, failed, skipped, abandoned: its runner died).",
        labels=["job", "status"],
    )
    longest = GaugeMetricFamily(
        "rewards_job_duration_seconds_max",
        "The longest finished run of the last 24 hours, by job.",
        labels=["job"],
    )
    last_duration = GaugeMetricFamily(
        "rewards_job_last_duration_seconds",
        "How long the latest run that did its work (succeeded, partial or failed) took.",
        labels=["job"],
    )
    last_status = GaugeMetricFamily(
        "rewards_job_last_status",
        "1 for the outcome (succeeded, partial or failed) of each job's latest run that did"
        " its work.",
        labels=["job", "status"],
    )
    last_success = GaugeMetricFamily(
        "rewards_job_last_success_timestamp_seconds",
        "When each job's latest successful (or partial) run finished (unix time).",
        labels=["job"],
    )
    exceptions = GaugeMetricFamily(
        "rewards_job_exceptions",
        "Users (or assets) left out for their data by the runs of the last 24 hours, by job.",
        labels=["job"],
    )
    # The runs of the window are one primary-key range: its lower end is the
    # newest run that started before the window, found by walking the key back
    # from the newest run (it stops at the window's edge).
    cursor.execute(
        """
        SELECT job, status, count(*),
            max(extract(epoch FROM finished_at - started_at)) FILTER (WHERE finished_at IS NOT NULL)
        FROM jobs_jobrun
        WHERE id > coalesce(
                (SELECT id FROM jobs_jobrun WHERE started_at < %(since)s ORDER BY id DESC LIMIT 1), 0)
            AND started_at >= %(since)s
        GROUP BY job, status
        """,
        {"since": now - JOB_WINDOW},
    )
    counted: dict[tuple[str, str], int] = {}
    slowest: dict[str, float] = {}
    for job, status, count, seconds in cursor.fetchall():
        counted[(job, status)] = count
        if seconds is not None:
            slowest[job] = max(slowest.get(job, 0.0), float(seconds))
    for job in sorted({*names, *(job for job, _ in counted)}):
        for status in statuses:
            runs.add_metric([job, status], counted.get((job, status), 0))
        if job in slowest:
            longest.add_metric([job], slowest[job])
    # The latest run of each job is the run for its latest business key (a
    # day or an instant, both ISO text that sorts in time order): the
    # (job, key) index walked back from its end, whatever the job's schedule.
    cursor.execute(
        """
        SELECT j.name, last.status,
            extract(epoch FROM last.finished_at - last.started_at),
            extract(epoch FROM ok.finished_at)
        FROM unnest(%(names)s::varchar[]) AS j(name)
        LEFT JOIN LATERAL (
            SELECT status, started_at, finished_at FROM jobs_jobrun r
            WHERE r.job = j.name AND r.status = ANY(%(worked)s)
            ORDER BY r.key DESC, r.id DESC LIMIT 1
        ) last ON true
        LEFT JOIN LATERAL (
            SELECT finished_at FROM jobs_jobrun r
            WHERE r.job = j.name AND r.status = ANY(%(done)s)
            ORDER BY r.key DESC, r.id DESC LIMIT 1
        ) ok ON true
        ORDER BY j.name
        """,
        {
            "names": names,
            "worked": [status.value for status in (*DONE_STATUSES, JobRunStatus.FAILED)],
            "done": [status.value for status in DONE_STATUSES],
        },
    )
    for job, status, seconds, succeeded_at in cursor.fetchall():
        if status is not None:
            last_duration.add_metric([job], float(seconds))
            last_status.add_metric([job, status], 1)
        if succeeded_at is not None:
            last_success.add_metric([job], float(succeeded_at))
    # Exceptions of direct calls (no run) count under their job too.
    cursor.execute(
        "SELECT job, count(*) FROM jobs_jobexception WHERE created_at >= %s GROUP BY job",
        [now - JOB_WINDOW],
    )
    left_out = dict(cursor.fetchall())
    for job in sorted({*names, *left_out}):
        exceptions.add_metric([job], left_out.get(job, 0))
    return [runs, longest, last_duration, last_status, last_success, exceptions]


def credit_metrics(cursor: Any) -> Families:
    """What each program has paid its users, what it was given, and what it has left."""
    credited = CounterMetricFamily(
        "rewards_credited",
        "Amount credited to users from a program's funding account, by program and asset.",
        labels=["program", "asset"],
    )
    funded = CounterMetricFamily(
        "rewards_funded",
        "Amount the treasury moved into a program's funding account, by program and asset.",
        labels=["program", "asset"],
    )
    balance = GaugeMetricFamily(
        "rewards_funding_balance",
        "What a program's funding account still holds, by program and asset.",
        labels=["program", "asset"],
    )
    # A funding account never credited anyone before it was topped up, so the
    # top-ups name every account that matters.
    cursor.execute(
        """
        SELECT a.program, a.asset, f.funded, a.balance
        FROM (
            SELECT p.account_id, sum(p.amount) AS funded
            FROM ledger_ledgertransaction t JOIN ledger_posting p ON p.transaction_id = t.id
            WHERE t.kind = %(kind)s AND p.amount > 0
            GROUP BY p.account_id
        ) f
        JOIN ledger_account a ON a.id = f.account_id AND a.kind = 'funding'
        ORDER BY a.program, a.asset
        """,
        {"kind": TOP_UP_KIND},
    )
    for program, asset, top_ups, left in cursor.fetchall():
        # Prometheus carries float64: amounts are computed as Decimal (the
        # subtraction below included) and turned to float only here, for
        # dashboards; exact figures are the ledger's.
        funded.add_metric([program, asset], float(top_ups))
        balance.add_metric([program, asset], float(left))
        credited.add_metric([program, asset], float(top_ups - left))
    return [credited, funded, balance]


def payout_metrics(cursor: Any) -> Families:
    """The payout queue: credits the wallet service has not acknowledged
    applying yet, and how long the oldest of them has waited."""
    family = GaugeMetricFamily(
        "rewards_payout_oldest_unacked_age_seconds",
        "Age of the oldest payout instruction the wallet service has not acknowledged (0: none).",
    )
    unacked = GaugeMetricFamily(
        "rewards_payout_unacked",
        "Payout instructions the wallet service has not acknowledged yet.",
    )
    # The partial index payout_pending holds exactly the unacknowledged ids:
    # both figures are one statement over it, as long as the queue is.
    cursor.execute(
        """
        SELECT count(*),
            (SELECT created_at FROM ledger_payoutinstruction
             WHERE acked_at IS NULL ORDER BY id LIMIT 1)
        FROM ledger_payoutinstruction WHERE acked_at IS NULL
        """
    )
    count, oldest = cursor.fetchone()
    age = max((clock.now() - oldest).total_seconds(), 0.0) if oldest is not None else 0.0
    family.add_metric([], age)
    unacked.add_metric([], count)
    return [family, unacked]


def outage_metrics(cursor: Any) -> Families:
    """What was done because Redis or PostgreSQL did not answer, since the start."""
    fail_open = CounterMetricFamily(
        "rewards_rate_limit_fail_open",
        "API rate-limit checks let through unthrottled because Redis did not answer.",
    )
    consumer = CounterMetricFamily(
        "rewards_event_consumer_retries",
        "Stream consumer retries of the same work after a dependency did not answer.",
        labels=["dependency"],
    )
    job = CounterMetricFamily(
        "rewards_job_retries",
        "Scheduled job runs retried because a dependency did not answer, by job.",
        labels=["job", "dependency"],
    )
    counts = outages.outage_counts(cursor)
    fail_open.add_metric([], counts.get((outages.RATE_LIMIT, outages.REDIS), 0))
    for dependency in (outages.REDIS, outages.DATABASE):
        consumer.add_metric([dependency], counts.get((outages.CONSUMER, dependency), 0))
    prefix = outages.job_component("")
    for (component, dependency), n in sorted(counts.items()):
        if component.startswith(prefix):
            job.add_metric([component.removeprefix(prefix), dependency], n)
    return [fail_open, consumer, job]


def chain_metrics() -> Families:
    """The event log's chain head: how far the log is chained, and the head of
    the last whole UTC day as a label, which an auditor's Prometheus keeps
    outside this database (``verify_log --expect HASH@POSITION`` checks it)."""
    position = GaugeMetricFamily(
        "rewards_log_chained_position",
        "Position of the last event covered by the log's hash chain (the chain head).",
    )
    links = GaugeMetricFamily("rewards_log_chain_links", "Links recorded in the log's hash chain.")
    day_head = GaugeMetricFamily(
        "rewards_log_chain_day_head_info",
        "1, labelled with the chain head at the end of the last whole UTC day: the day,"
        " its hash@position and link (one series a day).",
        labels=["day", "head", "link"],
    )
    current = chain.head()
    position.add_metric([], current.position if current else 0)
    links.add_metric([], current.link if current else 0)
    today = clock.now().date()
    closed = chain.head(before=clock.start_of_day(today))
    if closed is not None:
        day = (today - dt.timedelta(days=1)).isoformat()
        day_head.add_metric([day, closed.kept, str(closed.link)], 1)
    return [position, links, day_head]


def consumer_metrics() -> Families:
    """The stream consumers by state, and how long each waiting one has waited."""
    by_state = GaugeMetricFamily(
        "rewards_event_consumers",
        "Stream consumers heard from in the last hour and not stopped, by state (consuming,"
        " waiting: for a dependency, silent: no heartbeat for 30 s).",
        labels=["state"],
    )
    waiting = GaugeMetricFamily(
        "rewards_event_consumer_waiting_seconds",
        "How long a consumer has been waiting for a dependency to answer again.",
        labels=["consumer", "dependency"],
    )
    now = clock.now()
    states = outages.consumer_states(now)
    for state in (outages.CONSUMING, outages.WAITING, outages.SILENT):
        by_state.add_metric([state], sum(1 for s in states if s.state == state))
    for s in states:
        if s.state == outages.WAITING and s.waiting_since is not None:
            seconds = max((now - s.waiting_since).total_seconds(), 0.0)
            waiting.add_metric([s.name, s.waiting_for], seconds)
    return [by_state, waiting]


def stream_metrics() -> Families:
    """The inbound stream's backlog, as Redis keeps it for the consumer group."""
    stream, group = settings.EVENT_STREAM, settings.EVENT_CONSUMER_GROUP
    length_family = GaugeMetricFamily(
        "rewards_event_stream_length", "Entries held in the inbound stream.", labels=["stream"]
    )
    pending_family = GaugeMetricFamily(
        "rewards_event_consumer_pending",
        "Entries delivered to a consumer of the group and not yet acknowledged.",
        labels=["stream", "group"],
    )
    lag_family = GaugeMetricFamily(
        "rewards_event_consumer_lag",
        "Entries in the stream not yet delivered to any consumer of the group.",
        labels=["stream", "group"],
    )
    client = redis_probe()
    try:
        length, pending, lag = consumer_backlog(client, stream, group)
    finally:
        client.close()
    length_family.add_metric([stream], length)
    pending_family.add_metric([stream, group], pending)
    lag_family.add_metric([stream, group], lag)
    return [length_family, pending_family, lag_family]


def consumer_backlog(client: redis.Redis, stream: str, group: str) -> tuple[int, int, int]:
    """(stream length, pending, lag) of ``group`` on ``stream``."""
    length = int(client.xlen(stream))
    if not length and not client.exists(stream):
        return 0, 0, 0
    info = next(
        (g for g in client.xinfo_groups(stream) if _text(g.get("name")) == group),
        None,
    )
    if info is None:
        # No consumer has started yet: it will create the group at the
        # stream's start and read everything.
        return length, 0, length
    pending = int(info.get("pending") or 0)
    lag = info.get("lag")
    if lag is None:
        # Redis before 7 does not report lag, and Redis 7 cannot once entries
        # were deleted: count what lies after the last delivered entry.
        last = _text(info.get("last-delivered-id")) or "0-0"
        after = client.xrange(stream, min=f"({last}", max="+", count=LAG_COUNT_LIMIT)
        lag = len(cast(list[Any], after))
    return length, pending, int(lag)


def redis_probe() -> redis.Redis:
    """A client for reading Redis's state: it gives up in seconds when Redis
    hangs, so the page or scrape that asked still answers."""
    return redis.Redis.from_url(
        settings.REDIS_URL,
        socket_connect_timeout=REDIS_TIMEOUT_SECONDS,
        socket_timeout=REDIS_TIMEOUT_SECONDS,
    )


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value or "")


REGISTRY = CollectorRegistry(auto_describe=False)
REGISTRY.register(RewardsCollector())


@never_cache
@require_GET
def metrics(request: HttpRequest) -> HttpResponse:
    """The Prometheus text exposition of every metric above (no authentication:
    serve it on the internal network only, see docs/operations.md)."""
    return HttpResponse(generate_latest(REGISTRY), content_type=CONTENT_TYPE_PLAIN_0_0_4)
