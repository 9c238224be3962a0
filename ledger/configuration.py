"""Programs as code: ``apply_config FILE`` (YAML or JSON).

The file is a mapping of sections; each app registers the sections it owns
(``register_section``) with a function that applies one section idempotently
and returns lines describing what changed. The ledger owns
``funding_accounts``. Applying the same file twice changes nothing the second
time. The whole file applies in one database transaction: all or nothing.
See docs/configuration.md for the schema.

Each program also says which funding accounts it can pay from
(``register_funding_needs``): once the file is applied, a program configured
in it or already live that can pay in an asset whose pool does not exist, or
holds nothing, is a warning line of the output. Its payouts would be refused.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import yaml
from django.db import transaction

from ledger.bookkeeping import fund_account, funding_account_code, open_funding_account
from ledger.models import Account, AccountKind, LedgerTransaction
from ledger.money import for_people


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


@dataclass(frozen=True)
class FundingNeed:
    """A program that can pay in ``asset`` from the funding account of ``program``."""

    payer: str  # as ops name it: "campaign winter-2026", "referral commissions"
    program: str
    asset: str


# Given the applied document, what programs configured in it or already live can pay from.
FundingNeeds = Callable[[dict[str, Any]], Iterable[FundingNeed]]

_NEEDS: list[FundingNeeds] = []


def register_funding_needs(needs: FundingNeeds) -> None:
    _NEEDS.append(needs)


def funding_warnings(document: dict[str, Any]) -> list[str]:
    """A line per pool a program can pay from that does not exist or holds nothing."""
    needs = sorted(
        {need for find in _NEEDS for need in find(document)},
        key=lambda n: (n.program, n.asset, n.payer),
    )
    codes = {funding_account_code(n.program, n.asset) for n in needs}
    balances = dict(
        Account.objects.filter(kind=AccountKind.FUNDING, code__in=codes).values_list(
            "code", "balance"
        )
    )
    lines = []
    for need in needs:
        code = funding_account_code(need.program, need.asset)
        if code not in balances:
            state = "which does not exist"
        elif balances[code] <= 0:
            state = f"which holds {for_people(balances[code], need.asset)}"
        else:
            continue
        lines.append(
            f"warning: {need.payer} can pay in {need.asset} from {code}, {state}; its payouts"
            f" will be refused until it is funded (funding_accounts: program {need.program!r},"
            f" asset {need.asset})"
        )
    return lines


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
        lines += funding_warnings(document)
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
            lines.append(f"  top-up {key}: +{for_people(amount, asset)}")
    return lines


register_section("funding_accounts", _apply_funding_accounts, order=0)
