"""Writes of Futures Earn: activation changes (as events) and the terms."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from django.db import connection, transaction

from access.errors import DomainError
from config import clock
from earn import rules
from earn.models import Activation, EarnTerms
from ledger.event_store import DomainEvent, append_domain_events


class EarnRefusal(DomainError):
    def __init__(self, code: str, message: str) -> None:
        self.code = code
        super().__init__(message)


def set_active(user_id: str, active: bool) -> tuple[Activation | None, bool]:
    """Activate or deactivate Earn for a user from now on (RULES.md 4: activate
    once, deactivate at any time). Recorded as an ``earn.activated`` or
    ``earn.deactivated`` event with its instant. Asking for the state the user
    is already in records nothing. Returns the latest change and whether one
    was recorded."""
    with transaction.atomic():
        with connection.cursor() as cursor:
            # Two requests of one user at once record one change.
            cursor.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", [f"earn:{user_id}"])
        latest = Activation.objects.filter(user_id=user_id).order_by("-occurred_at").first()
        if (latest is not None and latest.active) == active:
            return latest, False
        now = clock.now()
        kind = "earn.activated" if active else "earn.deactivated"
        event_id = f"{kind}:{user_id}:{now.isoformat()}"
        append_domain_events(
            [DomainEvent(event_id=event_id, type=kind, occurred_at=now, data={}, user_id=user_id)]
        )
        return Activation.objects.get(event_id=event_id), True


def save_terms(
    *,
    effective_from: dt.date,
    assets: list[str],
    position_threshold: Decimal,
    boosted_principal: Decimal,
    boosted_apr: Decimal,
    base_apr: Decimal,
    snapshot_times: list[str],
) -> EarnTerms:
    """Terms from a UTC day on. Terms already in force are history: changing
    them is refused (add a row with a later ``effective_from`` instead)."""
    rules.parse_times(snapshot_times)
    if not assets or any(not isinstance(a, str) or not a for a in assets):
        raise ValueError("assets: a non-empty list of asset codes")
    for name, value in (("boosted_apr", boosted_apr), ("base_apr", base_apr)):
        if not Decimal(0) <= value <= Decimal(1):
            raise ValueError(f"{name}: between 0 and 1 (0.15 is 15%)")
    for name, value in (
        ("position_threshold", position_threshold),
        ("boosted_principal", boosted_principal),
    ):
        if value < 0:
            raise ValueError(f"{name}: must not be negative")
    values: dict[str, Any] = {
        "assets": assets,
        "position_threshold": position_threshold,
        "boosted_principal": boosted_principal,
        "boosted_apr": boosted_apr,
        "base_apr": base_apr,
        "snapshot_times": snapshot_times,
    }
    existing = EarnTerms.objects.filter(effective_from=effective_from).first()
    if existing is not None:
        changed = any(getattr(existing, name) != value for name, value in values.items())
        if changed and effective_from <= clock.today():
            raise ValueError(
                f"Earn terms from {effective_from} are in force; add new terms instead"
            )
        for name, value in values.items():
            setattr(existing, name, value)
        existing.save()
        return existing
    return EarnTerms.objects.create(effective_from=effective_from, **values)
