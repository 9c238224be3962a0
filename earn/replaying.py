"""How replay rebuilds Futures Earn (replay.registry): activations are made
again; snapshots, accruals and interest payouts are decided again by the jobs."""

from __future__ import annotations

from earn import services
from replay import registry
from replay.registry import RecordedEvent


def _set(active: bool) -> registry.Apply:
    def set_active(batch: list[RecordedEvent]) -> None:
        for event in batch:
            services.set_active(event.user_id, active)

    return set_active


registry.action("earn.activated", _set(True))
registry.action("earn.deactivated", _set(False))
registry.decisions("earn.interest_paid")

registry.compared(
    "earn: activations",
    "SELECT event_id, user_id, occurred_at, active FROM earn_activation"
    ' ORDER BY event_id COLLATE "C"',
)
registry.compared(
    "earn: snapshot runs",
    "SELECT at, taken_at, users FROM earn_snapshotrun ORDER BY at, taken_at",
    key_columns=2,
)
registry.compared(
    "earn: snapshots",
    "SELECT at, user_id, asset, principal, position_value FROM earn_snapshot"
    ' ORDER BY at, user_id COLLATE "C", asset COLLATE "C"',
    key_columns=3,
)
registry.compared(
    "earn: accruals",
    "SELECT day, accrued_at, terms_from, rows, totals FROM earn_accrual ORDER BY day, accrued_at",
    key_columns=2,
)
registry.compared(
    "earn: daily interest",
    "SELECT day, user_id, asset, snapshots, principal, position_value, boosted_portion,"
    " boosted_apr, base_portion, base_apr, interest FROM earn_dailyinterest"
    ' ORDER BY day, user_id COLLATE "C", asset COLLATE "C"',
    key_columns=3,
)
registry.compared(
    "earn: distributions",
    "SELECT day, distributed_at, credits, totals FROM earn_earndistribution"
    " ORDER BY day, distributed_at",
    key_columns=2,
)
