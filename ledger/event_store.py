"""The append-only event store: the one way anything is written to the log.

Every append, inbound or domain, happens inside one PostgreSQL transaction
that first takes the *append lock* (a transaction-level advisory lock). While
it is held nobody else appends, so:

- positions are handed out and committed in the same order: a projector that
  has folded everything up to position N can never later see a smaller,
  slower-committing position appear (the classic gap problem of sequences);
- the duplicate check (``event_id`` already stored? same body?) and the insert
  are one atomic step, even with many web processes and stream consumers;
- the projectors run in the same transaction, right after the insert, so read
  models are exactly as current as the log and a crash leaves neither behind.

Ids are unique per origin (a database constraint): inbound facts and the
product's own decisions are two namespaces, and each append path looks up and
writes only its own. An inbound event sent with the id of a decision this
product records later is stored as the inbound fact it is and takes nothing
from that decision.

Each append also records a link of the log's hash chain (``ledger.chain``)
before the lock is released: the hashes of the events it added, chained to
the previous link, so that history rewritten later no longer matches.

The lock serialises writers to the log, which is what a single global order
means; throughput comes from batching (one lock, one COPY and one set-based SQL
statement per projector for thousands of events), see docs/benchmarks.md.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.db import connection, transaction

from config import clock
from ledger import chain, projection
from ledger.contract import InboundEvent
from ledger.models import EventOrigin
from ledger.sql import binary_cursor
from ledger.wire import body_hash

# A fixed key for pg_advisory_xact_lock: "append to the event log".
APPEND_LOCK_KEY = 0x5E7E_0001

# Inbound rows name no origin: the column's default puts them in the exchange
# namespace, so this path cannot write a domain event whatever it is given.
# Positions are taken first (ledger.chain.take_positions): each event's entry
# in the chain holds its position.
_COPY_INBOUND = (
    "COPY ledger_event (position, event_id, type, occurred_at, received_at, user_id, data,"
    " extra, body_hash, source) FROM STDIN"
)
_COPY_DOMAIN = (
    "COPY ledger_event (position, event_id, type, origin, occurred_at, received_at, user_id,"
    " data, extra, body_hash, source) FROM STDIN"
)


@dataclass(frozen=True, slots=True)
class DomainEvent:
    """A decision or action of this product, appended to the same log.

    ``event_id`` is derived from the cause (``campaign.registered:winter:u_1``),
    so appending the same decision twice records it once.
    """

    event_id: str
    type: str
    occurred_at: dt.datetime
    data: dict[str, Any]
    user_id: str = ""


@dataclass(slots=True)
class AppendResult:
    appended: list[str] = field(default_factory=list)
    # event_id -> body hash already stored, for ids the product had recorded
    # before (an inbound event with the same id is another namespace's).
    existing: dict[str, str] = field(default_factory=dict)
    # Ids stored before with a different body: the decision recorded earlier
    # stands, and the caller's differs from it.
    conflicting: list[str] = field(default_factory=list)


def take_append_lock() -> None:
    """Serialise with every other writer of the log until this transaction ends."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", [APPEND_LOCK_KEY])


def stored_hashes(
    event_ids: Sequence[str], *, origin: str = EventOrigin.EXCHANGE
) -> dict[str, str]:
    """Body hashes of the given ids already in the log in ``origin``'s namespace
    (inbound facts unless told otherwise). One probe of the unique
    (event_id, origin) index per id."""
    if not event_ids:
        return {}
    with binary_cursor() as cursor:
        cursor.execute(
            "SELECT event_id, body_hash FROM ledger_event"
            " WHERE event_id = ANY(%b::text[]) AND origin = %b",
            [list(event_ids), str(origin)],
        )
        return dict(cursor.fetchall())


def copy_inbound(events: Iterable[InboundEvent], *, source: str, received_at: dt.datetime) -> int:
    """COPY new inbound events into the log and chain them. Caller holds the
    append lock and has already removed ids that are stored."""
    events = list(events)
    if not events:
        return 0
    positions = chain.take_positions(len(events))
    tail = chain.entry_tail(EventOrigin.EXCHANGE, received_at, source)
    entries = []
    raw = connection.connection
    assert raw is not None
    with raw.cursor() as cursor, cursor.copy(_COPY_INBOUND) as copy:
        for position, event in zip(positions, events, strict=True):
            chain.ensure_content(event)  # done in ingestion.prepare, before the lock
            copy.write_row(
                (
                    position,
                    event.event_id,
                    event.type,
                    event.occurred_at,
                    received_at,
                    event.user_id,
                    event.data_json,
                    event.extra_json,
                    event.body_hash,
                    source,
                )
            )
            entries.append(chain.entry(position, event.content, tail))
    chain.record_append(positions, entries, received_at)
    return len(events)


def append_domain_events(events: Sequence[DomainEvent], *, source: str = "rewards") -> AppendResult:
    """Append this product's own events (idempotent by ``event_id`` among domain
    events) and project them.

    Runs in the caller's transaction when there is one, so a decision and its
    ledger transaction commit together. Only domain events are looked up: an
    inbound event with the same id is another namespace's and changes nothing.
    """
    result = AppendResult()
    if not events:
        return result
    with transaction.atomic():
        take_append_lock()
        result.existing = stored_hashes(
            [event.event_id for event in events], origin=EventOrigin.REWARDS
        )
        received_at = clock.now()
        seen: set[str] = set()
        rows = []
        contents: list[bytes] = []
        for event in events:
            if event.event_id in seen:
                continue
            seen.add(event.event_id)
            body = {
                "event_id": event.event_id,
                "type": event.type,
                "occurred_at": event.occurred_at.isoformat(),
                "user_id": event.user_id,
                "data": event.data,
            }
            digest = body_hash(json.loads(json.dumps(body, default=str)))
            if event.event_id in result.existing:
                if result.existing[event.event_id] != digest:
                    result.conflicting.append(event.event_id)
                continue
            data_json = chain.stored_json(json.dumps(event.data, ensure_ascii=False, default=str))
            content = chain.content_text(
                event.event_id,
                event.type,
                event.occurred_at,
                event.user_id,
                digest,
                "{}",
                data_json,
            )
            rows.append(
                (
                    event.event_id,
                    event.type,
                    EventOrigin.REWARDS,
                    event.occurred_at,
                    received_at,
                    event.user_id,
                    data_json,
                    "{}",
                    digest,
                    source,
                )
            )
            contents.append(content)
            result.appended.append(event.event_id)
        if rows:
            positions = chain.take_positions(len(rows))
            raw = connection.connection
            assert raw is not None
            with raw.cursor() as cursor, cursor.copy(_COPY_DOMAIN) as copy:
                for position, row in zip(positions, rows, strict=True):
                    copy.write_row((position, *row))
            tail = chain.entry_tail(EventOrigin.REWARDS, received_at, source)
            chain.record_append(
                positions,
                (
                    chain.entry(position, content, tail)
                    for position, content in zip(positions, contents, strict=True)
                ),
                received_at,
            )
            projection.project_pending()
    return result


def append_domain_event(event: DomainEvent, *, source: str = "rewards") -> bool:
    """Append one domain event; True if it is new."""
    return bool(append_domain_events([event], source=source).appended)
