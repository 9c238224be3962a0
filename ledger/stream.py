"""The Redis Stream door: a consumer in a consumer group.

Each stream entry carries one event as JSON in its ``event`` field. Several
consumers (processes, machines) share one group; Redis hands each entry to one
of them. Delivery is at-least-once: an entry is acknowledged (XACK) only after
the database transaction that ingested it committed, and the event log's
dedupe by ``event_id`` turns redelivery into a harmless duplicate, so every
event has exactly one effect. Entries left pending by a consumer that died are
reclaimed (XAUTOCLAIM) after ``reclaim_idle_ms``.

Outages are waited out, never fatal. When Redis or PostgreSQL does not answer
(``monitoring.outages.outage_of``: refused, timed out, restarting, the session
terminated), the consumer logs it, drops its database connection, waits with
exponential backoff and jitter (``backoff``, 0.5 s doubling to 30 s) and
retries the same step with the same entries: reading, ingesting the same
batch, or acknowledging what was committed. That is not the entries' fault:
nothing is quarantined for it. It stops only when asked (SIGTERM, SIGINT: the
``stop`` event also ends a wait); entries in hand stay pending and are read
again on restart or reclaimed by another consumer.

Bad entries never block the group. Ingestion isolates bad events itself; if a
batch still raises something other than an outage, its entries are retried
one by one, and an entry that fails alone is quarantined (``unprocessable``)
and acknowledged at its first failure. An entry whose quarantine fails too is
logged and left pending (parked) for a later reclaim; the consumer moves on.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any, TypeVar, cast

import redis
from django.conf import settings
from django.db import close_old_connections, reset_queries

from config import clock
from ledger.ingestion import IngestReport, ingest, quarantine_unprocessable
from monitoring import outages

logger = logging.getLogger(__name__)

Entry = tuple[bytes, dict[bytes, bytes]]
T = TypeVar("T")

# An entry that could not even be quarantined is left alone this long before
# it is tried again (when reclaimed), so it never turns the loop into a spin.
PARK_SECONDS = 60.0


class Stopped(Exception):
    """The stop event was set while waiting for a dependency."""


def default_consumer_name() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


@dataclass
class ConsumerStats:
    accepted: int = 0
    duplicate: int = 0
    rejected: int = 0
    quarantined_unprocessable: int = 0
    reclaimed: int = 0
    batches: int = 0
    # Retries of the same work after a dependency did not answer, and the waits.
    retries: int = 0
    outages: int = 0
    # Entries that could not be quarantined, left pending.
    parked: int = 0

    def add(self, summary: dict[str, int]) -> None:
        self.accepted += summary["accepted"]
        self.duplicate += summary["duplicate"]
        self.rejected += summary["rejected"]


@dataclass
class EventStreamConsumer:
    client: redis.Redis
    stream: str = field(default_factory=lambda: settings.EVENT_STREAM)
    group: str = field(default_factory=lambda: settings.EVENT_CONSUMER_GROUP)
    name: str = field(default_factory=default_consumer_name)
    batch_size: int = 1000
    block_ms: int = 1000
    reclaim_idle_ms: int = field(default_factory=lambda: settings.EVENT_RECLAIM_IDLE_MS)
    backoff: outages.Backoff = field(default_factory=outages.Backoff)
    stats: ConsumerStats = field(default_factory=ConsumerStats)
    # entry id -> time.monotonic() before which it is not tried again
    parked: dict[bytes, float] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event, repr=False)
    _beat: outages.ConsumerBeat | None = field(default=None, repr=False)
    _reclaim_from: str = field(default="0-0", repr=False)

    def ensure_group(self) -> None:
        """Create the group (from the stream's start) if it does not exist yet."""
        try:
            self.client.xgroup_create(self.stream, self.group, id="0", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    def run(
        self,
        *,
        stop: threading.Event | None = None,
        idle_exit: bool = False,
        on_batch: Callable[[ConsumerStats], None] | None = None,
    ) -> ConsumerStats:
        """Consume until ``stop`` is set (or, with ``idle_exit``, until nothing is left)."""
        self._stop = stop or threading.Event()
        self._beat = outages.ConsumerBeat(self.name, self.stream, self.group)
        self._beat.consuming()
        try:
            self._consume(idle_exit, on_batch)
        except Stopped:
            pass
        finally:
            self._beat.stopped()
            outages.flush()
        return self.stats

    def _consume(self, idle_exit: bool, on_batch: Callable[[ConsumerStats], None] | None) -> None:
        self._retrying(self.ensure_group)
        # Entries this consumer name read before a restart and never acked, page by page.
        after = "0"
        while not self._stop.is_set():
            entries = self._retrying(partial(self._read, after))
            if not entries:
                break
            self._process(entries)
            after = entries[-1][0].decode()
        while not self._stop.is_set():
            handled = self._process(self._retrying(self._reclaim))
            handled += self._process(self._retrying(partial(self._read, ">")))
            self._beat_tick()
            if on_batch is not None and handled:
                on_batch(self.stats)
            if handled == 0 and idle_exit:
                break

    # --- waiting out an outage ---------------------------------------------------------

    def _retrying(self, step: Callable[[], T]) -> T:
        """``step()``, again and again while Redis or the database does not answer;
        raises :class:`Stopped` if asked to stop meanwhile, and whatever else
        ``step`` raises."""
        attempts = 0
        since: dt.datetime | None = None
        began = 0.0
        while True:
            try:
                result = step()
            except Exception as exc:
                if _missing_group(exc):
                    # Redis lost its data (restarted without persistence, flushed):
                    # the group is made again from the stream's start; entries
                    # read again are duplicates, which change nothing.
                    logger.error(
                        "consumer %s: the group %s of %s is gone (%s); making it again",
                        self.name,
                        self.group,
                        self.stream,
                        outages.describe(exc),
                    )
                    dependency: str | None = outages.REDIS
                else:
                    dependency = outages.outage_of(exc)
                    if dependency is None and outages.database_connection_broken():
                        # Not an error known to mean an outage, but it left the
                        # connection unusable: the database went away meanwhile.
                        dependency = outages.DATABASE
                if dependency is None:
                    raise
                attempts += 1
                if since is None:
                    since, began = clock.now(), time.monotonic()
                self._wait(dependency, exc, attempts, since)
                if _missing_group(exc):
                    self._retrying(self.ensure_group)
                continue
            if attempts:
                self.stats.outages += 1
                logger.warning(
                    "consumer %s: answered again after %.1f s and %d retries; resuming",
                    self.name,
                    time.monotonic() - began,
                    attempts,
                )
                if self._beat is not None:
                    self._beat.consuming()
                outages.flush()
            return result

    def _wait(self, dependency: str, exc: BaseException, attempts: int, since: dt.datetime) -> None:
        delay = self.backoff.delay(attempts)
        reason = outages.describe(exc)
        logger.warning(
            "consumer %s: %s did not answer (%s); retry %d of the same work in %.1f s",
            self.name,
            dependency,
            reason,
            attempts,
            delay,
        )
        if dependency == outages.DATABASE or outages.database_connection_broken():
            outages.discard_database_connection()
        self.stats.retries += 1
        outages.count(outages.CONSUMER, dependency)
        if self._beat is not None:
            self._beat.waiting(dependency, since, attempts, reason)
        self._sleep(delay)

    def _sleep(self, seconds: float) -> None:
        """Sleep, waking at once on stop; keep the heartbeat going meanwhile."""
        deadline = time.monotonic() + seconds
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            if self._stop.wait(min(left, outages.HEARTBEAT_SECONDS)):
                raise Stopped
            self._beat_tick()

    def _beat_tick(self) -> None:
        if self._beat is not None:
            self._beat.tick()

    # --- Redis ---------------------------------------------------------------------------

    def _read(self, start: str) -> list[Entry]:
        block = None if start != ">" else self.block_ms
        reply = self.client.xreadgroup(
            self.group, self.name, {self.stream: start}, count=self.batch_size, block=block
        )
        if not reply:
            return []
        entries = cast(list[Entry], reply[0][1])  # type: ignore[index]
        # A pending entry whose message was trimmed from the stream comes back empty.
        return [(entry_id, fields or {}) for entry_id, fields in entries]

    def _reclaim(self) -> list[Entry]:
        reply = self.client.xautoclaim(
            self.stream,
            self.group,
            self.name,
            min_idle_time=self.reclaim_idle_ms,
            start_id=self._reclaim_from,
            count=self.batch_size,
        )
        # Where the next call goes on from ("0-0": the scan went round the group).
        cursor = reply[0]
        self._reclaim_from = cursor.decode() if isinstance(cursor, bytes) else str(cursor)
        entries: list[Entry] = [(i, f or {}) for i, f in reply[1]]
        self.stats.reclaimed += len(entries)
        return entries

    def _ack(self, *entry_ids: bytes) -> None:
        self.client.xack(self.stream, self.group, *entry_ids)

    # --- entries -------------------------------------------------------------------------

    def _process(self, entries: list[Entry]) -> int:
        """Ingest and acknowledge ``entries``; the number acknowledged."""
        now = time.monotonic()
        entries = [e for e in entries if self.parked.get(e[0], 0.0) <= now]
        if not entries:
            return 0
        reset_queries()  # a consumer runs for days; with DEBUG on Django would keep every SQL
        raws = [_raw_event(fields) for _, fields in entries]
        try:
            report = self._retrying(partial(self._ingest, raws))
        except Stopped:
            raise
        except Exception:
            logger.exception(
                "consumer %s: a batch of %d stream entries failed; retrying them one by one",
                self.name,
                len(entries),
            )
            return self._process_one_by_one(entries, raws)
        ids = [entry_id for entry_id, _ in entries]
        self._retrying(partial(self._ack, *ids))
        self.stats.add(report.summary())
        self.stats.batches += 1
        for entry_id in ids:
            self.parked.pop(entry_id, None)
        return len(entries)

    def _ingest(self, raws: list[Any]) -> IngestReport:
        # A connection past its age, or left unusable, is replaced first; inside
        # the retried step, so that even that waits out an outage.
        close_old_connections()
        return ingest(raws, source="stream")

    def _process_one_by_one(self, entries: list[Entry], raws: list[Any]) -> int:
        done = 0
        for (entry_id, _), raw in zip(entries, raws, strict=True):
            try:
                report = self._retrying(partial(self._ingest, [raw]))
            except Stopped:
                raise
            except Exception as exc:
                logger.exception("consumer %s: stream entry %s failed alone", self.name, entry_id)
                done += self._quarantine(entry_id, raw, exc)
                continue
            self._retrying(partial(self._ack, entry_id))
            self.stats.add(report.summary())
            self.parked.pop(entry_id, None)
            done += 1
        return done

    def _quarantine(self, entry_id: bytes, raw: Any, exc: BaseException) -> int:
        """Quarantine an entry that failed alone and acknowledge it; 1 if done.
        If even that fails, log it and leave it pending (parked); 0."""
        message = f"failed alone: {outages.describe(exc)}"[:500]
        # Quarantine takes any input as it came (its exact bytes, and text
        # with what text cannot hold escaped); only an outage that outlasts
        # the retries or a bug leaves the entry pending.
        try:
            self._retrying(partial(quarantine_unprocessable, raw, source="stream", message=message))
        except Stopped:
            raise
        except Exception:
            logger.exception(
                "consumer %s: stream entry %s could not be quarantined", self.name, entry_id
            )
        else:
            self._retrying(partial(self._ack, entry_id))
            self.stats.quarantined_unprocessable += 1
            self.parked.pop(entry_id, None)
            return 1
        self.parked[entry_id] = time.monotonic() + PARK_SECONDS
        self.stats.parked += 1
        logger.error(
            "consumer %s: stream entry %s left pending: neither ingested nor quarantined;"
            " tried again when reclaimed",
            self.name,
            entry_id,
        )
        return 0


def _missing_group(exc: BaseException) -> bool:
    return isinstance(exc, redis.ResponseError) and str(exc).startswith("NOGROUP")


def _raw_event(fields: dict[bytes, bytes]) -> Any:
    raw = fields.get(b"event")
    if raw is not None:
        return raw
    # No "event" field: keep what came, readable, for quarantine.
    return {
        key.decode(errors="replace"): value.decode(errors="replace")
        for key, value in fields.items()
    }


def publish_events(client: redis.Redis, stream: str, events: Sequence[str | bytes]) -> None:
    """Append events to a stream (the exchange's side; used by tests, bench, demo)."""
    pipe = client.pipeline(transaction=False)
    for event in events:
        pipe.xadd(stream, {"event": event})
    pipe.execute()
