"""Registration, valid volume, spins (RULES.md section 1), with exact numbers."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from decimal import Decimal

import pytest

from campaigns import services
from campaigns.jobs import refresh_spins, void_unused_spins
from campaigns.models import Campaign, DailyVolume, Participant, SpinAllowance
from ledger.ingestion import ingest
from ledger.models import Event
from tests import events
from tests.campaigns.conftest import instant

Clock = Callable[[str], dt.datetime]


def _register(
    campaign: Campaign, clock: Clock, user: str = "u_1", at: str = "2026-11-02T00:00:00Z"
) -> None:
    clock(at)
    services.register(campaign, user)


def test_registration_is_an_event_and_idempotent(campaign: Campaign, clock: Clock) -> None:
    _register(campaign, clock)
    participant, created = services.register(campaign, "u_1")
    assert created is False
    assert participant.registered_at == instant("2026-11-02T00:00:00Z")
    assert Event.objects.filter(type="campaign.registered", user_id="u_1").count() == 1


@pytest.mark.parametrize(
    ("user", "reasons"),
    [
        ("u_sub", ["account_type"]),
        ("u_inst", ["account_type"]),
        ("u_mm", ["account_type"]),
        ("u_unknown", ["unknown_user", "not_invited"]),
    ],
)
def test_ineligible_users_are_refused_with_reasons(
    campaign: Campaign, clock: Clock, user: str, reasons: list[str]
) -> None:
    clock("2026-11-02T00:00:00Z")
    with pytest.raises(services.CampaignRefusal) as refusal:
        services.register(campaign, user)
    assert refusal.value.code == "not_eligible"
    assert refusal.value.reasons == reasons
    assert not Participant.objects.filter(user_id=user).exists()


def test_registration_window(campaign: Campaign, clock: Clock) -> None:
    clock("2026-10-24T23:59:59Z")
    with pytest.raises(services.CampaignRefusal) as early:
        services.register(campaign, "u_1")
    assert early.value.reasons == ["registration_not_open"]
    clock("2026-11-10T00:00:00Z")
    with pytest.raises(services.CampaignRefusal) as late:
        services.register(campaign, "u_1")
    assert late.value.reasons == ["registration_closed"]


def test_valid_volume_counts_only_what_the_rules_count(campaign: Campaign, clock: Clock) -> None:
    _register(campaign, clock)
    clock("2026-11-05T00:00:00Z")
    day = "2026-11-03T10:00:00Z"
    ingest(
        [
            events.fill("u_1", order_id="a", action="open", notional="600", occurred_at=day),
            # coin-M counts; a closing fill counts as volume too
            events.fill(
                "u_1",
                order_id="b",
                notional="500",
                symbol="BTC_USD",
                market="coin_m",
                realized_pnl="-20",
                occurred_at=day,
            ),
            # zero-fee fills, stablecoin futures, spot: excluded
            events.fill(
                "u_1",
                order_id="c",
                action="open",
                notional="10000",
                fee="0",
                fee_rate="0",
                occurred_at=day,
            ),
            events.fill(
                "u_1",
                order_id="d",
                action="open",
                notional="10000",
                symbol="USDC_USDT",
                occurred_at=day,
            ),
            events.fill(
                "u_1", order_id="e", action="open", notional="10000", market="spot", occurred_at=day
            ),
            # before registration (though delivered after it) and at the end: excluded
            events.fill(
                "u_1",
                order_id="f",
                action="open",
                notional="5000",
                occurred_at="2026-11-01T12:00:00Z",
            ),
            events.fill(
                "u_1",
                order_id="g",
                action="open",
                notional="5000",
                occurred_at="2026-11-15T00:00:00Z",
            ),
            # another day: 9.99, below the daily minimum of 10
            events.fill(
                "u_1",
                order_id="h",
                action="open",
                notional="9.99",
                occurred_at="2026-11-04T08:00:00Z",
            ),
            # an unregistered user's volume is nobody's
            events.fill("u_2", order_id="i", action="open", notional="5000", occurred_at=day),
        ],
        source="test",
    )
    volumes = dict(DailyVolume.objects.filter(user_id="u_1").values_list("day", "volume"))
    assert volumes == {dt.date(2026, 11, 3): Decimal("1100"), dt.date(2026, 11, 4): Decimal("9.99")}
    assert not DailyVolume.objects.filter(user_id="u_2").exists()

    assert refresh_spins(at=instant("2026-11-05T00:05:00Z")) == {"participants_refreshed": 1}
    allowance = SpinAllowance.objects.get(user_id="u_1")
    assert allowance.valid_volume == Decimal("1109.99")
    assert allowance.coverage_granted_at == instant("2026-11-05T00:05:00Z")
    assert allowance.daily_earned == 1
    # Incremental: nothing new, nothing recomputed.
    assert refresh_spins(at=instant("2026-11-05T00:10:00Z")) == {"participants_refreshed": 0}


def _with_spins(campaign: Campaign, clock: Clock, user: str = "u_1") -> None:
    _register(campaign, clock, user)
    clock("2026-11-05T00:00:00Z")
    ingest(
        [
            events.fill(
                user,
                order_id=f"{user}-a",
                action="open",
                notional="1000",
                occurred_at="2026-11-03T10:00:00Z",
            ),
            events.fill(
                user,
                order_id=f"{user}-b",
                action="open",
                notional="50",
                occurred_at="2026-11-04T10:00:00Z",
            ),
        ],
        source="test",
    )
    refresh_spins(at=instant("2026-11-05T00:05:00Z"))


def test_exactly_one_card_per_user(campaign: Campaign, clock: Clock) -> None:
    _with_spins(campaign, clock)
    outcome = services.spin(campaign, "u_1", "coverage")
    assert outcome.card_percent == Decimal("8")
    with pytest.raises(services.CampaignRefusal) as again:
        services.spin(campaign, "u_1", "coverage")
    assert again.value.code == "card_already_drawn"
    assert Participant.objects.get(user_id="u_1").card_percent == Decimal("8")


def test_daily_spins_win_the_prize_and_run_out(campaign: Campaign, clock: Clock) -> None:
    _with_spins(campaign, clock)
    first = services.spin(campaign, "u_1", "daily")
    second = services.spin(campaign, "u_1", "daily")
    assert (first.number, first.amount, second.number, second.amount) == (
        1,
        Decimal("7"),
        2,
        Decimal("7"),
    )
    with pytest.raises(services.CampaignRefusal) as none_left:
        services.spin(campaign, "u_1", "daily")
    assert none_left.value.code == "no_spin_available"
    campaign.refresh_from_db()
    assert campaign.prizes_committed == Decimal("14")


def test_no_coverage_spin_below_the_target(campaign: Campaign, clock: Clock) -> None:
    _register(campaign, clock)
    ingest(
        [events.fill("u_1", action="open", notional="999.99", occurred_at="2026-11-03T10:00:00Z")],
        source="test",
    )
    refresh_spins(at=instant("2026-11-05T00:05:00Z"))
    with pytest.raises(services.CampaignRefusal) as refusal:
        services.spin(campaign, "u_1", "coverage")
    assert refusal.value.code == "no_spin_available"


def test_unused_spins_are_void_after_the_end(campaign: Campaign, clock: Clock) -> None:
    _with_spins(campaign, clock)
    services.spin(campaign, "u_1", "daily")
    clock("2026-11-15T00:00:00Z")
    with pytest.raises(services.CampaignRefusal) as ended:
        services.spin(campaign, "u_1", "coverage")
    assert ended.value.code == "campaign_ended"
    assert void_unused_spins(at=instant("2026-11-15T00:30:00Z")) == {
        "participants_with_void_spins": 0
    }
    assert void_unused_spins(at=instant("2026-11-15T01:00:00Z")) == {
        "participants_with_void_spins": 1
    }
    voided = Event.objects.get(type="campaign.spins_voided")
    assert (voided.user_id, voided.data["coverage_spins"], voided.data["daily_spins"]) == (
        "u_1",
        1,
        1,
    )
    assert void_unused_spins(at=instant("2026-11-15T02:00:00Z")) == {
        "participants_with_void_spins": 0
    }


def test_a_daily_prize_beyond_the_funding_is_refused_and_flagged(clock: Clock, db: None) -> None:
    from tests.campaigns.conftest import known_users, make_campaign

    campaign = make_campaign(slug="thin", funding="10")
    known_users(("u_1", "main"))
    services.invite(campaign, ["u_1"], source="test")
    _with_spins(campaign, clock)
    assert services.spin(campaign, "u_1", "daily").amount == Decimal("7")
    with pytest.raises(services.BudgetExhausted):
        services.spin(campaign, "u_1", "daily")
    campaign.refresh_from_db()
    assert campaign.prizes_committed == Decimal("7")
    assert "above the funding of 10" in campaign.budget_alert
