"""apply_config: funding accounts and top-ups from a file, idempotently."""

from __future__ import annotations

import io
from decimal import Decimal
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

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
    assert "top-up winter-2026-initial: +100000 USDT" in out.getvalue()
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
