"""Voucher rules as pure functions: RULES.md section 2 with exact numbers."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import pytest

from vouchers import rules

T0 = dt.datetime(2026, 11, 20, 10, tzinfo=dt.UTC)


def order(n: str = "o1", *, loss: str = "10", minutes: int = 1, **kw: Any) -> rules.LosingOrder:
    fields: dict = {
        "closing_notional": Decimal("1000"),
        "market": "usdt_m",
        "origin": "manual",
        "promo_funding": (),
    }
    fields.update(kw)
    return rules.LosingOrder(n, T0 + dt.timedelta(minutes=minutes), -Decimal(loss), **fields)


def voucher(n: int, *, remaining: str = "50", arrived: int = 0, **kw: Any) -> rules.VoucherState:
    return rules.VoucherState(
        n, T0 + dt.timedelta(minutes=arrived), T0 + dt.timedelta(days=7), Decimal(remaining), **kw
    )


@pytest.mark.parametrize(
    ("kwargs", "account", "reasons"),
    [
        ({"loss": "1"}, "main", ["loss_too_small"]),
        ({"loss": "1.01"}, "main", []),
        ({"loss": "-5"}, "main", ["not_a_loss"]),
        ({"origin": "copy"}, "main", ["copy_trade"]),
        ({"origin": "grid"}, "main", ["grid_trade"]),
        ({"origin": "bot"}, "main", ["bot_trade"]),
        ({"origin": "api"}, "main", []),
        ({"promo_funding": ("bonus",)}, "main", ["promo_funded"]),
        ({"promo_funding": ("fee_voucher",)}, "main", ["promo_funded"]),
        ({"market": "spot"}, "main", ["not_futures"]),
        ({}, "sub", ["account_type"]),
        ({}, "institutional", ["account_type"]),
        ({}, None, ["unknown_user"]),
    ],
)
def test_order_eligibility(kwargs: dict, account: str | None, reasons: list[str]) -> None:
    assert (
        rules.order_reasons(order(**kwargs), account_type=account, vouchers_voided=False) == reasons
    )


def test_a_close_at_the_arrival_instant_is_too_early_and_one_after_is_not() -> None:
    at_arrival = order(minutes=0)
    assert rules.voucher_reason(at_arrival, voucher(1)) == "before_arrival"
    just_after = rules.LosingOrder(
        "o", T0 + dt.timedelta(microseconds=1), Decimal(-10), Decimal(1000), "usdt_m", "manual"
    )
    assert rules.voucher_reason(just_after, voucher(1)) is None


def test_expiry_threshold_used_up_and_voided() -> None:
    late = rules.LosingOrder(
        "o", T0 + dt.timedelta(days=7), Decimal(-10), Decimal(1000), "usdt_m", "manual"
    )
    assert rules.voucher_reason(late, voucher(1)) == "expired"
    assert (
        rules.voucher_reason(
            order(closing_notional=Decimal("499.99")), voucher(1, min_closing_amount=Decimal(500))
        )
        == "below_threshold"
    )
    assert (
        rules.voucher_reason(
            order(closing_notional=Decimal("500")), voucher(1, min_closing_amount=Decimal(500))
        )
        is None
    )
    assert rules.voucher_reason(order(), voucher(1, remaining="0")) == "used_up"
    assert rules.voucher_reason(order(), voucher(1, voided=True)) == "voided"


def test_earliest_arrival_first_ties_by_id_and_partial_use_serves_the_next_order() -> None:
    vouchers = [
        voucher(7, arrived=0),
        voucher(3, arrived=0),
        voucher(1, arrived=-5, remaining="20"),
    ]
    orders = [
        order("a", loss="15", minutes=3),
        order("b", loss="30", minutes=1),
        order("c", loss="40", minutes=2),
    ]
    matches, remaining = rules.match_orders(orders, vouchers)
    # Close order: b (30), c (40), a (15). Arrival order: #1 (20), then #3 and #7 (tie: lowest id).
    assert [(m.order.order_id, m.voucher_id, m.amount) for m in matches] == [
        ("b", 1, Decimal("20")),  # min(30, 20): one order never uses two vouchers
        ("c", 3, Decimal("40")),
        ("a", 3, Decimal("10")),  # what #3 has left
    ]
    assert remaining == {1: Decimal(0), 3: Decimal(0)}


def test_no_usable_voucher_means_no_match() -> None:
    matches, remaining = rules.match_orders([order(minutes=-1)], [voucher(1)])
    assert (matches, remaining) == ([], {})


def test_expiry_from_days_or_fixed_end_whichever_is_first() -> None:
    fixed = T0 + dt.timedelta(days=3)
    assert rules.expires_at(T0, validity_days=7, valid_until=None) == T0 + dt.timedelta(days=7)
    assert rules.expires_at(T0, validity_days=7, valid_until=fixed) == fixed
    assert rules.expires_at(T0, validity_days=None, valid_until=fixed) == fixed
