"""The ``referral_programs`` and ``community_partners`` sections of ``apply_config``
(docs/configuration.md)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from access.middleware import user_id_problem
from config import clock
from ledger.config_log import record_config_rows
from ledger.configuration import (
    ConfigError,
    FundingNeed,
    decimal_field,
    register_funding_needs,
    register_section,
)
from referrals import services
from referrals.jobs import POOL_PROGRAM
from referrals.models import Commission, CommissionStatus, Distribution, ProgramTerms, Relation


def apply_referral_programs(section: Any, by: str) -> list[str]:
    if not isinstance(section, list):
        raise ConfigError("referral_programs: must be a list")
    lines = []
    for index, entry in enumerate(section):
        where = f"referral_programs[{index}]"
        if not isinstance(entry, dict):
            raise ConfigError(f"{where}: must be a mapping")
        try:
            effective_from = clock.parse_instant(str(entry.get("effective_from", "")))
        except ValueError as exc:
            raise ConfigError(f"{where}.effective_from: {exc}") from None
        tiers = [
            {
                "min_mx": str(decimal_field(tier.get("min_mx", 0), f"{where}.tiers[{n}].min_mx")),
                "rate": str(decimal_field(tier.get("rate"), f"{where}.tiers[{n}].rate")),
            }
            for n, tier in enumerate(entry.get("tiers", []))
        ]
        partner = entry.get("partner_rate")
        try:
            terms = services.save_terms(
                program=str(entry.get("program", "")),
                effective_from=effective_from,
                validity_days=int(entry["validity_days"]) if entry.get("validity_days") else None,
                tiers=tiers,
                partner_rate=decimal_field(partner, f"{where}.partner_rate")
                if partner is not None
                else None,
            )
        except ValueError as exc:
            raise ConfigError(f"{where}: {exc}") from None
        lines.append(f"referral terms {terms}")
    return lines


NOTE_MAX = 200  # CommunityPartner.note


def apply_community_partners(section: Any, by: str) -> list[str]:
    """Flag users as community partners (``partner: true``, the default) or end
    their flag (``partner: false``); a user already as the file says is left
    alone, so applying a file twice changes nothing."""
    if not isinstance(section, list):
        raise ConfigError("community_partners: must be a list")
    wanted = []
    for index, entry in enumerate(section):
        where = f"community_partners[{index}]"
        if not isinstance(entry, dict) or "user_id" not in entry:
            raise ConfigError(f"{where}.user_id: required")
        user_id = entry["user_id"]
        problem = user_id_problem(user_id) if isinstance(user_id, str) else "must be a string"
        if problem is not None:
            raise ConfigError(f"{where}.user_id: {problem}")
        partner = entry.get("partner", True)
        if not isinstance(partner, bool):
            raise ConfigError(f"{where}.partner: true or false")
        note = entry.get("note", "")
        if not isinstance(note, str) or len(note) > NOTE_MAX:
            raise ConfigError(f"{where}.note: text of at most {NOTE_MAX} characters")
        wanted.append((user_id, partner, note))
    lines = []
    for user_id, partner, note in wanted:
        change = services.set_partner(user_id, partner=partner, by=by, note=note)
        if partner:
            state = "flagged" if change.changed else "already a partner"
        else:
            state = "flag ended" if change.changed else "not a partner"
        lines.append(f"community partner {user_id}: {state}")
    return lines


# The asset most fees are charged in (quote of the USDT-margined markets):
# the pool needs it before the first commission is settled.
FIRST_ASSET = "USDT"


def funding_needs(document: dict[str, Any]) -> Iterator[FundingNeed]:
    """Referrals, once configured or once a relation exists, pay commissions in
    the fee's asset from the ``referrals`` pool of that asset: USDT from the
    start, and every asset of a commission still owed. (A remainder carried
    alone is below the smallest payout: it is paid with a commission.)"""
    configured = "referral_programs" in document or "community_partners" in document
    if not configured and not Relation.objects.filter(refusal="").exists():
        return
    last = Distribution.objects.order_by("-day").first()
    # Below unpaid_from every commission was paid or invalidated (Distribution).
    owed = Commission.objects.filter(
        status=CommissionStatus.SETTLED, id__gte=last.unpaid_from if last else 0
    )
    assets = {FIRST_ASSET, *owed.values_list("asset", flat=True).distinct()}
    for asset in sorted(assets):
        yield FundingNeed("referral commissions", POOL_PROGRAM, asset)


register_section("referral_programs", apply_referral_programs, order=160)
register_section("community_partners", apply_community_partners, order=165)
register_funding_needs(funding_needs)

# The terms are inputs of every commission: every save is in the log.
record_config_rows(ProgramTerms)
