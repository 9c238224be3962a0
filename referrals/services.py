"""Writes of the referrals app: program terms and community-partner flags."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from access.errors import DomainError
from config import clock
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


def flag_partner(user_id: str, *, note: str = "") -> CommunityPartner:
    active = CommunityPartner.objects.filter(user_id=user_id, until__isnull=True).first()
    return active or CommunityPartner.objects.create(user_id=user_id, since=clock.now(), note=note)


def unflag_partner(user_id: str) -> int:
    return CommunityPartner.objects.filter(user_id=user_id, until__isnull=True).update(
        until=clock.now()
    )
