"""Earn activations, folded from ``earn.activated`` and ``earn.deactivated``
(the events ``POST``/``DELETE /api/v1/earn/activation`` append). Activations
are keyed by their event's id, which is unique among the product's own events
only: the fold reads nothing else."""

from __future__ import annotations

from typing import Any

from ledger.projection import Projector, register


def _fold(cursor: Any, after: int, upto: int) -> None:
    cursor.execute(
        """
        INSERT INTO earn_activation (event_id, user_id, occurred_at, active)
        SELECT e.event_id, e.user_id, e.occurred_at, e.type = 'earn.activated'
        FROM ledger_event e
        WHERE e.position > %s AND e.position <= %s
          AND e.type IN ('earn.activated', 'earn.deactivated') AND e.origin = 'rewards'
        ON CONFLICT (event_id) DO NOTHING
        """,
        [after, upto],
    )


register(
    Projector(
        "earn",
        ("earn.activated", "earn.deactivated"),
        ("earn_activation",),
        _fold,
    )
)
