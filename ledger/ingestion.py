"""Ingestion: one pipeline behind every door (REST batch, Redis Stream, file).

validate -> dedupe by ``event_id`` -> append and project, or quarantine with the
reason. Every input ends in exactly one of three outcomes:

- ``accepted``: new, valid, appended to the log and projected;
- ``duplicate``: the same ``event_id`` with the same body is already stored
  (at-least-once delivery): harmless, nothing changes;
- ``rejected``: malformed, or the same ``event_id`` with a *different* body (a
  conflict: the first body stands). Kept in quarantine with its field errors.

Each batch also adds its outcomes to the ingestion tallies that ``/metrics``
reports (``monitoring.tallies``), in the same transaction.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import psycopg
from django.db import InterfaceError, OperationalError, transaction

from config import clock
from ledger import chain, event_store, projection, wire
from ledger.contract import FieldError, InboundEvent, parse_json, validate_event
from ledger.models import QuarantinedInput, QuarantineStatus
from monitoring.tallies import record_ingestion

logger = logging.getLogger(__name__)

ACCEPTED = "accepted"
DUPLICATE = "duplicate"
REJECTED = "rejected"

# Quarantine reasons.
INVALID = "invalid"
CONFLICT = "conflict"
UNPROCESSABLE = "unprocessable"
# Valid by the contract, but the database refused to store or project it.
REFUSED = "refused"


@dataclass(slots=True)
class Outcome:
    index: int
    event_id: str | None
    status: str
    errors: list[FieldError] = field(default_factory=list)
    quarantine_id: int | None = None
    # Why a rejected input was refused: invalid, conflict or refused.
    reason: str = ""

    def as_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "index": self.index,
            "event_id": self.event_id,
            "status": self.status,
        }
        if self.errors:
            body["errors"] = [error.as_dict() for error in self.errors]
        if self.reason:
            body["reason"] = self.reason
        if self.quarantine_id is not None:
            body["quarantine_id"] = self.quarantine_id
        return body


@dataclass(slots=True)
class IngestReport:
    outcomes: list[Outcome]

    def count(self, status: str) -> int:
        return sum(1 for outcome in self.outcomes if outcome.status == status)

    @property
    def accepted(self) -> int:
        return self.count(ACCEPTED)

    @property
    def duplicate(self) -> int:
        return self.count(DUPLICATE)

    @property
    def rejected(self) -> int:
        return self.count(REJECTED)

    def summary(self) -> dict[str, int]:
        return {"accepted": self.accepted, "duplicate": self.duplicate, "rejected": self.rejected}


@dataclass(slots=True)
class _Rejection:
    index: int
    item: Any
    event_id: str
    event_type: str
    reason: str
    errors: list[FieldError]


def _as_text(item: Any) -> str:
    """The input as text a person can read and correct in the admin."""
    if isinstance(item, bytes):
        text = item.decode("utf-8", errors="backslashreplace")
    elif isinstance(item, str):
        text = item
    else:
        try:
            text = json.dumps(item, ensure_ascii=False)
        except (TypeError, ValueError, RecursionError):  # decimals, depth
            text = wire.dumps_any(item)
    return wire.printable(text, limit=None)


def _received(item: Any) -> bytes:
    """The input's exact bytes (a decoded body as its JSON)."""
    if isinstance(item, bytes):
        return item
    text = item if isinstance(item, str) else wire.dumps_any(item)
    return text.encode("utf-8", errors="surrogatepass")


def _identity(body: Any) -> tuple[str, str]:
    """The event id and type of a body, as far as they can be read, for ops."""
    if not isinstance(body, dict):
        return "", ""
    event_id, event_type = body.get("event_id"), body.get("type")
    return (
        wire.printable(event_id, 125)[:128] if isinstance(event_id, str) else "",
        wire.printable(event_type, 61)[:64] if isinstance(event_type, str) else "",
    )


@dataclass(slots=True)
class PreparedBatch:
    """A batch after the checks that need no database: parsed, validated, and
    deduplicated within itself."""

    items: Sequence[Any]
    rejections: list[_Rejection]
    candidates: dict[str, tuple[int, InboundEvent]]
    in_batch_duplicates: list[tuple[int, InboundEvent]]


