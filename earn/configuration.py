"""The ``earn_terms`` section of ``apply_config`` (docs/configuration.md)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

from config import clock
from earn import selectors, services
from earn.jobs import POOL_PROGRAM
from earn.models import Activation, EarnTerms
from ledger.config_log import record_config_rows
from ledger.configuration import (
    ConfigError,
    FundingNeed,
    decimal_field,
    register_funding_needs,
    register_section,
)


def apply_earn_terms(section: Any, by: str) -> list[str]:
    if not isinstance(section, list):
        raise ConfigError("earn_terms: must be a list")
    lines = []
    for index, entry in enumerate(section):
        where = f"earn_terms[{index}]"
        if not isinstance(entry, dict):
            raise ConfigError(f"{where}: must be a mapping")
        try:
            effective_from = dt.date.fromisoformat(str(entry.get("effective_from", "")))
        except ValueError:
            raise ConfigError(f"{where}.effective_from: a day, YYYY-MM-DD") from None
        assets = entry.get("assets", ["USDT", "USDC"])
        times = entry.get("snapshot_times", ["00:00", "08:00", "16:00"])
        if not isinstance(assets, list):
            raise ConfigError(f"{where}.assets: must be a list")
        if not isinstance(times, list):
            raise ConfigError(f"{where}.snapshot_times: must be a list")
        try:
            terms = services.save_terms(
                effective_from=effective_from,
                assets=[str(a) for a in assets],
                position_threshold=decimal_field(
                    entry.get("position_threshold", "100000"), f"{where}.position_threshold"
                ),
                boosted_principal=decimal_field(
                    entry.get("boosted_principal", "25000"), f"{where}.boosted_principal"
                ),
                boosted_apr=decimal_field(entry.get("boosted_apr"), f"{where}.boosted_apr"),
                base_apr=decimal_field(entry.get("base_apr"), f"{where}.base_apr"),
                snapshot_times=[str(t) for t in times],
            )
        except ValueError as exc:
            raise ConfigError(f"{where}: {exc}") from None
        lines.append(str(terms))
    return lines


def funding_needs(document: dict[str, Any]) -> Iterator[FundingNeed]:
    """Earn, once configured or once a user has activated it, pays each asset of
    the terms in force today and of every later terms from the ``earn`` pool."""
    if "earn_terms" not in document and not Activation.objects.exists():
        return
    today = clock.today()
    assets = set(selectors.terms_for(today).assets)
    for later in EarnTerms.objects.filter(effective_from__gt=today):
        assets.update(later.assets)
    for asset in sorted(assets):
        yield FundingNeed("Earn interest", POOL_PROGRAM, asset)


register_section("earn_terms", apply_earn_terms, order=170)
register_funding_needs(funding_needs)

# The terms are inputs of every interest decision: every save is in the log.
record_config_rows(EarnTerms)
