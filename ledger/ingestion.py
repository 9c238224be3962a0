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
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from django.db import transaction

from config import clock
from ledger import event_store, projection
from ledger.contract import FieldError, InboundEvent, parse_json, validate_event
from ledger.models import QuarantinedInput, QuarantineStatus
from monitoring.tallies import record_ingestion

ACCEPTED = "accepted"
DUPLICATE = "duplicate"
REJECTED = "rejected"

# Quarantine reasons.
INVALID = "invalid"
CONFLICT = "conflict"
UNPROCESSABLE = "unprocessable"


@dataclass(slots=True)
class Outcome:
    index: int
    event_id: str | None
    status: str
    errors: list[FieldError] = field(default_factory=list)
    quarantine_id: int | None = None

    def as_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "index": self.index,
            "event_id": self.event_id,
            "status": self.status,
        }
        if self.errors:
            body["errors"] = [error.as_dict() for error in self.errors]
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
    raw: str
    event_id: str
    event_type: str
    reason: str
    errors: list[FieldError]


def _as_text(item: Any) -> str:
    if isinstance(item, bytes):
        return item.decode("utf-8", errors="replace")
    if isinstance(item, str):
        return item
    return json.dumps(item, ensure_ascii=False, default=str)


def _identity(body: Any) -> tuple[str, str]:
    """The event id and type of a body, as far as they can be read, for ops."""
    if not isinstance(body, dict):
        return "", ""
    event_id, event_type = body.get("event_id"), body.get("type")
    return (
        event_id[:128] if isinstance(event_id, str) else "",
        event_type[:64] if isinstance(event_type, str) else "",
    )


@dataclass(slots=True)
class PreparedBatch:
    """A batch after the checks that need no database: parsed, validated, and
    deduplicated within itself."""

    items: Sequence[Any]
    rejections: list[_Rejection]
    candidates: dict[str, tuple[int, InboundEvent]]
    in_batch_duplicates: list[tuple[int, InboundEvent]]


def prepare(items: Sequence[Any]) -> PreparedBatch:
    """Parse and validate a batch (pure: no database). Doors that stream may
    prepare the next batch while the previous one commits."""
    rejections: list[_Rejection] = []
    candidates: dict[str, tuple[int, InboundEvent]] = {}
    in_batch_duplicates: list[tuple[int, InboundEvent]] = []
    for index, item in enumerate(items):
        if isinstance(item, str | bytes):
            body, errors = parse_json(item)
        else:
            body, errors = item, []
        event: InboundEvent | None = None
        if not errors:
            event, errors = validate_event(body)
        if event is None:
            event_id, event_type = _identity(body)
            rejections.append(
                _Rejection(index, _as_text(item), event_id, event_type, INVALID, errors)
            )
            continue
        if event.event_id in candidates:
            in_batch_duplicates.append((index, event))
        else:
            candidates[event.event_id] = (index, event)
    return PreparedBatch(items, rejections, candidates, in_batch_duplicates)


def ingest(items: Sequence[Any], *, source: str, quarantine: bool = True) -> IngestReport:
    """Ingest a batch: raw JSON texts (``str``/``bytes``) or decoded objects.

    One database transaction for the whole batch: the events, their
    projections and the quarantine rows commit together or not at all.
    ``quarantine=False`` is for replaying an input that is already quarantined.
    """
    return commit(prepare(items), source=source, quarantine=quarantine)


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
        if new_events:
            event_store.copy_inbound(new_events, source=source, received_at=now)
            projection.project_pending()
        rows = _quarantine(rejections, source, now) if quarantine else [None] * len(rejections)
        for rejection, row in zip(rejections, rows, strict=True):
            outcomes[rejection.index] = Outcome(
                rejection.index,
                rejection.event_id or None,
                REJECTED,
                rejection.errors,
                quarantine_id=row.pk if row is not None else None,
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


def _conflict(index: int, item: Any, event: InboundEvent) -> _Rejection:
    message = (
        "an event with this event_id was already received with a different body;"
        " the first body stands"
    )
    return _Rejection(
        index,
        _as_text(item),
        event.event_id,
        event.type,
        CONFLICT,
        [FieldError("event_id", message)],
    )


def _quarantine(rejections: list[_Rejection], source: str, now: Any) -> list[QuarantinedInput]:
    if not rejections:
        return []
    return QuarantinedInput.objects.bulk_create(
        [
            QuarantinedInput(
                received_at=now,
                source=source,
                raw=rejection.raw,
                event_id=rejection.event_id,
                event_type=rejection.event_type,
                reason=rejection.reason,
                errors=[error.as_dict() for error in rejection.errors],
            )
            for rejection in rejections
        ]
    )


def quarantine_unprocessable(raw: Any, *, source: str, message: str) -> QuarantinedInput:
    """Keep an input that could not be processed at all (e.g. a poison stream
    entry that keeps failing), so that it never blocks the door behind it."""
    body, _ = parse_json(raw) if isinstance(raw, str | bytes) else (raw, [])
    event_id, event_type = _identity(body)
    with transaction.atomic():
        entry = QuarantinedInput.objects.create(
            received_at=clock.now(),
            source=source,
            raw=_as_text(raw),
            event_id=event_id,
            event_type=event_type,
            reason=UNPROCESSABLE,
            errors=[{"field": "(entry)", "message": message}],
        )
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
