"""Rebuild a database's whole state from its log, in this (empty) database.

The source's log is read in position order, which is commit order. Between
the product's own inputs, runs of the exchange's facts are copied as they
are (COPY from the source into this log, then folded by the projectors, as
ingestion does). Each action is performed again and each record appended
again (``replay.registry``). Each job run of the source is run again, for
its key, with the clock at the instant it started, once everything the
original run could see is in: ``JobRun.log_position`` says what that was
(runs recorded before it existed: the last event received before the run
started).

Memory stays bounded: the facts stream from one COPY into the other in
ranges, the product's events come through a server-side cursor, and only
the list of job runs (a few small fields each) is held.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import psycopg
from django.db import connection, transaction

from access.errors import DomainError
from jobs.registry import get_job
from jobs.runner import JobFailed, run_job
from ledger import projection
from ledger.event_store import take_append_lock
from replay import registry
from replay.registry import RecordedEvent, Unreplayable

# Positions copied per transaction: bounds a transaction and a projection step.
COPY_RANGE = 500_000

_EVENT_COLUMNS = "event_id, type, occurred_at, received_at, user_id, data, extra, body_hash, source"

# Runs that decided nothing are not run again: a skipped run left the key to
# another; a running one has not finished (or its runner is gone and the
# next run's sweep will say so).
_RUNS_SQL = """
SELECT r.id, r.job, r.key, r.status, r.started_at,
    coalesce(r.log_position, (
        SELECT max(e.position) FROM ledger_event e WHERE e.received_at <= r.started_at), 0)
FROM jobs_jobrun r
WHERE r.status NOT IN ('skipped', 'running')
ORDER BY 6, r.started_at, r.id
"""


@dataclass(frozen=True)
class RecordedRun:
    id: int
    job: str
    key: str
    status: str
    started_at: dt.datetime
    log_position: int


@dataclass
class ReplayCounts:
    head: int = 0
    facts: int = 0
    actions: int = 0
    records: int = 0
    decisions_skipped: int = 0
    runs: int = 0
    runs_failed: int = 0
    outcomes: list[tuple[int, str, str, str, str]] = field(default_factory=list)
    # Actions the original accepted and the replay refused: (event id, why).
    refused: list[tuple[str, str]] = field(default_factory=list)


Progress = Callable[[ReplayCounts], None]


@contextmanager
def frozen_clock(at: dt.datetime) -> Iterator[None]:
    """The product's clock reads ``at`` (config.clock honours FROZEN_NOW)."""
    previous = os.environ.get("FROZEN_NOW")
    os.environ["FROZEN_NOW"] = at.astimezone(dt.UTC).isoformat()
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop("FROZEN_NOW", None)
        else:
            os.environ["FROZEN_NOW"] = previous


def check_types(source: psycopg.Connection[Any]) -> None:
    """Refuse a log holding a product event type that no app declares."""
    rows = source.execute(
        "SELECT type, count(*) FROM ledger_event WHERE origin = 'rewards' GROUP BY type"
    ).fetchall()
    unknown = sorted(t for t, _ in rows if registry.handling(t) is None)
    if unknown:
        raise Unreplayable(
            "the log holds event types replay does not know how to rebuild: "
            + ", ".join(unknown)
            + " (declare each in its app's replaying.py)"
        )


def recorded_runs(source: psycopg.Connection[Any]) -> list[RecordedRun]:
    runs = []
    for row in source.execute(_RUNS_SQL):
        run = RecordedRun(*row)
        try:
            spec = get_job(run.job)
        except KeyError:
            # A job removed from the code since: its decisions cannot be made again.
            raise Unreplayable(
                f"job run #{run.id} is of job {run.job!r}, which this version no longer has"
            ) from None
        if spec.decides:
            runs.append(run)
    return runs


def _product_events(source: psycopg.Connection[Any]) -> Iterator[RecordedEvent]:
    """The product's inputs (actions and records), in position order."""
    types = [t for t, h in registry.handled_types().items() if h.kind != "decision"]
    with source.cursor(name="replay_inputs") as cursor:
        cursor.itersize = 2_000
        cursor.execute(
            "SELECT position, event_id, type, occurred_at, received_at, user_id, data, source"
            " FROM ledger_event WHERE origin = 'rewards' AND type = ANY(%s) ORDER BY position",
            [types],
        )
        for row in cursor:
            yield RecordedEvent(*row)


def copy_facts(source: psycopg.Connection[Any], after: int, upto: int) -> int:
    """Append the source's inbound facts with positions in (after, upto] to this
    log as they were received, and fold them. Returns how many."""
    copied = 0
    start = after
    while start < upto:
        end = min(start + COPY_RANGE, upto)
        with transaction.atomic():
            take_append_lock()
            with connection.cursor() as cursor:
                cursor.execute("SELECT coalesce(max(position), 0) FROM ledger_event")
                before = int(cursor.fetchone()[0])
            raw = connection.connection
            assert raw is not None
            with (
                source.cursor().copy(
                    f"COPY (SELECT {_EVENT_COLUMNS} FROM ledger_event WHERE origin = 'exchange'"  # noqa: S608
                    " AND position > %s AND position <= %s ORDER BY position)"
                    " TO STDOUT (FORMAT BINARY)",
                    [start, end],
                ) as out,
                raw.cursor() as cursor,
                cursor.copy(
                    f"COPY ledger_event ({_EVENT_COLUMNS}) FROM STDIN (FORMAT BINARY)"
                ) as into,
            ):
                for block in out:
                    into.write(block)
            with connection.cursor() as cursor:
                cursor.execute("SELECT count(*) FROM ledger_event WHERE position > %s", [before])
                copied += int(cursor.fetchone()[0])
            projection.project_pending()
        start = end
    return copied


