"""Writes of the referrals app: program terms and community-partner flags."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.db import connection, transaction

from access.errors import DomainError
from config import clock
from ledger.event_store import DomainEvent, append_domain_event
from referrals import rules
from referrals.models import CommunityPartner, ProgramTerms


class ReferralRefusal(DomainError):
    def __init__(self, code: str, message: str) -> None:
        self.code = code
        super().__init__(message)


def save_terms(
    *,
    program: str,
    effective_from: dt.datetime,
    validity_days: int | None,
    tiers: list[dict[str, Any]],
    partner_rate: Decimal | None,
) -> ProgramTerms:
    """Terms from an instant on. Terms already in force are history: changing
    one that took effect in the past is refused (add a new row instead)."""
    if program not in rules.DEFAULT_TERMS:
        raise ValueError(f"program: futures or spot, not {program!r}")
    parsed = rules.parse_tiers(tiers)
    if not parsed or any(t.rate < 0 or t.rate > 1 for t in parsed):
        raise ValueError("tiers: a list of {min_mx, rate} with rates between 0 and 1")
    existing = ProgramTerms.objects.filter(program=program, effective_from=effective_from).first()
    values = {"validity_days": validity_days, "tiers": tiers, "partner_rate": partner_rate}
    if existing is not None:
        same = (existing.validity_days, existing.tiers, existing.partner_rate) == (
            validity_days,
            tiers,
            partner_rate,
        )
        if not same and effective_from <= clock.now():
            raise ValueError(
                f"{program} terms from {effective_from} are in force; add new terms instead"
            )
        for name, value in values.items():
            setattr(existing, name, value)
        existing.save()
        return existing
    return ProgramTerms.objects.create(program=program, effective_from=effective_from, **values)


@dataclass(frozen=True)
class PartnerChange:
    user_id: str
    partner: bool
    changed: bool


def set_partner(user_id: str, *, partner: bool, by: str, note: str = "") -> PartnerChange:
    """Flag a referrer as a community partner from now on, or end the flag now.

    Idempotent: setting the status the user already has changes nothing and
    records nothing. A change is recorded as a domain event
    (``referral.partner_flagged`` / ``referral.partner_unflagged``) naming who
    made it, in the same transaction: the partner rate pays more, so who
    granted it is kept with the log. A flag ended keeps its row (``until``):
    settlements of earlier days still see the partner as of their day.
    """
    now = clock.now()
    with transaction.atomic():
        # One change at a time per user: two concurrent flags open one row.
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", [f"partner:{user_id}"]
            )
        active = CommunityPartner.going_on(user_id, now)
        if partner == active.exists():
            return PartnerChange(user_id, partner, changed=False)
        if partner:
            CommunityPartner.objects.create(user_id=user_id, since=now, note=note)
            kind = "referral.partner_flagged"
        else:
            active.update(until=now)
            kind = "referral.partner_unflagged"
        append_domain_event(
            DomainEvent(
                event_id=f"{kind}:{user_id}:{now.isoformat()}",
                type=kind,
                occurred_at=now,
                user_id=user_id,
                data={"by": by, "note": note},
            )
        )
    return PartnerChange(user_id, partner, changed=True)
