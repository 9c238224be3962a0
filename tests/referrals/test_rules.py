"""Referral rules as pure functions, with exact numbers (RULES.md section 3)."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from referrals import rules

FUTURES = rules.parse_tiers(rules.DEFAULT_TERMS["futures"]["tiers"])
SPOT = rules.parse_tiers(rules.DEFAULT_TERMS["spot"]["tiers"])


@pytest.mark.parametrize(
    ("mx", "futures", "spot"),
    [
        ("0", "0.10", "0.20"),
        ("9999.99", "0.10", "0.20"),
        ("10000", "0.20", "0.20"),
        ("49999.99", "0.20", "0.20"),
        ("50000", "0.20", "0.40"),
        ("99999.99", "0.20", "0.40"),
        ("100000", "0.30", "0.50"),
    ],
)
def test_tier_boundaries(mx: str, futures: str, spot: str) -> None:
    assert rules.tier_rate(FUTURES, Decimal(mx)) == Decimal(futures)
    assert rules.tier_rate(SPOT, Decimal(mx)) == Decimal(spot)


def test_community_partners_earn_60_percent_on_spot() -> None:
    assert rules.tier_rate(SPOT, Decimal(0), partner_rate=Decimal("0.60"), partner=True) == Decimal(
        "0.60"
    )
    # Futures has no partner rate: the tier applies.
    assert rules.tier_rate(FUTURES, Decimal(0), partner_rate=None, partner=True) == Decimal("0.10")


@pytest.mark.parametrize(
    ("volume", "fee_rate", "rate", "expected"),
    [
        ("1000", "0.0005", "0.10", "0.05"),
        ("2000", "0.001", "0.40", "0.8"),
        ("123.45", "0.0002", "0.30", "0.0074070"),
    ],
)
def test_commission_is_volume_times_fee_rate_times_rate(
    volume: str, fee_rate: str, rate: str, expected: str
) -> None:
    assert rules.commission(Decimal(volume), Decimal(fee_rate), Decimal(rate)) == Decimal(expected)


def test_codes_are_short_unambiguous_and_stable() -> None:
    code = rules.referral_code("u_100042")
    assert len(code) == 8 and code == rules.referral_code("u_100042")
    assert not set(code) & set("01OIL")
    assert rules.referral_code("u_100042", 1) != code


def test_same_owner_and_program_and_mask() -> None:
    assert rules.same_owner("main", "sub", referrer_parent="", referee_parent="main")
    assert rules.same_owner("sub", "main", referrer_parent="main", referee_parent="")
    assert rules.same_owner("sub_a", "sub_b", referrer_parent="main", referee_parent="main")
    assert not rules.same_owner("a", "b", referrer_parent="", referee_parent="")
    assert [rules.program_of(m) for m in ("spot", "usdt_m", "coin_m", "margin")] == [
        "spot",
        "futures",
        "futures",
        None,
    ]
    assert rules.mask("u_100042") == "u_***42"


@given(
    st.lists(
        st.decimals(min_value=0, max_value=1000, places=18, allow_nan=False),
        min_size=1,
        max_size=30,
    )
)
def test_carried_remainders_lose_nothing_and_pay_whole_units(days: list[Decimal]) -> None:
    carried = Decimal(0)
    paid = Decimal(0)
    for commissions in days:
        payout = rules.commission_payout("r", "USDT", commissions, carried)
        assert payout.amount == payout.amount.quantize(Decimal("0.00000001"))
        assert Decimal(0) <= payout.carried_out < Decimal("0.00000001")
        paid += payout.amount
        carried = payout.carried_out
    assert paid + carried == sum(days)