def prepare(
    items: Sequence[Any], *, from_document: bool = False, texts_clean: bool = False
) -> PreparedBatch:
    """Parse and validate a batch (pure: no database). Doors that stream may
    prepare the next batch while the previous one commits.

    ``from_document``: the items are the elements of a decoded JSON document
    (the REST door): a string is a value there, not a text to decode, and only
    ``bytes`` (elements the decoders refused as part of the whole) are texts.
    ``texts_clean``: the strings of decoded items are known clean
    (``wire.decode_document``)."""
    rejections: list[_Rejection] = []
    candidates: dict[str, tuple[int, InboundEvent]] = {}
    in_batch_duplicates: list[tuple[int, InboundEvent]] = []
    for index, item in enumerate(items):
        body: Any = None
        try:
            if isinstance(item, bytes) or (isinstance(item, str) and not from_document):
                body, errors = parse_json(item)
                event, errors = validate_event(body, checked=True) if not errors else (None, errors)
            else:
                body = item
                event, errors = validate_event(body, texts_clean=texts_clean)
        except Exception as exc:  # one input must never take its batch down
            logger.exception("input %d of a batch could not be checked", index)
            event, errors = None, [FieldError("(event)", f"could not be checked: {exc!r}")]
        if event is None:
            event_id, event_type = _identity(body)
            rejections.append(_Rejection(index, item, event_id, event_type, INVALID, errors))
            continue
        if event.event_id in candidates:
            in_batch_duplicates.append((index, event))
        else:
            # What the log will store and chain, hashed here rather than under
            # the append lock (ledger.chain).
            chain.prepare_content(event)
            candidates[event.event_id] = (index, event)
    return PreparedBatch(items, rejections, candidates, in_batch_duplicates)


def ingest(
    items: Sequence[Any],
    *,
    source: str,
    quarantine: bool = True,
    from_document: bool = False,
    texts_clean: bool = False,
) -> IngestReport:
    """Ingest a batch: raw JSON texts (``str``/``bytes``) or decoded objects.

    One database transaction for the whole batch: the events, their
    projections and the quarantine rows commit together; an event the
    database refuses is isolated and quarantined, and the rest commits.
    ``quarantine=False`` is for replaying an input that is already quarantined.
    """
    batch = prepare(items, from_document=from_document, texts_clean=texts_clean)
    return commit(batch, source=source, quarantine=quarantine)


def commit(batch: PreparedBatch, *, source: str, quarantine: bool = True) -> IngestReport:
    """Dedupe a prepared batch against the log, append and project the new
    events, quarantine the rejections: one transaction."""
    items = batch.items
    outcomes: list[Outcome | None] = [None] * len(items)
    rejections = list(batch.rejections)
    candidates = batch.candidates

    with transaction.atomic():
        event_store.take_append_lock()
        stored = event_store.stored_hashes(list(candidates))
        new_events: list[InboundEvent] = []
        duplicates: list[InboundEvent] = []
        for event_id, (index, event) in candidates.items():
            known = stored.get(event_id)
            if known is None:
                new_events.append(event)
                outcomes[index] = Outcome(index, event_id, ACCEPTED)
            elif known == event.body_hash:
                duplicates.append(event)
                outcomes[index] = Outcome(index, event_id, DUPLICATE)
            else:
                rejections.append(_conflict(index, items[index], event))
        for index, event in batch.in_batch_duplicates:
            first_hash = candidates[event.event_id][1].body_hash
            if event.body_hash == first_hash:
                duplicates.append(event)
                outcomes[index] = Outcome(index, event.event_id, DUPLICATE)
            else:
                rejections.append(_conflict(index, items[index], event))

        now = clock.now()
        refused = _append(new_events, source=source, received_at=now) if new_events else []
        if refused:
            # Copies of a refused event within the batch are refused with it.
            messages = {event.event_id: message for event, message in refused}
            new_events = [event for event in new_events if event.event_id not in messages]
            duplicates = [event for event in duplicates if event.event_id not in messages]
            copies = [candidates[event_id] for event_id in messages] + [
                (index, event)
                for index, event in batch.in_batch_duplicates
                if event.event_id in messages
            ]
            for index, event in copies:
                if outcomes[index] is None:  # already rejected: a conflicting copy
                    continue
                message = f"refused by the database: {messages[event.event_id]}"
                rejections.append(
                    _Rejection(
                        index,
                        items[index],
                        event.event_id,
                        event.type,
                        REFUSED,
                        [FieldError("(event)", message)],
                    )
                )
        rows = _quarantine(rejections, source, now) if quarantine else [None] * len(rejections)
        for rejection, row in zip(rejections, rows, strict=True):
            outcomes[rejection.index] = Outcome(
                rejection.index,
                rejection.event_id or None,
                REJECTED,
                rejection.errors,
                quarantine_id=row.pk if row is not None else None,
                reason=rejection.reason,
            )
        # A replay (quarantine=False) of a still-rejected input was counted when
        # it was first quarantined.
        record_ingestion(
            source=source,
            accepted=[event.type for event in new_events],
            duplicate=[event.type for event in duplicates],
            rejected=[(r.event_type, r.reason) for r in rejections] if quarantine else [],
        )

    assert all(outcome is not None for outcome in outcomes)
    return IngestReport([outcome for outcome in outcomes if outcome is not None])


