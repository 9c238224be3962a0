"""Projector plumbing: read models folded from the event log.

A projector declares the event types it reads, the tables it owns and one
set-based ``apply(cursor, after, upto)`` that folds the events with positions in
``(after, upto]`` into its tables. Ranges are applied in log order, and each
projector keeps its own checkpoint, so a projector added later catches up from
position 0 on the next append or ``rebuild_projections``.

Projection always runs under the append lock (see ``ledger.event_store``): in
the transaction that appended the events, or in a rebuild that holds the lock.
Folds must give the same result for any split of the log into ranges, which is
what makes a rebuild reproduce the read models exactly.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.db import connection, transaction

from config import clock

# Positions folded per statement: bounds the memory and the size of one step.
CHUNK = 200_000

Apply = Callable[[Any, int, int], None]


@dataclass(frozen=True)
class Projector:
    name: str
    event_types: tuple[str, ...]
    tables: tuple[str, ...]
    apply: Apply


_REGISTRY: dict[str, Projector] = {}


def register(projector: Projector) -> Projector:
    """Add a projector; apps call this from their ``projections`` module."""
    _REGISTRY[projector.name] = projector
    return projector


def projectors() -> list[Projector]:
    return list(_REGISTRY.values())


def _checkpoints(cursor: Any) -> dict[str, int]:
    cursor.execute("SELECT projector, position FROM ledger_projectioncheckpoint")
    return dict(cursor.fetchall())


def _save_checkpoint(cursor: Any, name: str, position: int) -> None:
    cursor.execute(
        "INSERT INTO ledger_projectioncheckpoint (projector, position, updated_at)"
        " VALUES (%s, %s, %s) ON CONFLICT (projector) DO UPDATE"
        " SET position = EXCLUDED.position, updated_at = EXCLUDED.updated_at",
        [name, position, clock.now()],
    )


def _has_events(cursor: Any, projector: Projector, after: int, upto: int) -> bool:
    cursor.execute(
        "SELECT EXISTS (SELECT 1 FROM ledger_event WHERE type = ANY(%s)"
        " AND position > %s AND position <= %s)",
        [list(projector.event_types), after, upto],
    )
    return bool(cursor.fetchone()[0])


def project_pending(*, progress: Callable[[str, int, int], None] | None = None) -> int:
    """Fold every event not yet seen by each projector. Caller holds the append lock.

    Returns the log position everything is now projected up to.
    """
    with connection.cursor() as cursor:
        cursor.execute("SELECT coalesce(max(position), 0) FROM ledger_event")
        head = int(cursor.fetchone()[0])
        done = _checkpoints(cursor)
        for projector in _REGISTRY.values():
            after = done.get(projector.name, 0)
            if after >= head:
                continue
            while after < head:
                upto = min(after + CHUNK, head)
                if _has_events(cursor, projector, after, upto):
                    projector.apply(cursor, after, upto)
                after = upto
                if progress is not None:
                    progress(projector.name, after, head)
            _save_checkpoint(cursor, projector.name, head)
    return head


def rebuild(*, progress: Callable[[str, int, int], None] | None = None) -> int:
    """Empty every read model and fold the whole log again, in one transaction.

    Read models are projections, not facts: emptying them loses nothing.
    """
    from ledger.event_store import take_append_lock

    with transaction.atomic():
        take_append_lock()
        with connection.cursor() as cursor:
            # Deferred foreign-key checks pending in this transaction would
            # block TRUNCATE: run them now.
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
            for projector in _REGISTRY.values():
                for table in projector.tables:
                    cursor.execute(f'TRUNCATE "{table}"')
            cursor.execute("DELETE FROM ledger_projectioncheckpoint")
        return project_pending(progress=progress)
