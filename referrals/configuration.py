"""The ``referral_programs`` section of ``apply_config`` (docs/configuration.md)."""

from __future__ import annotations

from typing import Any

from config import clock
from ledger.configuration import ConfigError, decimal_field, register_section
from referrals import services


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


register_section("referral_programs", apply_referral_programs, order=160)
