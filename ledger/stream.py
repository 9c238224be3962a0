"""The Redis Stream door: a consumer in a consumer group.

Each stream entry carries one event as JSON in its ``event`` field. Several
consumers (processes, machines) share one group; Redis hands each entry to one
of them. Delivery is at-least-once: an entry is acknowledged (XACK) only after
the database transaction that ingested it committed, and the event log's
dedupe by ``event_id`` turns redelivery into a harmless duplicate, so every
event has exactly one effect. Entries left pending by a consumer that died are
reclaimed (XAUTOCLAIM) after ``reclaim_idle_ms``. An entry that cannot be
processed even alone, ``max_deliveries`` times, goes to quarantine and is
acknowledged, so a poison entry never blocks the stream.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import redis
from django.conf import settings
from django.db import close_old_connections, reset_queries

from ledger.ingestion import ingest, quarantine_unprocessable

logger = logging.getLogger(__name__)

Entry = tuple[bytes, dict[bytes, bytes]]


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
    max_deliveries: int = 5
    stats: ConsumerStats = field(default_factory=ConsumerStats)

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
        self.ensure_group()
        # Entries this consumer name read before a restart and never acked.
        while self._process(self._read("0")):
            pass
        while stop is None or not stop.is_set():
            handled = self._process(self._reclaim())
            handled += self._process(self._read(">"))
            if on_batch is not None and handled:
                on_batch(self.stats)
            if handled == 0 and idle_exit:
                break
        return self.stats

    def _read(self, start: str) -> list[Entry]:
        block = None if start == "0" else self.block_ms
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
            start_id="0-0",
            count=self.batch_size,
        )
        entries: list[Entry] = [(i, f or {}) for i, f in reply[1]]
        self.stats.reclaimed += len(entries)
        return entries

    def _process(self, entries: list[Entry]) -> int:
        if not entries:
            return 0
        close_old_connections()
        reset_queries()  # a consumer runs for days; with DEBUG on Django would keep every SQL
        raws = [_raw_event(fields) for _, fields in entries]
        try:
            report = ingest(raws, source="stream")
        except Exception:
            logger.exception("batch of %d stream entries failed; retrying one by one", len(entries))
            return self._process_one_by_one(entries, raws)
        self.client.xack(self.stream, self.group, *[entry_id for entry_id, _ in entries])
        self.stats.add(report.summary())
        self.stats.batches += 1
        return len(entries)

    def _process_one_by_one(self, entries: list[Entry], raws: list[Any]) -> int:
        for (entry_id, _), raw in zip(entries, raws, strict=True):
            try:
                report = ingest([raw], source="stream")
            except Exception as exc:
                logger.exception("stream entry %s failed", entry_id)
                if self._deliveries(entry_id) >= self.max_deliveries:
                    quarantine_unprocessable(
                        raw,
                        source="stream",
                        message=f"failed {self.max_deliveries} deliveries: {exc!r}"[:500],
                    )
                    self.client.xack(self.stream, self.group, entry_id)
                    self.stats.quarantined_unprocessable += 1
                continue
            self.client.xack(self.stream, self.group, entry_id)
            self.stats.add(report.summary())
        return len(entries)

    def _deliveries(self, entry_id: bytes) -> int:
        pending = self.client.xpending_range(
            self.stream, self.group, min=entry_id, max=entry_id, count=1
        )
        return int(pending[0]["times_delivered"]) if pending else self.max_deliveries


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
