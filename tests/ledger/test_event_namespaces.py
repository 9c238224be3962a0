"""Inbound facts and the product's own events are two id namespaces, kept apart
by the database (ledger migration 0012).

For every id the product gives its own events, an inbound event is sent first
with that exact id (any service token could): it is stored as the inbound fact
it is, and the product's decision is then taken and recorded exactly as it is
without it. Expectations are the programs' own, worked out by hand in their
test suites.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import psycopg
import pytest
from django.contrib.auth.models import Group, User
from django.db import IntegrityError, connection, transaction
from django.test import Client

from access.audit import AuditNotRecorded
from campaigns import services as campaign_services
from campaigns.jobs import draw_coverage, issue_campaign_bonuses, refresh_spins, void_unused_spins
from campaigns.models import Campaign, CoverageDraw, DailySpin, Participant, Reward
from earn.jobs import accrue_earn_interest, distribute_earn_interest, earn_snapshot
from earn.models import Activation
from earn.services import set_active
from ledger.bookkeeping import fund_account, open_funding_account
from ledger.event_store import DomainEvent, append_domain_events, stored_hashes
from ledger.ingestion import ingest
from ledger.models import Account, Event, EventOrigin, PayoutInstruction, QuarantinedInput
from referrals.jobs import distribute_referral_commissions, settle_referrals
from referrals.models import ReferralCode
from tests import events
from tests.campaigns.conftest import instant, known_users, make_campaign
from tests.digests import without_digests
from vouchers import services as voucher_services
from vouchers.jobs import consume_vouchers, expire_vouchers, pay_voucher_compensation
from vouchers.models import Consumption, Voucher

pytestmark = pytest.mark.django_db

Clock = Callable[[str], dt.datetime]
SQUATTER = "u_squatter"
T0 = instant("2026-11-20T10:00:00Z")
H = dt.timedelta(hours=1)
M = dt.timedelta(minutes=1)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    def set_to(text: str) -> dt.datetime:
        monkeypatch.setenv("FROZEN_NOW", text)
        return instant(text)

    set_to("2026-10-20T00:00:00Z")
    return set_to


def iso(moment: dt.datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def _squatter(event_id: str) -> dict[str, Any]:
    # A valid inbound fact about a user of its own, so that nothing but its id
    # meets the program under test.
    return events.holding(
        SQUATTER, amount="1", occurred_at="2026-10-01T00:00:00Z", event_id=event_id
    )


def squat(*event_ids: str) -> None:
    """Send an inbound event with each id, before the product records its own."""
    report = ingest([_squatter(event_id) for event_id in event_ids], source="rest")
    assert [o.status for o in report.outcomes] == ["accepted"] * len(event_ids)


def recorded(event_id: str) -> Event:
    """The product's own event of that id, after checking that the inbound one
    is still there as an inbound fact and still answers as itself."""
    inbound = Event.objects.get(event_id=event_id, origin=EventOrigin.EXCHANGE)
    assert (inbound.type, inbound.user_id, inbound.source, inbound.data) == (
        "holding.updated",
        SQUATTER,
        "rest",
        {"asset": "MX", "amount": "1"},
    )
    again = ingest([_squatter(event_id)], source="rest")
    assert [o.status for o in again.outcomes] == ["duplicate"]
    assert Event.objects.filter(event_id=event_id).count() == 2
    return Event.objects.get(event_id=event_id, origin=EventOrigin.REWARDS)


# --- campaigns ---------------------------------------------------------------------------


@pytest.fixture
def campaign(clock: Clock) -> Campaign:
    campaign = make_campaign()
    known_users(("u_1", "main"), ("u_2", "main"))
    campaign_services.invite(campaign, ["u_1", "u_2"], source="test")
    return campaign


def _register(campaign: Campaign, clock: Clock, user: str) -> None:
    clock("2026-11-02T00:00:00Z")
    campaign_services.register(campaign, user)


def _with_spins(campaign: Campaign, clock: Clock, user: str = "u_1", losing: int = 0) -> None:
    """Registered, 1,050 of valid volume (the coverage spin and one daily spin),
    and ``losing`` losing orders, losses 7.5 x n."""
    _register(campaign, clock, user)
    clock("2026-11-05T00:00:00Z")
    fills = [
        events.fill(user, order_id=f"{user}-a", action="open", notional="1000",
                    occurred_at="2026-11-03T10:00:00Z"),
        events.fill(user, order_id=f"{user}-b", action="open", notional="50",
                    occurred_at="2026-11-04T10:00:00Z"),
    ]  # fmt: skip
    fills += [
        events.fill(
            user,
            order_id=f"{user}-L{n:03d}",
            realized_pnl=str(Decimal("-7.5") * n),
            notional="100",
            occurred_at=iso(instant("2026-11-03T11:00:00Z") + n * M),
        )
        for n in range(1, losing + 1)
    ]
    ingest(fills, source="test")
    refresh_spins(at=instant("2026-11-05T00:05:00Z"))


def test_a_registration_is_answered_and_recorded(campaign: Campaign, clock: Clock) -> None:
    clock("2026-11-02T00:00:00Z")
    squat("campaign.registered:winter:u_1")
    participant, created = campaign_services.register(campaign, "u_1")
    assert (created, participant.user_id) == (True, "u_1")
    assert participant.registered_at == instant("2026-11-02T00:00:00Z")
    event = recorded("campaign.registered:winter:u_1")
    assert (event.type, event.user_id, event.data) == (
        "campaign.registered",
        "u_1",
        {"campaign": "winter"},
    )
    again, created = campaign_services.register(campaign, "u_1")
    assert (created, again.pk) == (False, participant.pk)


def test_the_coverage_card_is_drawn_and_recorded(campaign: Campaign, clock: Clock) -> None:
    _with_spins(campaign, clock)
    squat("campaign.card_drawn:winter:u_1")
    assert campaign_services.spin(campaign, "u_1", "coverage").card_percent == Decimal("8")
    assert Participant.objects.get(user_id="u_1").card_percent == Decimal("8")
    event = recorded("campaign.card_drawn:winter:u_1")
    assert (event.type, event.data) == (
        "campaign.card_drawn",
        {"campaign": "winter", "percent": "8"},
    )


def test_daily_prizes_are_won_recorded_and_owed(campaign: Campaign, clock: Clock) -> None:
    _with_spins(campaign, clock)  # two days of 10 or more: two daily spins
    squat("campaign.daily_prize_won:winter:u_1:1", "campaign.daily_prize_won:winter:u_1:2")
    won = [campaign_services.spin(campaign, "u_1", "daily") for _ in range(2)]
    assert [(w.number, w.amount) for w in won] == [(1, Decimal("7")), (2, Decimal("7"))]
    with pytest.raises(campaign_services.CampaignRefusal) as none_left:
        campaign_services.spin(campaign, "u_1", "daily")
    assert none_left.value.code == "no_spin_available"
    assert list(DailySpin.objects.order_by("number").values_list("number", "amount")) == [
        (1, Decimal("7")),
        (2, Decimal("7")),
    ]
    assert sorted(Reward.objects.values_list("kind", "amount", "idempotency_key")) == [
        ("daily_prize", Decimal("7"), "campaign:winter:prize:u_1:1"),
        ("daily_prize", Decimal("7"), "campaign:winter:prize:u_1:2"),
    ]
    campaign.refresh_from_db()
    assert campaign.prizes_committed == Decimal("14")
    for number in (1, 2):
        event = recorded(f"campaign.daily_prize_won:winter:u_1:{number}")
        assert event.data == {"campaign": "winter", "number": number, "amount": "7"}


def test_unused_spins_are_voided_and_recorded(campaign: Campaign, clock: Clock) -> None:
    _with_spins(campaign, clock)
    squat("campaign.spins_voided:winter:u_1")
    assert void_unused_spins(at=instant("2026-11-15T01:00:00Z")) == {
        "participants_with_void_spins": 1
    }
    event = recorded("campaign.spins_voided:winter:u_1")
    assert event.data == {"campaign": "winter", "coverage_spins": 1, "daily_spins": 2}


def test_the_draw_voided_rewards_and_issuance_are_recorded(
    campaign: Campaign, clock: Clock
) -> None:
    for user in ("u_1", "u_2"):
        _with_spins(campaign, clock, user, losing=100)
        campaign_services.spin(campaign, user, "coverage")
    squat(
        "campaign.coverage_drawn:winter:u_1",
        "campaign.coverage_drawn:winter:u_2",
        "campaign.rewards_voided:winter:u_2",
        "campaign.bonuses_issued:winter",
    )
    # 8% of the first 100 losing orders: 8 covered each.
    assert draw_coverage(at=instant("2026-11-15T01:00:00Z")) == {
        "participants_drawn": 2,
        "orders_covered": 16,
    }
    for user in ("u_1", "u_2"):
        draw = CoverageDraw.objects.get(user_id=user)
        event = recorded(f"campaign.coverage_drawn:winter:{user}")
        assert (draw.covered, event.data["covered"], event.data["chosen"]) == (8, 8, draw.chosen)
    ingest([events.risk("u_2", occurred_at="2026-11-15T12:00:00Z")], source="test")
    issued = issue_campaign_bonuses(at=instant("2026-11-16T09:30:00Z"))
    assert issued["rewards_issued"] == 8
    u_1 = sum(
        (Decimal(c["rebate"]) for c in CoverageDraw.objects.get(user_id="u_1").chosen), Decimal(0)
    )
    u_2 = sum(
        (Decimal(c["rebate"]) for c in CoverageDraw.objects.get(user_id="u_2").chosen), Decimal(0)
    )
    assert PayoutInstruction.objects.filter(user_id="u_1").count() == 8
    voided = recorded("campaign.rewards_voided:winter:u_2")
    assert (voided.user_id, voided.data["rewards"], Decimal(voided.data["amount"])) == (
        "u_2",
        8,
        u_2,
    )
    bonuses = recorded("campaign.bonuses_issued:winter")
    assert (bonuses.data["rewards"], Decimal(bonuses.data["amount"])) == (8, u_1)
    assert (bonuses.data["void_rewards"], bonuses.data["expires_at"]) == (
        8,
        "2026-11-30T09:30:00+00:00",
    )


# --- vouchers ----------------------------------------------------------------------------


@pytest.fixture
def program(clock: Clock) -> Any:
    ingest(
        [events.registered(u, occurred_at="2026-01-01T00:00:00Z") for u in ("u_1", "u_2")],
        source="test",
    )
    program = voucher_services.save_program(slug="welcome", title="Welcome vouchers")
    for code, value in (("fifty", 50), ("hundred", 100)):
        voucher_services.save_template(
            program=program, code=code, face_value=Decimal(value), validity_days=7
        )
    account = open_funding_account(program=program.funding_program, asset="USDT")
    fund_account(account=account, amount=Decimal(1000), idempotency_key="welcome", by="finance")
    clock(iso(T0))
    return program


def grant(user: str, template: str, key: str) -> int:
    report = voucher_services.grant_vouchers(
        [voucher_services.Grant(key, user, "welcome", template)], source="test"
    )
    assert report.results[0]["status"] == "granted"
    return int(report.results[0]["voucher_id"])


def close(user: str, order_id: str, *, at: dt.datetime, pnl: str) -> None:
    ingest(
        [events.fill(user, order_id=order_id, realized_pnl=pnl, occurred_at=iso(at))],
        source="test",
    )


def test_a_voucher_grant_is_granted_and_recorded(program: Any) -> None:
    squat("voucher.granted:g1")
    voucher = grant("u_1", "fifty", "g1")
    assert Voucher.objects.get(pk=voucher).remaining == Decimal(50)
    event = recorded("voucher.granted:g1")
    assert (event.user_id, event.data["voucher_id"], event.data["face_value"]) == (
        "u_1",
        voucher,
        "50",
    )


def test_a_changed_match_is_released_and_recorded(program: Any) -> None:
    voucher = grant("u_1", "hundred", "g-100")
    close("u_1", "o1", at=T0 + H, pnl="-30")
    assert consume_vouchers(at=T0 + H + M)["orders_matched"] == 1
    first = Consumption.objects.get().pk
    squat(f"voucher.matches_changed:u_1:{first}")
    # The order's next closing fill wins 40: no longer a losing order.
    close("u_1", "o1", at=T0 + H + 5 * M, pnl="40")
    result = consume_vouchers(at=T0 + H + 6 * M)
    assert (result["orders_matched"], result["matches_released"]) == (0, 1)
    assert Voucher.objects.get(pk=voucher).remaining == Decimal(100)
    event = recorded(f"voucher.matches_changed:u_1:{first}")
    assert [(r["order_id"], r["amount"]) for r in event.data["released"]] == [("o1", "30")]
    assert event.data["matched"] == []


def test_voided_vouchers_are_voided_and_recorded(program: Any) -> None:
    voucher = grant("u_2", "fifty", "g-risk")
    close("u_2", "r1", at=T0 + H, pnl="-10")
    consume_vouchers(at=T0 + 2 * H)
    ingest(
        [events.risk("u_2", measures=["void_vouchers"], occurred_at=iso(T0 + 3 * H))], source="test"
    )
    squat(f"voucher.voided:u_2:{(T0 + 3 * H).isoformat()}")
    assert consume_vouchers(at=T0 + 3 * H)["users_voided"] == 1
    assert Voucher.objects.get(pk=voucher).voided_at == T0 + 3 * H
    event = recorded("voucher.voided:u_2:2026-11-20T13:00:00+00:00")
    assert (event.data["vouchers"], event.data["cancelled_amount"]) == ([voucher], "10")


def test_compensation_is_paid_and_recorded(program: Any, clock: Clock) -> None:
    grant("u_1", "fifty", "g1")
    close("u_1", "o1", at=T0 + H, pnl="-20")
    consume_vouchers(at=T0 + 2 * H)
    clock("2026-11-21T00:30:00Z")
    squat("voucher.compensation_paid:welcome:2026-11-20:2026-11-21T00:30:00+00:00")
    assert without_digests(pay_voucher_compensation(day=dt.date(2026, 11, 20))) == {
        "users_paid": 1,
        "amount": "20",
    }
    assert PayoutInstruction.objects.get().amount == Decimal(20)
    event = recorded("voucher.compensation_paid:welcome:2026-11-20:2026-11-21T00:30:00+00:00")
    assert event.data == {"program": "welcome", "day": "2026-11-20", "users": 1, "amount": "20"}


def test_expired_vouchers_are_recorded(program: Any) -> None:
    voucher = grant("u_1", "fifty", "g1")
    at = T0 + 8 * 24 * H
    squat(f"voucher.expired:{at.isoformat()}")
    assert expire_vouchers(at=at) == {"vouchers_expired": 1}
    assert Voucher.objects.get(pk=voucher).expired_at == T0 + 7 * 24 * H
    assert recorded("voucher.expired:2026-11-28T10:00:00+00:00").data == {"vouchers": 1}


# --- referrals, Earn, funding ------------------------------------------------------------------


def test_referral_commissions_are_paid_and_recorded(clock: Clock) -> None:
    clock("2026-11-21T00:15:00Z")
    ingest([events.registered("r_1", occurred_at="2026-01-01T00:00:00Z")], source="test")
    code = ReferralCode.objects.get(user_id="r_1").code
    ingest(
        [
            events.registered("e_1", referral_code=code, occurred_at="2026-02-01T00:00:00Z"),
            # 1000 x 0.0005 = 0.5 USDT of fee; 10% of it to the referrer.
            events.fill("e_1", order_id="f1", action="open", notional="1000", fee="0.5",
                        occurred_at="2026-11-20T12:00:00Z"),
        ],
        source="test",
    )  # fmt: skip
    fund_account(
        account=open_funding_account(program="referrals", asset="USDT"),
        amount=Decimal(1000),
        idempotency_key="pool-USDT",
        by="finance",
    )
    assert settle_referrals(day=dt.date(2026, 11, 20))["commissions"] == 1
    clock("2026-11-21T01:00:00Z")
    squat("referral.commissions_paid:USDT:2026-11-20")
    paid = distribute_referral_commissions(day=dt.date(2026, 11, 20))
    assert (paid["referrers_paid"], paid["amount_USDT"]) == (1, "0.05")
    event = recorded("referral.commissions_paid:USDT:2026-11-20")
    assert event.data == {"day": "2026-11-20", "asset": "USDT", "referrers": 1, "amount": "0.05"}


def test_earn_activation_changes_are_answered_and_recorded(clock: Clock) -> None:
    squat(
        "earn.activated:u_1:2026-11-19T12:00:00+00:00",
        "earn.deactivated:u_1:2026-11-20T09:00:00+00:00",
    )
    clock("2026-11-19T12:00:00Z")
    activation, changed = set_active("u_1", True)
    assert (changed, activation is not None and activation.active) == (True, True)
    clock("2026-11-20T09:00:00Z")
    deactivation, changed = set_active("u_1", False)
    assert (changed, deactivation is not None and deactivation.active) == (True, False)
    assert list(Activation.objects.order_by("occurred_at").values_list("event_id", "active")) == [
        ("earn.activated:u_1:2026-11-19T12:00:00+00:00", True),
        ("earn.deactivated:u_1:2026-11-20T09:00:00+00:00", False),
    ]
    assert recorded("earn.activated:u_1:2026-11-19T12:00:00+00:00").user_id == "u_1"
    assert recorded("earn.deactivated:u_1:2026-11-20T09:00:00+00:00").type == "earn.deactivated"


def test_earn_interest_is_paid_and_recorded(clock: Clock) -> None:
    fund_account(
        account=open_funding_account(program="earn", asset="USDT"),
        amount=Decimal(1000),
        idempotency_key="earn-pool",
        by="finance",
    )
    clock("2026-11-19T12:00:00Z")
    set_active("u_1", True)
    position = {"symbol": "BTC_USDT", "market": "usdt_m", "side": "long", "quantity": "1",
                "avg_entry_price": "100000"}  # fmt: skip
    ingest(
        [
            events.wallet("u_1", available="25000", occurred_at="2026-11-19T12:00:00Z"),
            events.positions("u_1", items=[position], occurred_at="2026-11-19T12:00:00Z"),
        ],
        source="test",
    )
    for hour in (0, 8, 16):
        clock(f"2026-11-20T{hour:02d}:05:00Z")
        earn_snapshot(at=instant(f"2026-11-20T{hour:02d}:05:00Z"))
    clock("2026-11-21T00:20:00Z")
    accrue_earn_interest(day=dt.date(2026, 11, 20))
    clock("2026-11-21T00:40:00Z")
    squat("earn.interest_paid:USDT:2026-11-20:2026-11-21T00:40:00+00:00")
    # 25,000 x 15% / 365, rounded down to 8 decimals.
    paid = distribute_earn_interest(day=dt.date(2026, 11, 20))
    assert (paid["credits"], paid["amount_USDT"]) == (1, "10.2739726")
    event = recorded("earn.interest_paid:USDT:2026-11-20:2026-11-21T00:40:00+00:00")
    assert event.data == {"day": "2026-11-20", "asset": "USDT", "amount": "10.2739726"}


def test_a_top_up_is_posted_and_recorded(clock: Clock) -> None:
    account = open_funding_account(program="earn", asset="USDT")
    squat("ledger.account_funded:earn-pool")
    posted = fund_account(
        account=account, amount=Decimal(250), idempotency_key="earn-pool", by="finance"
    )
    assert posted.created is True
    assert Account.objects.get(pk=account.pk).balance == Decimal(250)
    event = recorded("ledger.account_funded:earn-pool")
    assert (event.data["amount"], event.data["by"], event.data["transaction_id"]) == (
        "250",
        "finance",
        posted.transaction.pk,
    )


# --- the audit of ops actions ------------------------------------------------------------


@pytest.fixture
def operator() -> Client:
    user = User.objects.create_user("ops-ns", password="a-long-password-1", is_staff=True)
    user.groups.add(Group.objects.get(name="operator"))
    client = Client()
    client.force_login(user)
    return client


def _next_log_entry_id() -> int:
    # Taking a number from the log entries' sequence: the next entry gets the one after.
    with connection.cursor() as cursor:
        cursor.execute("SELECT nextval(pg_get_serial_sequence('django_admin_log', 'id'))")
        return int(cursor.fetchone()[0]) + 1


def _discard(operator: Client) -> QuarantinedInput:
    ingest(['{"not": "an event"}'], source="test")
    entry = QuarantinedInput.objects.get()
    operator.post(
        "/admin/ledger/quarantinedinput/", {"action": "discard", "_selected_action": [entry.pk]}
    )
    entry.refresh_from_db()
    return entry


def test_an_admin_action_is_audited(operator: Client) -> None:
    event_id = f"ops.admin_action:{_next_log_entry_id()}"
    squat(event_id)
    entry = _discard(operator)
    assert entry.status == "discarded"
    event = recorded(event_id)
    assert (event.data["staff"], event.data["action"], event.data["message"]) == (
        "ops-ns",
        "change",
        "action: discard",
    )
    assert (event.data["object"], event.data["object_id"]) == (
        "ledger.quarantinedinput",
        str(entry.pk),
    )


def test_an_admin_action_that_cannot_be_audited_is_refused(operator: Client) -> None:
    # Not an inbound event: a record of the product's own under the next entry's
    # id (log entries numbered again after a restore).
    event_id = f"ops.admin_action:{_next_log_entry_id()}"
    append_domain_events([DomainEvent(event_id, "ops.admin_action", T0, {"staff": "someone else"})])
    with pytest.raises(AuditNotRecorded, match=f"already holds a different {event_id}"):
        _discard(operator)
    assert QuarantinedInput.objects.get().status == "open"
    assert Event.objects.get(event_id=event_id).data == {"staff": "someone else"}


# --- the database's rule -----------------------------------------------------------------

_INSERT = (
    "INSERT INTO ledger_event (event_id, type, origin, occurred_at, received_at, user_id, data,"
    " extra, body_hash, source) VALUES (%s, 'holding.updated', %s, now(), now(), 'u_1',"
    " '{}', '{}', 'h', 'sql')"
)


def _insert(event_id: str, origin: str) -> None:
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(_INSERT, [event_id, origin])


def test_the_database_keeps_one_row_per_origin_and_id() -> None:
    _insert("same-id", "exchange")
    _insert("same-id", "rewards")
    for origin in ("exchange", "rewards"):
        with pytest.raises(IntegrityError) as refused:
            _insert("same-id", origin)
        assert isinstance(refused.value.__cause__, psycopg.errors.UniqueViolation)
        assert "event_id_unique_per_origin" in str(refused.value)
    with pytest.raises(IntegrityError) as unknown:
        _insert("other-id", "partner")
    assert isinstance(unknown.value.__cause__, psycopg.errors.CheckViolation)
    assert "event_origin_known" in str(unknown.value)
    # A writer naming no origin is in the inbound namespace.
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO ledger_event (event_id, type, occurred_at, received_at, user_id, data,"
            " extra, body_hash, source) VALUES ('no-origin', 'holding.updated', now(), now(),"
            " 'u_1', '{}', '{}', 'h', 'sql') RETURNING origin"
        )
        assert cursor.fetchone()[0] == "exchange"
    assert sorted(Event.objects.filter(event_id="same-id").values_list("origin", flat=True)) == [
        "exchange",
        "rewards",
    ]


def test_each_append_path_sees_only_its_own_namespace() -> None:
    squat("shared")
    inbound_hash = Event.objects.get(event_id="shared").body_hash
    assert stored_hashes(["shared", "absent"]) == {"shared": inbound_hash}
    assert stored_hashes(["shared"], origin=EventOrigin.REWARDS) == {}
    first = append_domain_events([DomainEvent("shared", "demo.noted", T0, {"n": 1})])
    assert (first.appended, first.existing, first.conflicting) == (["shared"], {}, [])
    domain_hash = Event.objects.get(event_id="shared", origin="rewards").body_hash
    assert stored_hashes(["shared"], origin=EventOrigin.REWARDS) == {"shared": domain_hash}
    again = append_domain_events(
        [
            DomainEvent("shared", "demo.noted", T0, {"n": 1}),
            DomainEvent("other", "demo.noted", T0, {"n": 2}),
        ]
    )
    assert (again.appended, again.existing, again.conflicting) == (
        ["other"],
        {"shared": domain_hash},
        [],
    )
    changed = append_domain_events([DomainEvent("shared", "demo.noted", T0, {"n": 3})])
    assert (changed.appended, changed.conflicting) == ([], ["shared"])
    # The inbound fact still dedupes against itself alone.
    assert stored_hashes(["shared"]) == {"shared": inbound_hash}
