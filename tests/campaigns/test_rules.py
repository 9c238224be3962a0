"""The campaign's rules as pure functions: the source's worked examples, exactly."""

from __future__ import annotations

import hashlib
import hmac
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from campaigns import rules

SEED = "00" * 31 + "2a"
CARDS = [
    rules.Weighted(Decimal(3), 60),
    rules.Weighted(Decimal(5), 30),
    rules.Weighted(Decimal(8), 10),
]


@pytest.mark.parametrize(
    ("percent", "losing", "covered"),
    [
        ("8", 50, 4),  # "an 8% card ≈ 4 covered orders out of 50"
        ("8", 100, 8),  # "100 orders closed at a loss ... 8% card ... 8 of those orders"
        ("5", 30, 2),  # 1.5 rounds half up
        ("3", 50, 2),  # 1.5 rounds half up
        ("3", 10, 0),  # 0.3 rounds down
        ("5", 10, 1),  # 0.5 rounds half up
        ("3", 0, 0),
    ],
)
def test_covered_count_rounds_half_up(percent: str, losing: int, covered: int) -> None:
    assert rules.covered_count(Decimal(percent), losing) == covered


@pytest.mark.parametrize(
    ("loss", "rebate"),
    [("750", "500"), ("500", "500"), ("123.456789999", "123.45678999"), ("0.000000009", "0")],
)
def test_rebate_is_the_loss_capped_and_rounded_down(loss: str, rebate: str) -> None:
    assert rules.rebate(Decimal(loss), Decimal(500)) == Decimal(rebate)


@pytest.mark.parametrize(
    ("point", "card"), [(0, "3"), (59, "3"), (60, "5"), (89, "5"), (90, "8"), (99, "8"), (100, "3")]
)
def test_weighted_pick_walks_cumulative_weights(point: int, card: str) -> None:
    # A ticket whose value mod 100 is `point` picks by cumulative weight 60/30/10.
    assert rules.weighted_pick(CARDS, format(point, "x")) == Decimal(card)


def test_tickets_are_hmac_sha256_of_the_seed() -> None:
    expected = hmac.new(bytes.fromhex(SEED), b"winter:card:u_1", hashlib.sha256).hexdigest()
    assert rules.ticket(SEED, "winter:card:u_1") == expected
    assert rules.seed_hash(SEED) == hashlib.sha256(bytes.fromhex(SEED)).hexdigest()


def test_the_draw_covers_the_orders_with_the_smallest_tickets() -> None:
    orders = [rules.LosingOrder(f"o{n}", Decimal(n * 10)) for n in range(1, 51)]
    result = rules.draw_orders(
        seed=SEED,
        slug="winter",
        user_id="u_1",
        percent=Decimal(8),
        first_losing_orders=orders,
        cap=Decimal(500),
    )
    by_ticket = sorted(
        orders,
        key=lambda o: hmac.new(
            bytes.fromhex(SEED), f"winter:order:u_1:{o.order_id}".encode(), hashlib.sha256
        ).hexdigest(),
    )
    assert (result.losing_orders, result.covered) == (50, 4)
    assert [order.order_id for order, _ in result.chosen] == [o.order_id for o in by_ticket[:4]]
    assert [rebate for _, rebate in result.chosen] == [
        min(o.loss, Decimal(500)) for o in by_ticket[:4]
    ]


@given(
    n=st.integers(min_value=0, max_value=100),
    percent=st.sampled_from([Decimal(3), Decimal(5), Decimal(8), Decimal("12.5")]),
    user=st.text(alphabet="abcdefgh0123456789_", min_size=1, max_size=12),
)
def test_a_draw_chooses_k_distinct_orders_of_the_n(n: int, percent: Decimal, user: str) -> None:
    orders = [rules.LosingOrder(f"o{i}", Decimal(i + 1)) for i in range(n)]
    result = rules.draw_orders(
        seed=SEED,
        slug="s",
        user_id=user,
        percent=percent,
        first_losing_orders=orders,
        cap=Decimal(500),
    )
    chosen = [order.order_id for order, _ in result.chosen]
    assert len(chosen) == len(set(chosen)) == rules.covered_count(percent, n)
    assert set(chosen) <= {order.order_id for order in orders}


@given(user=st.text(min_size=1, max_size=20), number=st.integers(min_value=1, max_value=10_000))
def test_every_daily_spin_wins_between_1_and_100(user: str, number: int) -> None:
    table = [
        rules.Weighted(Decimal(a), w)
        for a, w in [(1, 400), (2, 250), (5, 150), (10, 100), (20, 60), (50, 30), (100, 10)]
    ]
    prize = rules.daily_prize_for(SEED, "winter", user, number, table)
    assert Decimal(1) <= prize <= Decimal(100)


def test_eligibility_names_every_reason() -> None:
    import datetime as dt

    at = dt.datetime(2026, 11, 20, tzinfo=dt.UTC)
    reasons = rules.ineligibility_reasons(
        account_type="sub",
        invitation_only=True,
        invited=False,
        disqualified=True,
        registration_opens_at=at - dt.timedelta(days=10),
        registration_closes_at=at,
        now=at,
    )
    assert reasons == ["account_type", "not_invited", "disqualified", "registration_closed"]
    assert rules.ineligibility_reasons(
        account_type=None,
        invitation_only=False,
        invited=False,
        disqualified=False,
        registration_opens_at=at + dt.timedelta(days=1),
        registration_closes_at=at + dt.timedelta(days=2),
        now=at,
    ) == ["unknown_user", "registration_not_open"]