_SEQUENCES_SQL = """
SELECT s.relname, t.relname, a.attname
FROM pg_class s
JOIN pg_depend d ON d.objid = s.oid AND d.deptype IN ('a', 'i')
JOIN pg_class t ON t.oid = d.refobjid
JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = d.refobjsubid
WHERE s.relkind = 'S' AND t.relname <> 'ledger_event'
"""


def align_sequences(source: psycopg.Connection[Any]) -> None:
    """Start each table's ids where the source's start. Some of the product's
    events name a row by its id (a funding's transaction, a voucher, a
    consumption): a source whose numbering did not start at 1 (a database
    emptied without restarting its sequences) would otherwise differ in
    every one of them."""
    with connection.cursor() as cursor:
        cursor.execute(_SEQUENCES_SQL)
        for sequence, table, column in cursor.fetchall():
            row = source.execute(
                f'SELECT min("{column}") FROM "{table}"'  # noqa: S608 (catalogue names)
            ).fetchone()
            if row and row[0] and row[0] > 1:
                cursor.execute("SELECT setval(%s, %s)", [sequence, row[0] - 1])


def align_ids(table: str, first_id: int) -> None:
    """Give the next row of ``table`` the id ``first_id`` the original gave it
    (an event names it). Only ever moves the sequence forward."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT setval(pg_get_serial_sequence(%s, 'id'), %s)"  # noqa: S608
            f" WHERE %s > (SELECT coalesce(max(id), 0) FROM {table})",
            [table, first_id - 1, first_id - 1],
        )


def _grouped(events: Iterator[RecordedEvent]) -> Iterator[list[RecordedEvent]]:
    """Consecutive events of one group of types (registry.Handling.group),
    instant and source: one request's worth (a grant of a thousand vouchers
    is replayed as one grant)."""
    batch: list[RecordedEvent] = []
    group = ""
    for event in events:
        handling = registry.handling(event.type)
        assert handling is not None
        if batch and (
            handling.group != group
            or event.occurred_at != batch[0].occurred_at
            or event.source != batch[0].source
            or len(batch) >= 5_000
        ):
            yield batch
            batch = []
        group = handling.group
        batch.append(event)
    if batch:
        yield batch


def replay_log(source_url: str, *, progress: Progress | None = None) -> ReplayCounts:
    """Rebuild the state of the database at ``source_url`` in this one (empty,
    migrated). The source is only read, in one consistent snapshot."""
    counts = ReplayCounts()
    with psycopg.connect(source_url) as source:
        source.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        check_types(source)
        row = source.execute("SELECT coalesce(max(position), 0) FROM ledger_event").fetchone()
        counts.head = int(row[0]) if row else 0
        runs = recorded_runs(source)
        align_sequences(source)
        applied = 0
        next_run = 0

        def run_until(position: int) -> None:
            nonlocal applied, next_run
            while next_run < len(runs) and runs[next_run].log_position <= position:
                run = runs[next_run]
                if run.log_position > applied:
                    counts.facts += copy_facts(source, applied, run.log_position)
                    applied = run.log_position
                _run_again(run, counts)
                next_run += 1
                if progress:
                    progress(counts)

        for batch in _grouped(_product_events(source)):
            first = batch[0].position
            run_until(first - 1)
            if first - 1 > applied:
                counts.facts += copy_facts(source, applied, first - 1)
            _apply(batch, counts)
            applied = batch[-1].position
            if progress:
                progress(counts)
        run_until(counts.head)
        if counts.head > applied:
            counts.facts += copy_facts(source, applied, counts.head)
        while next_run < len(runs):  # runs that saw a position beyond the head
            _run_again(runs[next_run], counts)
            next_run += 1
        source.rollback()
    if progress:
        progress(counts)
    return counts


def _apply(batch: list[RecordedEvent], counts: ReplayCounts) -> None:
    handling = registry.handling(batch[0].type)
    assert handling is not None and handling.kind != "decision"
    with frozen_clock(batch[0].occurred_at):
        if handling.kind == "record":
            _append_as_recorded(batch)
            counts.records += len(batch)
        else:
            counts.actions += len(batch)
        if handling.apply is None:
            return
        for part in [batch] if handling.batched else [[event] for event in batch]:
            try:
                with transaction.atomic():
                    counts.refused.extend(handling.apply(part) or [])
            except DomainError as refusal:
                counts.refused.append((part[0].event_id, str(refusal)))


def _append_as_recorded(batch: list[RecordedEvent]) -> None:
    from ledger.event_store import DomainEvent, append_domain_events

    append_domain_events(
        [
            DomainEvent(
                event_id=event.event_id,
                type=event.type,
                occurred_at=event.occurred_at,
                data=event.data,
                user_id=event.user_id,
            )
            for event in batch
        ],
        source=batch[0].source,
    )


def _run_again(run: RecordedRun, counts: ReplayCounts) -> None:
    spec = get_job(run.job)
    kwargs: dict[str, Any]
    if spec.key == "day":
        kwargs = {"day": dt.date.fromisoformat(run.key)}
    else:
        kwargs = {"at": dt.datetime.fromisoformat(run.key)}
    with frozen_clock(run.started_at):
        try:
            again = run_job(run.job, trigger="replay", **kwargs)
        except JobFailed as failure:
            again = failure.run
            counts.runs_failed += 1
    counts.runs += 1
    counts.outcomes.append((run.id, run.job, run.key, run.status, again.status))