def _append(
    events: list[InboundEvent], *, source: str, received_at: Any
) -> list[tuple[InboundEvent, str]]:
    """Append and project ``events``; return those the database refused, each
    with its message. A refused batch is halved until each event at fault is
    alone, so one event never takes its valid neighbours down with it.

    Only the refusal of a value (bad data, a broken rule, a limit) is
    isolated; a lost connection or a cancelled statement fails the batch, and
    the door retries it.
    """
    try:
        with transaction.atomic():
            event_store.copy_inbound(events, source=source, received_at=received_at)
            projection.project_pending()
        return []
    except Exception as exc:
        if _connection_lost(exc):
            raise
        error = exc
    if len(events) == 1:
        logger.warning("event %s refused by the database: %s", events[0].event_id, error)
        return [(events[0], wire.printable(str(error), 500))]
    middle = len(events) // 2
    return _append(events[:middle], source=source, received_at=received_at) + _append(
        events[middle:], source=source, received_at=received_at
    )


def _connection_lost(exc: BaseException) -> bool:
    """The server went away or cancelled the statement: not the data's fault.
    A program limit (a value too large for an index or a row) is reported as
    operational too, but it is the data's."""
    cause = exc.__cause__ if exc.__cause__ is not None else exc
    if isinstance(cause, psycopg.errors.ProgramLimitExceeded):
        return False
    return isinstance(
        exc, OperationalError | InterfaceError | psycopg.OperationalError | psycopg.InterfaceError
    )


def _conflict(index: int, item: Any, event: InboundEvent) -> _Rejection:
    message = (
        "an event with this event_id was already received with a different body;"
        " the first body stands"
    )
    return _Rejection(
        index,
        item,
        event.event_id,
        event.type,
        CONFLICT,
        [FieldError("event_id", message)],
    )


def _quarantine_row(
    item: Any, source: str, now: Any, event_id: str, event_type: str, reason: str, errors: Any
) -> QuarantinedInput:
    return QuarantinedInput(
        received_at=now,
        source=source,
        raw=_as_text(item),
        received=_received(item),
        event_id=event_id,
        event_type=event_type,
        reason=reason,
        errors=[
            {"field": wire.printable(e.field), "message": wire.printable(e.message, 1000)}
            for e in errors
        ],
    )


def _quarantine(rejections: list[_Rejection], source: str, now: Any) -> list[QuarantinedInput]:
    if not rejections:
        return []
    rows = [
        _quarantine_row(r.item, source, now, r.event_id, r.event_type, r.reason, r.errors)
        for r in rejections
    ]
    return QuarantinedInput.objects.bulk_create(rows)


def quarantine_unprocessable(raw: Any, *, source: str, message: str) -> QuarantinedInput:
    """Keep an input that could not be processed at all (e.g. a poison stream
    entry that keeps failing), so that it never blocks the door behind it."""
    try:
        body, _ = parse_json(raw) if isinstance(raw, str | bytes) else (raw, [])
    except Exception:  # whatever it is, it is kept
        body = None
    event_id, event_type = _identity(body)
    with transaction.atomic():
        entry = _quarantine_row(
            raw,
            source,
            clock.now(),
            event_id,
            event_type,
            UNPROCESSABLE,
            [FieldError("(entry)", message)],
        )
        entry.save()
        record_ingestion(source=source, rejected=[(event_type, UNPROCESSABLE)])
    return entry


def replay_quarantined(entry: QuarantinedInput, *, raw: str | None = None, by: str) -> Outcome:
    """Run a quarantined input, as ops corrected it, through the same pipeline.

    Accepted or duplicate: the entry is marked replayed. Still rejected: the
    entry stays open with the new errors, and no second entry is made.
    """
    with transaction.atomic():
        entry = QuarantinedInput.objects.select_for_update().get(pk=entry.pk)
        if entry.status != QuarantineStatus.OPEN:
            raise ValueError(f"quarantined input {entry.pk} is {entry.status}, not open")
        if raw is not None:
            entry.raw = raw
        outcome = ingest([entry.raw], source="replay", quarantine=False).outcomes[0]
        if outcome.status == REJECTED:
            entry.errors = [error.as_dict() for error in outcome.errors]
            entry.replay_result = "still rejected"
        else:
            entry.status = QuarantineStatus.REPLAYED
            entry.resolved_at = clock.now()
            entry.resolved_by = by
            entry.replay_result = outcome.status
        entry.save()
    return outcome


def discard_quarantined(entry: QuarantinedInput, *, by: str, note: str = "") -> None:
    """Close a quarantined input that must not be replayed (kept, never deleted)."""
    updated = QuarantinedInput.objects.filter(pk=entry.pk, status=QuarantineStatus.OPEN).update(
        status=QuarantineStatus.DISCARDED,
        resolved_at=clock.now(),
        resolved_by=by,
        replay_result=(note or "discarded")[:255],
    )
    if not updated:
        raise ValueError(f"quarantined input {entry.pk} is not open")
