"""The ``voucher_programs`` section of ``apply_config`` (docs/configuration.md)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

from config import clock
from ledger.config_log import record_config_rows
from ledger.configuration import (
    ConfigError,
    FundingNeed,
    decimal_field,
    register_funding_needs,
    register_section,
)
from vouchers import services
from vouchers.models import VoucherProgram, VoucherTemplate


def apply_voucher_programs(section: Any, by: str) -> list[str]:
    if not isinstance(section, list):
        raise ConfigError("voucher_programs: must be a list")
    lines = []
    for index, entry in enumerate(section):
        where = f"voucher_programs[{index}]"
        if not isinstance(entry, dict) or not entry.get("slug"):
            raise ConfigError(f"{where}.slug: required")
        program = services.save_program(
            slug=str(entry["slug"]),
            title=str(entry.get("title", entry["slug"])),
            asset=str(entry.get("asset", "USDT")),
            funding_program=str(entry.get("funding_program", "")),
        )
        lines.append(f"voucher program {program.slug}")
        for number, template in enumerate(entry.get("templates", [])):
            there = f"{where}.templates[{number}]"
            if not isinstance(template, dict) or not template.get("code"):
                raise ConfigError(f"{there}.code: required")
            valid_until: dt.datetime | None = None
            if template.get("valid_until"):
                try:
                    valid_until = clock.parse_instant(str(template["valid_until"]))
                except ValueError as exc:
                    raise ConfigError(f"{there}.valid_until: {exc}") from None
            minimum = template.get("min_closing_amount")
            try:
                services.save_template(
                    program=program,
                    code=str(template["code"]),
                    face_value=decimal_field(
                        template.get("face_value"), f"{there}.face_value", positive=True
                    ),
                    validity_days=int(template["validity_days"])
                    if template.get("validity_days")
                    else None,
                    valid_until=valid_until,
                    min_closing_amount=decimal_field(
                        minimum, f"{there}.min_closing_amount", positive=True
                    )
                    if minimum is not None
                    else None,
                )
            except ValueError as exc:
                raise ConfigError(f"{there}: {exc}") from None
            lines.append(f"  template {template['code']}")
        grants = [
            services.Grant(
                key=str(grant.get("key", "")),
                user_id=str(grant.get("user_id", "")),
                program=program.slug,
                template=str(grant.get("template", "")),
            )
            for grant in entry.get("grants", [])
        ]
        if grants:
            report = services.grant_vouchers(grants, source=f"apply_config by {by}")
            if report.rejected:
                errors = [r for r in report.results if r["status"] == "rejected"]
                raise ConfigError(f"{where}.grants: {errors[0]}")
            lines.append(f"  grants: {report.granted} new, {report.duplicate} already granted")
    return lines


def funding_needs(document: dict[str, Any]) -> Iterator[FundingNeed]:
    """Every voucher program can pay: vouchers are granted to it at any time."""
    for program in VoucherProgram.objects.order_by("slug"):
        yield FundingNeed(f"voucher program {program.slug}", program.funding_program, program.asset)


register_section("voucher_programs", apply_voucher_programs, order=150)
register_funding_needs(funding_needs)

# Programs and templates are inputs of grants and payouts: every save is in the log.
record_config_rows(VoucherProgram, runtime=("budget_alert", "budget_alert_at"))
record_config_rows(VoucherTemplate)
