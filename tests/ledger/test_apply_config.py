"""apply_config: funding accounts and top-ups from a file, idempotently."""

from __future__ import annotations

import io
from decimal import Decimal
from pathlib import Path

import pytest
import yaml
from django.core.management import call_command
from django.core.management.base import CommandError

from earn import services as earn_services
from ledger.configuration import apply_config
from ledger.models import Account, Event

pytestmark = pytest.mark.django_db

CONFIG = """
funding_accounts:
  - program: "campaign:winter-2026"
    asset: USDT
    top_ups:
      - key: winter-2026-initial
        amount: "100000"
        note: initial budget
      - key: winter-2026-extra
        amount: "2500.5"
  - program: vouchers
    asset: usdt
"""


def test_applying_twice_funds_once(tmp_path: Path) -> None:
    path = tmp_path / "programs.yaml"
    path.write_text(CONFIG)
    out = io.StringIO()
    call_command("apply_config", str(path), "--by", "ops@example", stdout=out)
    assert "  top-up winter-2026-initial: +100,000 USDT\n" in out.getvalue()
    assert "  top-up winter-2026-extra: +2,500.5 USDT\n" in out.getvalue()
    call_command("apply_config", str(path), stdout=io.StringIO())
    winter = Account.objects.get(code="funding:campaign:winter-2026:USDT")
    assert winter.balance == Decimal("102500.5")
    assert Account.objects.get(code="funding:vouchers:USDT").balance == Decimal("0")
    assert Event.objects.filter(type="ledger.account_funded").count() == 2
    assert Event.objects.filter(type="ledger.account_funded").first().data["by"] == "ops@example"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("campaigns_typo: []", "unknown section"),
        ("funding_accounts: {}", "must be a list"),
        ("funding_accounts:\n  - asset: USDT", r"funding_accounts\[0\].program: required"),
        (
            "funding_accounts:\n  - program: p\n    asset: USDT\n    top_ups:\n      - key: k\n        amount: 10.5",
            "not floats",
        ),
        (
            "funding_accounts:\n  - program: p\n    asset: USDT\n    top_ups:\n      - key: k\n        amount: '-1'",
            "positive",
        ),
        ("funding_accounts: [", "not valid YAML"),
    ],
)
def test_errors_name_the_field(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(CommandError, match=message):
        call_command("apply_config", str(path), stdout=io.StringIO())
    assert not Account.objects.filter(kind="funding").exists()


PROGRAMS = """
funding_accounts:
  - program: earn
    asset: USDT
    top_ups: [{key: earn-usdt-1, amount: "5000"}]
  - program: referrals
    asset: USDC
voucher_programs:
  - slug: welcome
    title: Welcome vouchers
referral_programs:
  - program: spot
    effective_from: "2026-12-01T00:00:00Z"
    tiers: [{min_mx: "0", rate: "0.20"}]
earn_terms:
  - effective_from: "2026-12-01"
    boosted_apr: "0.15"
    base_apr: "0.03"
"""


def _warn(payer: str, program: str, asset: str, state: str) -> str:
    return (
        f"warning: {payer} can pay in {asset} from funding:{program}:{asset}, {state};"
        f" its payouts will be refused until it is funded"
        f" (funding_accounts: program '{program}', asset {asset})"
    )


def test_a_program_that_can_pay_from_a_missing_or_empty_pool_is_warned_of(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("FROZEN_NOW", "2026-11-20T00:00:00Z")
    lines = apply_config(yaml.safe_load(PROGRAMS), by="ops")
    # Earn pays USDT and USDC (its default assets); referrals pay USDT before any
    # commission exists (the USDC pool is opened but nothing owes USDC); the
    # voucher program's pool is opened with the program, empty.
    assert [line for line in lines if line.startswith("warning:")] == [
        "warning: Earn interest can pay in USDC from funding:earn:USDC, which does not exist;"
        " its payouts will be refused until it is funded"
        " (funding_accounts: program 'earn', asset USDC)",
        _warn("referral commissions", "referrals", "USDT", "which does not exist"),
        _warn("voucher program welcome", "vouchers:welcome", "USDT", "which holds 0 USDT"),
    ]
    funded = PROGRAMS.replace(
        "  - program: referrals\n    asset: USDC\n",
        "  - program: referrals\n    asset: USDT\n    top_ups: [{key: ref-1, amount: '100'}]\n"
        "  - program: earn\n    asset: USDC\n    top_ups: [{key: earn-usdc-1, amount: '100'}]\n"
        "  - program: vouchers:welcome\n    asset: USDT\n    top_ups: [{key: wel-1, amount: '1'}]\n",
    )
    assert not [
        line for line in apply_config(yaml.safe_load(funded), by="ops") if "warning" in line
    ]


def test_a_live_program_is_warned_of_whatever_the_file_holds(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("FROZEN_NOW", "2026-11-20T00:00:00Z")
    earn_services.set_active("u_1", True)  # Earn is live: the default terms pay USDT and USDC
    document = {"funding_accounts": [{"program": "earn", "asset": "USDC"}]}
    assert apply_config(document, by="ops") == [
        "funding account funding:earn:USDC",
        _warn("Earn interest", "earn", "USDC", "which holds 0 USDC"),
        _warn("Earn interest", "earn", "USDT", "which does not exist"),
    ]
