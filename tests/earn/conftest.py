from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

import pytest

from ledger.bookkeeping import fund_account, open_funding_account

Clock = Callable[[str], None]


def btc_long(value: str) -> dict[str, str]:
    """One long BTC position on USDT-M worth ``value``."""
    return {
        "symbol": "BTC_USDT",
        "market": "usdt_m",
        "side": "long",
        "quantity": "1",
        "avg_entry_price": value,
    }


# BTC: long 1 x 90,000 (USDT-M), short 0.5 x 92,000 (USDC-M): |90,000 - 46,000| = 44,000;
# ETH: short 10 x 3,000: 30,000; the coin-M position is ignored. Value: 74,000.
MIXED_POSITIONS = [
    {"symbol": "BTC_USDT", "market": "usdt_m", "side": "long", "quantity": "1",
     "avg_entry_price": "90000"},
    {"symbol": "BTC_USDC", "market": "usdc_m", "side": "short", "quantity": "0.5",
     "avg_entry_price": "92000"},
    {"symbol": "ETH_USDT", "market": "usdt_m", "side": "short", "quantity": "10",
     "avg_entry_price": "3000"},
    {"symbol": "BTC_USD", "market": "coin_m", "side": "long", "quantity": "100",
     "avg_entry_price": "90000"},
]  # fmt: skip


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    def set_to(text: str) -> None:
        monkeypatch.setenv("FROZEN_NOW", text)

    set_to("2026-11-19T00:00:00Z")
    return set_to


@pytest.fixture
def pool(db: None) -> None:
    for asset in ("USDT", "USDC"):
        fund_account(
            account=open_funding_account(program="earn", asset=asset),
            amount=Decimal("1000"),
            idempotency_key=f"earn-pool-{asset}",
            by="finance",
        )
