"""Programs as code: ``apply_config FILE`` (YAML or JSON).

The file is a mapping of sections; each app registers the sections it owns
(``register_section``) with a function that applies one section idempotently
and returns lines describing what changed. The ledger owns
``funding_accounts``. Applying the same file twice changes nothing the second
time. The whole file applies in one database transaction: all or nothing.
See docs/configuration.md for the schema.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import yaml
from django.db import transaction

from ledger.bookkeeping import fund_account, open_funding_account
from ledger.models import LedgerTransaction


class ConfigError(ValueError):
    """The file is not valid; the message names the section and field."""


ApplySection = Callable[[Any, str], list[str]]


@dataclass(frozen=True)
class Section:
    name: str
    apply: ApplySection
    order: int


_SECTIONS: dict[str, Section] = {}


def register_section(name: str, apply: ApplySection, *, order: int = 100) -> None:
    """Register a top-level section; lower ``order`` applies first (funding first)."""
    _SECTIONS[name] = Section(name, apply, order)


def load(path: Path) -> dict[str, Any]:
    try:
        document = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML/JSON: {exc}") from exc
    if document is None:
        return {}
    if not isinstance(document, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of sections")
    return document


def apply_config(document: dict[str, Any], *, by: str) -> list[str]:
    unknown = sorted(set(document) - set(_SECTIONS))
    if unknown:
        raise ConfigError(
            f"unknown section(s) {', '.join(unknown)}; known: {', '.join(sorted(_SECTIONS))}"
        )
    lines: list[str] = []
    with transaction.atomic():
        for section in sorted(_SECTIONS.values(), key=lambda s: s.order):
            if section.name in document:
                lines += section.apply(document[section.name], by)
    return lines


def decimal_field(value: Any, where: str, *, positive: bool = False) -> Decimal:
    """A config amount: a decimal written as a string (or an integer), never a float."""
    if isinstance(value, bool | float):
        raise ConfigError(f'{where}: write amounts as strings ("100.5"), not floats')
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        raise ConfigError(f"{where}: {value!r} is not a decimal number") from None
    if not number.is_finite() or (positive and number <= 0):
        raise ConfigError(f"{where}: must be a {'positive ' if positive else ''}number")
    return number


def _require(entry: Any, key: str, where: str) -> Any:
    if not isinstance(entry, dict) or key not in entry:
        raise ConfigError(f"{where}.{key}: required")
    return entry[key]


def _apply_funding_accounts(section: Any, by: str) -> list[str]:
    if not isinstance(section, list):
        raise ConfigError("funding_accounts: must be a list")
    lines = []
    for index, entry in enumerate(section):
        where = f"funding_accounts[{index}]"
        program = str(_require(entry, "program", where))
        asset = str(_require(entry, "asset", where)).upper()
        account = open_funding_account(program=program, asset=asset)
        lines.append(f"funding account {account.code}")
        top_ups = entry.get("top_ups", [])
        if not isinstance(top_ups, list):
            raise ConfigError(f"{where}.top_ups: must be a list")
        for number, top_up in enumerate(top_ups):
            there = f"{where}.top_ups[{number}]"
            key = str(_require(top_up, "key", there))
            amount = decimal_field(
                _require(top_up, "amount", there), f"{there}.amount", positive=True
            )
            existing = LedgerTransaction.objects.filter(idempotency_key=f"funding:{key}").first()
            if existing is not None:
                lines.append(f"  top-up {key}: already applied")
                continue
            fund_account(
                account=account,
                amount=amount,
                idempotency_key=key,
                by=by,
                note=str(top_up.get("note", "")),
            )
            lines.append(f"  top-up {key}: +{amount} {asset}")
    return lines


register_section("funding_accounts", _apply_funding_accounts, order=0)
