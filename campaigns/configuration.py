"""The ``campaigns`` section of ``apply_config`` (docs/configuration.md).

Creates a campaign, or updates one that has not started (rules are frozen
from the start), and adds invitations (inline ids or a CSV file). Idempotent.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from campaigns import services
from campaigns.models import Campaign
from config import clock
from ledger.config_log import record_config_rows
from ledger.configuration import (
    ConfigError,
    FundingNeed,
    decimal_field,
    register_funding_needs,
    register_section,
)

_DATES = ("starts_at", "ends_at", "registration_opens_at", "registration_closes_at")
_AMOUNTS = ("volume_target", "cap_per_order", "daily_min_volume")
_INTS = ("losing_order_limit", "bonus_validity_days", "issuance_deadline_days")


def _fields(entry: dict[str, Any], where: str) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    for name in _DATES:
        if name in entry:
            value = entry[name]
            try:
                fields[name] = (
                    value.astimezone(dt.UTC)
                    if isinstance(value, dt.datetime) and value.tzinfo
                    else clock.parse_instant(str(value))
                )
            except ValueError as exc:
                raise ConfigError(f"{where}.{name}: {exc}") from None
    fields.setdefault("registration_opens_at", fields.get("starts_at"))
    fields.setdefault("registration_closes_at", fields.get("ends_at"))
    for name in _AMOUNTS:
        if name in entry:
            fields[name] = decimal_field(entry[name], f"{where}.{name}", positive=True)
    for name in _INTS:
        if name in entry:
            if not isinstance(entry[name], int) or entry[name] <= 0:
                raise ConfigError(f"{where}.{name}: must be a positive integer")
            fields[name] = entry[name]
    if "lateness_minutes" in entry:
        fields["lateness"] = dt.timedelta(minutes=int(entry["lateness_minutes"]))
    for name in ("title", "description", "asset", "funding_program"):
        if name in entry:
            fields[name] = str(entry[name])
    if "invitation_only" in entry:
        fields["invitation_only"] = bool(entry["invitation_only"])
    if "excluded_symbols" in entry:
        fields["excluded_symbols"] = [str(symbol) for symbol in entry["excluded_symbols"]]
    if "cards" in entry:
        fields["card_table"] = [
            {
                "percent": str(
                    decimal_field(row.get("percent"), f"{where}.cards[{i}].percent", positive=True)
                ),
                "weight": int(row.get("weight", 0)),
            }
            for i, row in enumerate(entry["cards"])
        ]
    if "prizes" in entry:
        fields["prize_table"] = [
            {
                "amount": str(
                    decimal_field(row.get("amount"), f"{where}.prizes[{i}].amount", positive=True)
                ),
                "weight": int(row.get("weight", 0)),
            }
            for i, row in enumerate(entry["prizes"])
        ]
    return fields


def apply_campaigns(section: Any, by: str) -> list[str]:
    if not isinstance(section, list):
        raise ConfigError("campaigns: must be a list")
    lines = []
    for index, entry in enumerate(section):
        where = f"campaigns[{index}]"
        if not isinstance(entry, dict) or not entry.get("slug"):
            raise ConfigError(f"{where}.slug: required")
        slug = str(entry["slug"])
        fields = _fields(entry, where)
        campaign = Campaign.objects.filter(slug=slug).first()
        try:
            if campaign is None:
                missing = [name for name in ("title", "starts_at", "ends_at") if name not in fields]
                if missing:
                    raise ConfigError(f"{where}: a new campaign needs {', '.join(missing)}")
                campaign = services.create_campaign(slug=slug, **fields)
                lines.append(f"campaign {slug}: created (seed sha256 {campaign.seed_hash})")
            else:
                changed = services.update_campaign(campaign, **fields)
                lines.append(
                    f"campaign {slug}: "
                    + (f"updated {', '.join(changed)}" if changed else "unchanged")
                )
        except ValueError as exc:
            raise ConfigError(f"{where}: {exc}") from None
        invited = [str(user_id) for user_id in entry.get("invitations", [])]
        if "invitations_csv" in entry:
            path = Path(str(entry["invitations_csv"]))
            if not path.is_file():
                raise ConfigError(f"{where}.invitations_csv: no such file {path}")
            invited += list(services.invitation_ids_from_csv(path.read_text()))
        if invited:
            added = services.invite(campaign, invited, source=f"apply_config by {by}")
            lines.append(f"  invitations: {added} new of {len(invited)}")
    return lines


def funding_needs(document: dict[str, Any]) -> Iterator[FundingNeed]:
    """Every campaign whose rewards are not issued yet pays them, in its asset,
    from its funding program (those of the file are among them by now)."""
    for campaign in Campaign.objects.filter(bonuses_issued_at__isnull=True).order_by("slug"):
        yield FundingNeed(f"campaign {campaign.slug}", campaign.funding_program, campaign.asset)


register_section("campaigns", apply_campaigns, order=200)
register_funding_needs(funding_needs)

# A campaign's settings are inputs of its decisions: every save is in the log.
record_config_rows(
    Campaign,
    runtime=(
        "spins_position",
        "drawn_at",
        "spins_voided_at",
        "bonuses_issued_at",
        "prizes_committed",
        "budget_alert",
        "budget_alert_at",
    ),
)
