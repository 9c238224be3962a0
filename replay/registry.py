"""What replay does with each kind of event, and what it compares.

Every type of the product's own events (origin ``rewards``) is one of:

- an **action** (a user's or ops' request: a registration, a spin, an Earn
  activation, a grant, a top-up): replay performs it again, through the same
  service, with the clock at the instant it was recorded. The service decides
  again and appends the event again; the comparison then shows whether it
  decided the same.
- a **record** (settings saved, an admin action): an input that no rule
  decides. It is appended as it was recorded, and ``apply`` writes what it
  holds (a settings row) back.
- a **decision** of a job (a draw, a payout, a voucher consumed): not
  replayed; the job runs again at the instant the original run used and
  appends it again.

A type no app declares stops the replay before it starts: every input of a
decision must be in the log, and replay must know which events are inputs.

Each app also names the tables that hold its decisions, as a query giving
rows in a stable order (their key first, no surrogate ids, no wall-clock
columns): replay compares them row by row.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


class Unreplayable(RuntimeError):
    """The log holds something replay cannot rebuild."""


@dataclass(frozen=True)
class RecordedEvent:
    """One of the product's events, as the source log holds it."""

    position: int
    event_id: str
    type: str
    occurred_at: Any
    received_at: Any
    user_id: str
    data: dict[str, Any]
    source: str


# Called with one event, or with ``batched`` consecutive events of one type,
# instant and source (one request: a grant of a thousand vouchers). A batched
# apply returns the events it refused: (event id, why).
Refusals = list[tuple[str, str]]
Apply = Callable[[list[RecordedEvent]], Refusals | None]


@dataclass(frozen=True)
class Handling:
    kind: str  # "action", "record" or "decision"
    apply: Apply | None = None
    batched: bool = False
    # Types of one group are batched together (a coverage spin and daily spins).
    group: str = ""


@dataclass(frozen=True)
class ComparedTable:
    """Rows of ``query`` (ordered by their first ``key_columns`` columns) must
    be the same in both databases."""

    name: str
    query: str
    key_columns: int = 1


_HANDLING: dict[str, Handling] = {}
_TABLES: dict[str, ComparedTable] = {}


def _add(event_type: str, handling: Handling) -> None:
    existing = _HANDLING.get(event_type)
    if existing is not None and existing != handling:
        raise ValueError(f"event type {event_type!r} is declared twice for replay")
    _HANDLING[event_type] = handling


def action(event_type: str, apply: Apply, *, batched: bool = False, group: str = "") -> None:
    """``apply`` performs the recorded request again, at its instant: with each
    event alone (each in its own transaction, as the request was), or with
    ``batched`` runs of them (of one ``group`` of types, when given)."""
    _add(event_type, Handling("action", apply, batched, group or event_type))


def record(event_type: str, apply: Apply | None = None) -> None:
    """Appended as recorded; ``apply`` writes back what it holds."""
    _add(event_type, Handling("record", apply, group=event_type))


def decisions(*event_types: str) -> None:
    """Appended by jobs: their reruns produce them again."""
    for event_type in event_types:
        _add(event_type, Handling("decision", group=event_type))


def compared(name: str, query: str, *, key_columns: int = 1) -> None:
    _TABLES[name] = ComparedTable(name, query, key_columns)


def handling(event_type: str) -> Handling | None:
    return _HANDLING.get(event_type)


def handled_types() -> dict[str, Handling]:
    return dict(_HANDLING)


def compared_tables() -> list[ComparedTable]:
    return list(_TABLES.values())
