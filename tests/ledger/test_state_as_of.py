"""Wallet, positions and holdings as of any instant: the latest fact at or
before it wins, whatever order the facts arrived in."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from ledger import selectors
from ledger.ingestion import ingest
from tests import events

pytestmark = pytest.mark.django_db


def at(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


def test_wallet_and_holding_as_of() -> None:
    # Delivered newest first.
    ingest(
        [
            events.wallet("u_1", available="300", occurred_at="2026-11-20T16:00:00Z"),
            events.wallet("u_1", available="200", occurred_at="2026-11-20T08:00:00Z"),
            events.wallet("u_1", available="100", occurred_at="2026-11-20T00:00:00Z"),
            events.holding("u_1", amount="9999.99", occurred_at="2026-11-20T23:59:59Z"),
            events.holding("u_1", amount="10000", occurred_at="2026-11-21T00:00:01Z"),
        ],
        source="test",
    )
    wallet = selectors.wallet_as_of("u_1", "USDT", at("2026-11-20T08:00:00Z"))
    assert wallet is not None and wallet.available == Decimal("200")
    assert selectors.wallet_as_of("u_1", "USDT", at("2026-11-19T23:59:59Z")) is None
    assert selectors.wallet_as_of("u_1", "USDC", at("2026-11-21T00:00:00Z")) is None
    end_of_day = at("2026-11-21T00:00:00Z")
    assert selectors.holding_as_of("u_1", "MX", end_of_day) == Decimal("9999.99")
    assert selectors.holding_as_of("u_1", "MX", at("2026-11-22T00:00:00Z")) == Decimal("10000")
    assert selectors.holding_as_of("u_2", "MX", end_of_day) == Decimal("0")


def test_positions_as_of() -> None:
    item = {
        "symbol": "BTC_USDT",
        "market": "usdt_m",
        "side": "long",
        "quantity": "2",
        "avg_entry_price": "50000",
    }
    ingest(
        [
            events.positions("u_1", items=[item], occurred_at="2026-11-20T07:00:00Z"),
            events.positions("u_1", items=[], occurred_at="2026-11-20T09:00:00Z"),
        ],
        source="test",
    )
    before = selectors.positions_as_of("u_1", at("2026-11-20T08:00:00Z"))
    after = selectors.positions_as_of("u_1", at("2026-11-20T09:00:00Z"))
    assert before is not None and before.positions == [item]
    assert after is not None and after.positions == []
