"""Settlement and distribution with numbers worked out by hand."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
from rest_framework.test import APIClient

from jobs.models import JobException
from ledger.bookkeeping import fund_account, open_funding_account
from ledger.ingestion import ingest
from ledger.models import PaidItem, PayoutInstruction
from ledger.verification import verify_ledger
from referrals.jobs import distribute_referral_commissions, settle_referrals
from referrals.models import Commission, CommissionPayout, ReferralCode, Relation
from referrals.selectors import with_state
from referrals.services import ReferralRefusal, set_partner
from tests import events
from tests.digests import without_digests
from tests.ledger.conftest import user_jwt

D = dt.date(2026, 11, 20)
Clock = Callable[[str], None]


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    def set_to(text: str) -> None:
        monkeypatch.setenv("FROZEN_NOW", text)

    set_to("2026-11-21T00:15:00Z")
    return set_to


def _code(user: str) -> str:
    return ReferralCode.objects.get(user_id=user).code


@pytest.fixture
def world(db: None, clock: Clock) -> None:
    ingest([events.registered("r_1", occurred_at="2026-01-01T00:00:00Z")], source="test")
    code = _code("r_1")
    ingest(
        [
            events.registered("e_1", referral_code=code, occurred_at="2026-02-01T00:00:00Z"),
            events.registered(
                "mm_1",
                account_type="market_maker",
                referral_code=code,
                occurred_at="2026-02-01T00:00:00Z",
            ),
            events.registered(
                "s_1",
                account_type="sub",
                parent_user_id="r_1",
                referral_code=code,
                occurred_at="2026-02-01T00:00:00Z",
            ),
            events.registered("x_1", referral_code="NOSUCHCD", occurred_at="2026-02-01T00:00:00Z"),
            events.holding("r_1", amount="9999.99", occurred_at="2026-11-20T10:00:00Z"),
            # After the end of D: the tier of D is still the 10% one.
            events.holding("r_1", amount="10000", occurred_at="2026-11-21T00:00:01Z"),
        ],
        source="test",
    )
    for asset, amount in (("USDT", "1000"), ("ETH", "1")):
        pool = open_funding_account(program="referrals", asset=asset)
        fund_account(
            account=pool, amount=Decimal(amount), idempotency_key=f"pool-{asset}", by="finance"
        )


def _fills() -> None:
    at = "2026-11-20T12:00:00Z"
    ingest(
        [
            # futures: 1000 x 0.0005 = 0.5 USDT fee; x 10% = 0.05
            events.fill(
                "e_1",
                order_id="f1",
                action="open",
                notional="1000",
                fee="0.5",
                fee_rate="0.0005",
                occurred_at=at,
            ),
            # spot: 2000 x 0.001 = 2 USDT fee; x 20% (spot tier under 50,000 MX) = 0.4
            events.fill(
                "e_1",
                order_id="s1",
                action="open",
                market="spot",
                notional="2000",
                fee="2",
                fee_rate="0.001",
                occurred_at=at,
            ),
            # futures fee paid in ETH: 0.0002 ETH x 10% = 0.00002 ETH
            events.fill(
                "e_1",
                order_id="f2",
                action="open",
                symbol="ETH_USD",
                market="coin_m",
                notional="800",
                fee="0.0002",
                fee_asset="ETH",
                fee_rate="0.0005",
                occurred_at=at,
            ),
            # nothing: margin, zero fee, maker rebate, a market maker, a sub of the referrer
            events.fill(
                "e_1",
                order_id="m1",
                action="open",
                market="margin",
                notional="5000",
                fee="5",
                occurred_at=at,
            ),
            events.fill("e_1", order_id="z1", action="open", fee="0", fee_rate="0", occurred_at=at),
            events.fill(
                "e_1", order_id="n1", action="open", fee="-0.1", fee_rate="-0.0001", occurred_at=at
            ),
            events.fill("mm_1", order_id="mm", action="open", fee="3", occurred_at=at),
            events.fill("s_1", order_id="sub", action="open", fee="3", occurred_at=at),
            # another day
            events.fill(
                "e_1", order_id="f3", action="open", fee="7", occurred_at="2026-11-21T00:00:00Z"
            ),
        ],
        source="test",
    )


def test_relations_and_refusals(world: None) -> None:
    relations = dict(Relation.objects.values_list("referee_id", "refusal"))
    assert relations == {"e_1": "", "mm_1": "", "s_1": "same_owner", "x_1": "unknown_code"}
    assert Relation.objects.get(referee_id="e_1").referrer_id == "r_1"


def test_a_day_is_settled_once_and_paid_the_next_day(world: None, clock: Clock) -> None:
    _fills()
    result = settle_referrals(day=D)
    assert (result["run"], result["commissions"]) == (1, 3)
    rows = sorted(
        Commission.objects.values_list("program", "asset", "fees", "rate", "amount", "status")
    )
    assert rows == [
        ("futures", "ETH", Decimal("0.0002"), Decimal("0.10"), Decimal("0.00002"), "settled"),
        ("futures", "USDT", Decimal("0.5"), Decimal("0.10"), Decimal("0.05"), "settled"),
        ("spot", "USDT", Decimal("2"), Decimal("0.20"), Decimal("0.4"), "settled"),
    ]
    assert settle_referrals(day=D)["run"] is None  # nothing new: nothing settled twice

    clock("2026-11-21T01:00:00Z")
    paid = distribute_referral_commissions(day=D)
    assert without_digests(paid) == {
        "referrers_paid": 2,
        "invalidated": 0,
        "amount_ETH": "0.00002",
        "amount_USDT": "0.45",
    }
    payouts = sorted(
        PayoutInstruction.objects.values_list("user_id", "asset", "amount", "account_kind")
    )
    assert payouts == [
        ("r_1", "ETH", Decimal("0.00002"), "spot"),
        ("r_1", "USDT", Decimal("0.45"), "spot"),
    ]
    assert distribute_referral_commissions(day=D) == {
        "referrers_paid": 0,
        "invalidated": 0,
        "distributed_through": "2026-11-20",
    }
    assert set(with_state(Commission.objects.all()).values_list("state", flat=True)) == {"paid"}


def test_a_late_fill_is_settled_by_the_next_run_of_its_day(world: None, clock: Clock) -> None:
    _fills()
    settle_referrals(day=D)
    ingest(
        [
            events.fill(
                "e_1", order_id="late", action="open", fee="1", occurred_at="2026-11-20T23:59:59Z"
            )
        ],
        source="test",
    )
    # The next day's scheduled run also settles the late fills of the day before.
    clock("2026-11-22T00:15:00Z")
    result = settle_referrals(day=dt.date(2026, 11, 21))
    assert result["late_2026-11-20"] == 1
    late = Commission.objects.get(day=D, run=2)
    assert (late.fees, late.amount) == (Decimal("1"), Decimal("0.1"))


def _fill(order: str, fee: str, at: str) -> None:
    ingest(
        [events.fill("e_1", order_id=order, action="open", fee=fee, occurred_at=at)], source="test"
    )


def _paid(user: str = "r_1") -> list[tuple[str, Decimal]]:
    return sorted(
        PayoutInstruction.objects.filter(user_id=user).values_list("idempotency_key", "amount")
    )


def test_late_and_early_settled_rows_are_paid_once_by_the_right_distribution(
    world: None, clock: Clock
) -> None:
    e = dt.date(2026, 11, 21)
    _fill("a", "1", "2026-11-20T08:00:00Z")  # 0.1 for D
    # 3 x 20% = 0.6 for D+1 (the holding reached 10,000 MX after D)
    _fill("b", "3", "2026-11-21T08:00:00Z")
    clock("2026-11-22T00:15:00Z")
    settle_referrals(day=D)
    # Catching up: D+1 is settled before D is distributed; D's payout leaves it alone.
    settle_referrals(day=e)
    assert distribute_referral_commissions(day=D)["amount_USDT"] == "0.1"
    # A fill of D arriving after D's distribution is settled late and paid with D+1.
    _fill("late", "5", "2026-11-20T23:00:00Z")
    settle_referrals(day=D)
    states = with_state(Commission.objects.order_by("id")).values_list("amount", "state")
    assert list(states) == [
        (Decimal("0.1"), "paid"),
        (Decimal("0.6"), "settled"),
        (Decimal("0.5"), "settled"),
    ]
    assert distribute_referral_commissions(day=e)["amount_USDT"] == "1.1"
    # An earlier day after a later one: already covered, pays nothing.
    assert distribute_referral_commissions(day=D)["referrers_paid"] == 0
    assert distribute_referral_commissions(day=e)["referrers_paid"] == 0
    assert _paid() == [
        ("referral:r_1:USDT:2026-11-20:spot:USDT", Decimal("0.1")),
        ("referral:r_1:USDT:2026-11-21:spot:USDT", Decimal("1.1")),
    ]
    assert set(with_state(Commission.objects.all()).values_list("state", flat=True)) == {"paid"}


def test_what_rounding_leaves_is_carried_to_the_next_payout(world: None, clock: Clock) -> None:
    # fee 0.00000015 USDT x 10% = 0.000000015: 0.00000001 paid, 0.000000005 carried
    _fill("a", "0.00000015", "2026-11-20T08:00:00Z")
    # next day (20% tier) 0.00000012 x 20% = 0.000000024, + 0.000000005 carried
    # = 0.000000029: 0.00000002 paid, 0.000000009 carried
    _fill("b", "0.00000012", "2026-11-21T08:00:00Z")
    clock("2026-11-21T01:00:00Z")
    settle_referrals(day=D)
    distribute_referral_commissions(day=D)
    clock("2026-11-22T01:00:00Z")
    settle_referrals(day=dt.date(2026, 11, 21))
    distribute_referral_commissions(day=dt.date(2026, 11, 21))
    rows = CommissionPayout.objects.order_by("day").values_list(
        "commissions", "carried_in", "amount", "carried_out"
    )
    assert list(rows) == [
        (Decimal("0.000000015"), Decimal(0), Decimal("0.00000001"), Decimal("0.000000005")),
        (
            Decimal("0.000000024"),
            Decimal("0.000000005"),
            Decimal("0.00000002"),
            Decimal("0.000000009"),
        ),
    ]
    assert [amount for _, amount in _paid()] == [Decimal("0.00000001"), Decimal("0.00000002")]


def test_settling_before_the_day_ends_is_refused(world: None, clock: Clock) -> None:
    clock("2026-11-20T23:59:59Z")
    with pytest.raises(ReferralRefusal, match="settled once it is over"):
        settle_referrals(day=D)


def test_relations_expire_after_1080_days_to_the_second(db: None, clock: Clock) -> None:
    ingest([events.registered("r_2", occurred_at="2020-01-01T00:00:00Z")], source="test")
    ingest(
        [events.registered("e_2", referral_code=_code("r_2"), occurred_at="2023-11-15T08:00:00Z")],
        source="test",
    )
    # registered 2023-11-15T08:00:00Z + 1080 days = 2026-10-30T08:00:00Z
    ingest(
        [
            events.fill(
                "e_2", order_id="in", action="open", fee="1", occurred_at="2026-10-30T07:59:59Z"
            ),
            events.fill(
                "e_2", order_id="out", action="open", fee="1", occurred_at="2026-10-30T08:00:00Z"
            ),
        ],
        source="test",
    )
    settle_referrals(day=dt.date(2026, 10, 30))
    assert list(Commission.objects.values_list("fills", "fees")) == [(1, Decimal("1"))]


def test_invalidation_makes_later_and_unpaid_commissions_invalid_rebates(
    world: None, clock: Clock
) -> None:
    ingest(
        [
            events.fill(
                "e_1", order_id="before", action="open", fee="1", occurred_at="2026-11-20T09:00:00Z"
            ),
            events.risk(
                "e_1", measures=["invalidate_referral"], occurred_at="2026-11-20T10:00:00Z"
            ),
            events.fill(
                "e_1", order_id="after", action="open", fee="2", occurred_at="2026-11-20T11:00:00Z"
            ),
        ],
        source="test",
    )
    settle_referrals(day=D)
    assert sorted(Commission.objects.values_list("fees", "status")) == [
        (Decimal("1"), "settled"),
        (Decimal("2"), "invalid"),
    ]
    clock("2026-11-21T01:00:00Z")
    assert distribute_referral_commissions(day=D) == {"referrers_paid": 0, "invalidated": 1}
    assert set(with_state(Commission.objects.all()).values_list("state", flat=True)) == {"invalid"}
    assert not PayoutInstruction.objects.exists()
    statuses = APIClient()
    statuses.credentials(HTTP_AUTHORIZATION=f"Bearer {user_jwt('r_1')}")
    rows = statuses.get("/api/v1/referrals/me/commissions").json()["results"]
    assert {row["status"] for row in rows} == {"invalid rebate"}


def test_the_tier_comes_from_the_holding_at_the_end_of_the_day_and_partners(
    world: None, clock: Clock
) -> None:
    ingest(
        [
            events.fill(
                "e_1",
                order_id="d21",
                action="open",
                market="spot",
                fee="10",
                occurred_at="2026-11-21T12:00:00Z",
            ),
            events.fill(
                "e_1", order_id="f21", action="open", fee="1", occurred_at="2026-11-21T12:00:00Z"
            ),
        ],
        source="test",
    )
    # From now (2026-11-21T00:15): a partner at the end of the 21st.
    set_partner("r_1", partner=True, by="ops")
    clock("2026-11-22T00:15:00Z")
    settle_referrals(day=dt.date(2026, 11, 21))
    spot = Commission.objects.get(program="spot", day=dt.date(2026, 11, 21))
    assert (spot.rate, spot.amount) == (Decimal("0.60"), Decimal("6"))
    futures = Commission.objects.get(program="futures", day=dt.date(2026, 11, 21))
    assert (futures.rate, futures.amount) == (
        Decimal("0.20"),
        Decimal("0.2"),
    )  # 10,000 MX at the end of the 21st


def test_user_endpoints(world: None, clock: Clock) -> None:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {user_jwt('r_1')}")
    me = client.get("/api/v1/referrals/me").json()
    assert me["code"] == _code("r_1") and me["link"].endswith(me["code"])
    assert me["referees"] == 2
    assert [(p["program"], p["rate"]) for p in me["programs"]] == [
        ("futures", "0.2"),  # 10,000 MX since 00:00:01 today
        ("spot", "0.2"),
    ]
    invitees = client.get("/api/v1/referrals/me/invitees").json()["results"]
    first: dict[str, Any] = next(i for i in invitees if i["referee"] == "e***")
    assert first["status"] == "valid"
    assert first["futures_valid_until"] == "2029-01-16T00:00:00Z"
    assert {i["referee"] for i in invitees} == {"e***", "m***"}


def test_ops_rerun_a_day_from_the_admin_and_nothing_is_paid_twice(
    world: None, clock: Clock
) -> None:
    from django.contrib.auth.models import Group, User
    from django.test import Client

    from referrals.models import Settlement

    _fills()
    settle_referrals(day=D)
    clock("2026-11-21T01:00:00Z")
    distribute_referral_commissions(day=D)
    operator = User.objects.create_user("ops-3", password="a-long-password-1", is_staff=True)
    operator.groups.add(Group.objects.get(name="operator"))
    client = Client()
    client.force_login(operator)
    settlement = Settlement.objects.get(day=D)
    page = client.get("/admin/referrals/settlement/")
    assert page.status_code == 200
    assert '<td class="field-totals">paid 0.00002 ETH; paid 0.45 USDT</td>' in page.content.decode()
    client.post(
        "/admin/referrals/settlement/", {"action": "rerun", "_selected_action": [settlement.pk]}
    )
    assert Settlement.objects.filter(day=D).count() == 1  # nothing new: no second run recorded
    assert distribute_referral_commissions(day=D)["referrers_paid"] == 0
    assert PayoutInstruction.objects.count() == 2
    page = client.get("/admin/referrals/distribution/")
    assert '<td class="field-totals">0.00002 ETH (0); 0.45 USDT (0)</td>' in page.content.decode()
    paid = client.get("/admin/referrals/commission/?state=paid")
    assert paid.status_code == 200 and paid.context["cl"].result_count == 3
    assert client.get("/admin/referrals/commission/?state=settled").context["cl"].result_count == 0
    for screen in (
        "relation",
        "commission",
        "commissionpayout",
        "programterms",
        "communitypartner",
        "referralcode",
    ):
        assert client.get(f"/admin/referrals/{screen}/").status_code == 200


def test_a_day_whose_settlement_never_ran_is_settled_by_the_next_days_run(
    world: None, clock: Clock
) -> None:
    _fill("a", "1", "2026-11-20T08:00:00Z")  # 0.1, day D: its own run never happens
    clock("2026-11-22T00:15:00Z")
    result = settle_referrals(day=dt.date(2026, 11, 21))
    assert result["late_2026-11-20"] == 1
    assert list(Commission.objects.values_list("day", "amount")) == [(D, Decimal("0.1"))]


def test_a_payout_that_rounds_to_nothing_leaves_its_commissions_waiting(
    world: None, clock: Clock
) -> None:
    # 0.00000005 x 10% = 0.000000005: rounds to 0, carried; nothing credited
    _fill("a", "0.00000005", "2026-11-20T08:00:00Z")
    clock("2026-11-21T01:00:00Z")
    settle_referrals(day=D)
    assert distribute_referral_commissions(day=D)["referrers_paid"] == 0
    assert list(with_state(Commission.objects.all()).values_list("state", flat=True)) == ["settled"]
    # next day (20% tier): 0.00000012 x 20% = 0.000000024 + 0.000000005 = 0.000000029
    _fill("b", "0.00000012", "2026-11-21T08:00:00Z")
    clock("2026-11-22T01:00:00Z")
    settle_referrals(day=dt.date(2026, 11, 21))
    distribute_referral_commissions(day=dt.date(2026, 11, 21))
    assert [amount for _, amount in _paid()] == [Decimal("0.00000002")]
    assert set(with_state(Commission.objects.all()).values_list("state", flat=True)) == {"paid"}


def test_a_short_pool_in_one_asset_does_not_stop_the_other(world: None, clock: Clock) -> None:
    at = "2026-11-20T12:00:00Z"
    ingest(
        [
            # 1000 x 0.0005 = 0.5 USDT fee; x 10% = 0.05 USDT
            events.fill("e_1", order_id="f1", action="open", fee="0.5", occurred_at=at),
            # 20 ETH fee x 10% = 2 ETH, and the ETH pool holds 1
            events.fill(
                "e_1",
                order_id="f2",
                action="open",
                symbol="ETH_USD",
                market="coin_m",
                fee="20",
                fee_asset="ETH",
                occurred_at=at,
            ),
        ],
        source="test",
    )
    settle_referrals(day=D)
    clock("2026-11-21T01:00:00Z")
    with pytest.raises(
        ReferralRefusal, match="referral pool ETH: 2 ETH needed for 2026-11-20 but it holds 1 ETH;"
    ):
        distribute_referral_commissions(day=D)
    assert list(PayoutInstruction.objects.values_list("asset", "amount")) == [
        ("USDT", Decimal("0.05"))
    ]
    assert sorted(with_state(Commission.objects.all()).values_list("asset", "state")) == [
        ("ETH", "settled"),
        ("USDT", "paid"),
    ]
    fund_account(
        account=open_funding_account(program="referrals", asset="ETH"),
        amount=Decimal(1),
        idempotency_key="pool-ETH-more",
        by="finance",
    )
    # The day was not distributed while ETH was refused: its rerun pays ETH alone.
    assert without_digests(distribute_referral_commissions(day=D)) == {
        "referrers_paid": 1,
        "invalidated": 0,
        "amount_ETH": "2",
    }
    assert sorted(PayoutInstruction.objects.values_list("asset", "amount")) == [
        ("ETH", Decimal(2)),
        ("USDT", Decimal("0.05")),
    ]
    assert distribute_referral_commissions(day=D)["referrers_paid"] == 0


def test_one_referrers_giant_commissions_settle_exactly_and_never_stop_the_others(
    world: None, clock: Clock
) -> None:
    ingest([events.registered("r_2", occurred_at="2026-01-01T00:00:00Z")], source="test")
    ingest(
        [events.registered("e_2", referral_code=_code("r_2"), occurred_at="2026-02-01T00:00:00Z")],
        source="test",
    )
    at = "2026-11-20T12:00:00Z"
    huge = "99999999999999999999"  # the contract's largest fee
    ingest(
        [events.fill("e_1", order_id="f1", action="open", fee="0.5", occurred_at=at)]
        + [
            events.fill("e_2", order_id=f"g{n}", action="open", fee=huge, occurred_at=at)
            for n in range(12)
        ],
        source="test",
    )
    settle_referrals(day=D)
    # 12 x 99,999,999,999,999,999,999 = 1,199,999,999,999,999,999,988 in fees, x 10%:
    # kept exactly, though neither fits NUMERIC(38, 18).
    giant = Commission.objects.get(referrer_id="r_2")
    assert (giant.fees, giant.amount) == (
        Decimal("1199999999999999999988"),
        Decimal("119999999999999999998.8"),
    )
    clock("2026-11-21T01:00:00Z")
    # r_1's 0.5 x 10% = 0.05 is paid; r_2's credit could not be held by the ledger.
    paid = distribute_referral_commissions(day=D)
    assert without_digests(paid) == {
        "referrers_paid": 1,
        "invalidated": 0,
        "amount_USDT": "0.05",
        "exceptions": 1,
    }
    assert list(PayoutInstruction.objects.values_list("user_id", "amount")) == [
        ("r_1", Decimal("0.05"))
    ]
    held = JobException.objects.get()
    assert (held.user_id, held.scope) == ("r_2", "asset USDT")
    assert "exceeds what the ledger can hold" in held.reason


def test_a_paid_commission_is_recorded_with_every_decimal(world: None, clock: Clock) -> None:
    # 0.123456789012345678 USDT fee x 10% = 0.0123456789012345678 (19 decimals)
    ingest(
        [
            events.fill(
                "e_1",
                order_id="f1",
                action="open",
                fee="0.123456789012345678",
                occurred_at="2026-11-20T12:00:00Z",
            )
        ],
        source="test",
    )
    settle_referrals(day=D)
    clock("2026-11-21T01:00:00Z")
    distribute_referral_commissions(day=D)
    assert list(PaidItem.objects.values_list("payer", "amount")) == [
        ("referral.commission", Decimal("0.0123456789012345678"))
    ]
    assert list(PayoutInstruction.objects.values_list("amount", flat=True)) == [
        Decimal("0.01234567")
    ]
    # 0.0000000089012345678 is carried to r_1's next payout.
    assert list(CommissionPayout.objects.values_list("carried_out", flat=True)) == [
        Decimal("0.0000000089012345678")
    ]
    assert verify_ledger() == []
