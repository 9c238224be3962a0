"""Earn rules with numbers worked out by hand (RULES.md section 4)."""

from __future__ import annotations

import dataclasses
import datetime as dt
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from earn import rules
from tests.earn.conftest import MIXED_POSITIONS

T = rules.DEFAULT_TERMS


def _day(p: str, v: str) -> rules.DailyInterest:
    return rules.daily_interest([Decimal(p)] * 3, [Decimal(v)] * 3, T)


@pytest.mark.parametrize(
    ("v", "p", "interest"),
    [
        # 25,000 x 3% / 365 = 750 / 365 = 2.054794520...
        ("80000", "25000", "2.05479452"),
        # 25,000 x 15% / 365 = 3,750 / 365 = 10.273972602...
        ("100000", "25000", "10.27397260"),
        # (25,000 x 15% + 60,000 x 3%) / 365 = 5,550 / 365 = 15.205479452...
        ("100000", "85000", "15.20547945"),
    ],
)
def test_the_worked_checks_of_rules_section_4(v: str, p: str, interest: str) -> None:
    assert _day(p, v).interest == Decimal(interest)


def test_the_split_is_shown_portion_by_portion() -> None:
    day = _day("85000", "100000")
    assert (day.boosted_portion, day.boosted_apr) == (Decimal("25000"), Decimal("0.15"))
    assert (day.base_portion, day.base_apr) == (Decimal("60000"), Decimal("0.03"))
    below = _day("85000", "99999.99")
    assert (below.boosted_portion, below.base_portion) == (Decimal(0), Decimal("85000"))
    # 85,000 x 3% / 365 = 2,550 / 365 = 6.986301369...
    assert below.interest == Decimal("6.98630136")


def test_p_is_the_lowest_snapshot_and_v_the_mean() -> None:
    # V = (120,000 + 90,000 + 90,000) / 3 = 100,000: boosted; P = 10,000
    day = rules.daily_interest(
        [Decimal("30000"), Decimal("10000"), Decimal("30000")],
        [Decimal("120000"), Decimal("90000"), Decimal("90000")],
        T,
    )
    assert (day.principal, day.position_value) == (Decimal("10000"), Decimal("100000"))
    # 10,000 x 15% / 365 = 1,500 / 365 = 4.109589041...
    assert day.interest == Decimal("4.10958904")
    # A mean a hair under the threshold is not boosted, however it rounds.
    just_under = rules.daily_interest(
        [Decimal("10000")] * 3,
        [Decimal("100000"), Decimal("100000"), Decimal("99999.999999999999999999")],
        T,
    )
    assert just_under.boosted_portion == 0


def test_principal_subtracts_the_bonus_and_never_goes_below_zero() -> None:
    # 700 + 100 + 250 - 50 = 1,000
    assert rules.principal(Decimal(700), Decimal(100), Decimal(250), Decimal(50)) == Decimal(1000)
    assert rules.principal(Decimal(10), Decimal(0), Decimal(0), Decimal(50)) == Decimal(0)


def test_position_value_nets_an_underlying_across_usdt_m_and_usdc_m_and_ignores_coin_m() -> None:
    assert rules.position_value(MIXED_POSITIONS) == Decimal("74000")


def test_snapshot_instants_and_times() -> None:
    assert rules.snapshot_instants(dt.date(2026, 11, 20), T) == [
        dt.datetime(2026, 11, 20, 0, tzinfo=dt.UTC),
        dt.datetime(2026, 11, 20, 8, tzinfo=dt.UTC),
        dt.datetime(2026, 11, 20, 16, tzinfo=dt.UTC),
    ]
    with pytest.raises(ValueError, match="three distinct"):
        rules.parse_times(["00:00", "08:00"])


@given(
    st.lists(st.decimals(min_value=0, max_value=10**9, places=8), min_size=3, max_size=3),
    st.lists(st.decimals(min_value=0, max_value=10**7, places=8), min_size=3, max_size=3),
)
def test_interest_is_never_more_than_the_formula_and_short_by_less_than_a_unit(
    principals: list[Decimal], values: list[Decimal]
) -> None:
    day = rules.daily_interest(principals, values, T)
    exact = (day.boosted_portion * day.boosted_apr + day.base_portion * day.base_apr) / 365
    assert Decimal(0) <= exact - day.interest < Decimal("0.00000001")
    assert day.boosted_portion + day.base_portion == min(principals)
    assert day.boosted_portion <= T.boosted_principal


def test_other_terms_apply_their_own_numbers() -> None:
    terms = dataclasses.replace(T, boosted_apr=Decimal("0.20"), base_apr=Decimal("0.05"))
    # 25,000 x 20% / 365 = 5,000 / 365 = 13.698630136...
    assert rules.daily_interest([Decimal(25000)] * 3, [Decimal(100000)] * 3, terms).interest == (
        Decimal("13.69863013")
    )
