"""The coverage draw and the 14-day bonuses, with numbers worked out from the rules."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
from collections.abc import Callable
from decimal import Decimal
from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from campaigns import services
from campaigns.jobs import draw_coverage, issue_campaign_bonuses, refresh_spins
from campaigns.models import Campaign, CoverageDraw, Reward
from campaigns.selectors import rewards_with_status
from ledger.ingestion import ingest
from ledger.models import Account, Event, PaidItem, PayoutInstruction
from ledger.money import format_amount
from ledger.projection import rebuild
from ledger.verification import verify_ledger
from tests import events
from tests.campaigns.conftest import instant
from tests.digests import without_digests

Clock = Callable[[str], dt.datetime]
DRAW_AT = instant("2026-11-15T01:00:00Z")
ISSUE_AT = instant("2026-11-16T09:30:00Z")


def _losing(
    user: str, count: int, *, start: dt.datetime, prefix: str = "L", **kw: Any
) -> list[dict[str, Any]]:
    """`count` losing orders, one closing fill each, losses 7.5, 15, 22.5 ... (7.5 x n)."""
    return [
        events.fill(
            user,
            order_id=f"{prefix}{n:03d}",
            realized_pnl=str(Decimal("-7.5") * n),
            notional="100",
            occurred_at=(start + dt.timedelta(minutes=n)).isoformat(),
            **kw,
        )
        for n in range(1, count + 1)
    ]


def _ticket(seed: str, text: str) -> str:
    return hmac.new(bytes.fromhex(seed), text.encode(), hashlib.sha256).hexdigest()


def _card_holder(campaign: Campaign, clock: Clock, user: str, losing: int) -> None:
    clock("2026-11-02T00:00:00Z")
    services.register(campaign, user)
    clock("2026-11-05T00:00:00Z")
    ingest(
        [
            events.fill(
                user,
                order_id=f"{user}-vol",
                action="open",
                notional="2000",
                occurred_at="2026-11-03T00:00:00Z",
            )
        ],
        source="test",
    )
    ingest(
        _losing(user, losing, start=instant("2026-11-03T01:00:00Z"), prefix=f"{user}-L"),
        source="test",
    )
    refresh_spins(at=instant("2026-11-05T00:05:00Z"))
    services.spin(campaign, user, "coverage")


@pytest.mark.parametrize(("losing", "covered"), [(50, 4), (100, 8), (150, 8)])
def test_an_8_percent_card_covers_round_half_up_of_the_first_100(
    campaign: Campaign, clock: Clock, losing: int, covered: int
) -> None:
    _card_holder(campaign, clock, "u_1", losing)
    assert draw_coverage(at=DRAW_AT)["orders_covered"] == covered
    draw = CoverageDraw.objects.get(user_id="u_1")
    assert (draw.losing_orders, draw.covered) == (min(losing, 100), covered)
    # Recomputed here from the seed alone: the first min(n, 100) orders by close
    # time, ranked by HMAC ticket; losses are 7.5 x n, capped at 500.
    campaign.refresh_from_db()
    first = [f"u_1-L{n:03d}" for n in range(1, min(losing, 100) + 1)]
    chosen = sorted(first, key=lambda o: _ticket(campaign.seed, f"winter:order:u_1:{o}"))[:covered]
    expected = [
        (o, Decimal("7.5") * int(o[-3:]), min(Decimal("7.5") * int(o[-3:]), Decimal(500)))
        for o in chosen
    ]
    recorded = [(c["order_id"], Decimal(c["loss"]), Decimal(c["rebate"])) for c in draw.chosen]
    assert recorded == expected


def test_excluded_orders_never_enter_the_draw(campaign: Campaign, clock: Clock) -> None:
    clock("2026-11-02T00:00:00Z")
    services.register(campaign, "u_1")
    clock("2026-11-05T00:00:00Z")
    fills = [
        events.fill(
            "u_1",
            order_id="vol",
            action="open",
            notional="2000",
            occurred_at="2026-11-03T00:00:00Z",
        ),
        *_losing(
            "u_1", 3, start=instant("2026-11-01T10:00:00Z"), prefix="before"
        ),  # before registration
        *_losing(
            "u_1", 3, start=instant("2026-11-03T10:00:00Z"), prefix="stable", symbol="USDC_USDT"
        ),
        *_losing(
            "u_1", 3, start=instant("2026-11-15T00:00:00Z"), prefix="after"
        ),  # at/after the end
        *_losing(
            "u_1",
            2,
            start=instant("2026-11-04T10:00:00Z"),
            prefix="coinm",
            symbol="BTC_USD",
            market="coin_m",
        ),
        events.fill("u_1", order_id="won", realized_pnl="30", occurred_at="2026-11-04T12:00:00Z"),
    ]
    ingest(
        fills,
        source="test",
    )
    refresh_spins(at=instant("2026-11-05T00:05:00Z"))
    services.spin(campaign, "u_1", "coverage")
    draw_coverage(at=DRAW_AT)
    draw = CoverageDraw.objects.get(user_id="u_1")
    assert draw.losing_orders == 2  # only the coin-M losses; 8% of 2 = 0.16 -> 0 covered
    assert (draw.covered, draw.chosen) == (0, [])


def test_the_draw_waits_for_the_lateness_window_and_happens_once(
    campaign: Campaign, clock: Clock
) -> None:
    _card_holder(campaign, clock, "u_1", 50)
    assert draw_coverage(at=instant("2026-11-15T00:59:59Z")) == {
        "participants_drawn": 0,
        "orders_covered": 0,
    }
    assert draw_coverage(at=DRAW_AT) == {"participants_drawn": 1, "orders_covered": 4}
    assert draw_coverage(at=instant("2026-11-15T02:00:00Z")) == {
        "participants_drawn": 0,
        "orders_covered": 0,
    }
    campaign.refresh_from_db()
    assert campaign.drawn_at == DRAW_AT


def test_bonuses_are_issued_once_and_valid_exactly_14_days(
    campaign: Campaign, clock: Clock
) -> None:
    _card_holder(campaign, clock, "u_1", 100)
    clock("2026-11-06T00:00:00Z")
    ingest(
        [
            events.fill(
                "u_1",
                order_id="d6",
                action="open",
                notional="10",
                occurred_at="2026-11-06T00:00:00Z",
            )
        ],
        source="test",
    )
    refresh_spins(at=instant("2026-11-06T00:05:00Z"))
    assert [services.spin(campaign, "u_1", "daily").amount for _ in range(2)] == [
        Decimal(7),
        Decimal(7),
    ]
    draw_coverage(at=DRAW_AT)
    rebates = sum(
        (Decimal(c["rebate"]) for c in CoverageDraw.objects.get(user_id="u_1").chosen), Decimal(0)
    )

    assert without_digests(issue_campaign_bonuses(at=ISSUE_AT)) == {
        "rewards_issued": 10,
        "amount": format_amount(rebates + 14),
    }
    payouts = PayoutInstruction.objects.filter(user_id="u_1")
    assert payouts.count() == 10
    assert {p.account_kind for p in payouts} == {"futures_bonus"}
    assert {p.expires_at for p in payouts} == {instant("2026-11-30T09:30:00Z")}
    funding = Account.objects.get(code="funding:campaign:winter:USDT")
    assert funding.balance == Decimal("100000") - rebates - 14
    assert {r["status"] for r in rewards_with_status(campaign, "u_1")} == {"issued"}

    assert issue_campaign_bonuses(at=ISSUE_AT + dt.timedelta(hours=1)) == {
        "rewards_issued": 0,
        "amount": "0",
    }
    Campaign.objects.filter(pk=campaign.pk).update(bonuses_issued_at=None)  # a forced rerun
    assert issue_campaign_bonuses(at=ISSUE_AT + dt.timedelta(hours=2)) == {
        "rewards_issued": 0,
        "amount": "0",
    }
    assert PayoutInstruction.objects.count() == 10
    assert verify_ledger() == []


def test_issuance_beyond_the_funding_pays_nothing_and_flags_ops(clock: Clock, db: None) -> None:
    from tests.campaigns.conftest import known_users, make_campaign

    campaign = make_campaign(slug="thin", funding="20")
    known_users(("u_1", "main"))
    services.invite(campaign, ["u_1"], source="test")
    _card_holder(campaign, clock, "u_1", 100)  # 8 covered orders, far above 20 USDT
    draw_coverage(at=DRAW_AT)
    with pytest.raises(services.BudgetExhausted):
        issue_campaign_bonuses(at=ISSUE_AT)
    campaign.refresh_from_db()
    assert "nothing was issued" in campaign.budget_alert and campaign.bonuses_issued_at is None
    assert PayoutInstruction.objects.count() == 0
    assert Account.objects.get(code="funding:campaign:thin:USDT").balance == Decimal("20")


def test_disqualification_voids_pending_rewards_but_not_issued_ones(
    campaign: Campaign, clock: Clock
) -> None:
    _card_holder(campaign, clock, "u_1", 100)
    _card_holder(campaign, clock, "u_2", 100)
    draw_coverage(at=DRAW_AT)
    ingest([events.risk("u_2", occurred_at="2026-11-15T12:00:00Z")], source="test")
    result = issue_campaign_bonuses(at=ISSUE_AT)
    assert result["rewards_issued"] == 8
    assert not PayoutInstruction.objects.filter(user_id="u_2").exists()
    assert {r["status"] for r in rewards_with_status(campaign, "u_2")} == {"void"}
    voided = Event.objects.get(type="campaign.rewards_voided")
    assert (voided.user_id, voided.data["rewards"]) == ("u_2", 8)
    issued_event = campaign.__class__.objects.get(pk=campaign.pk)
    assert issued_event.bonuses_issued_at == ISSUE_AT
    ingest([events.risk("u_1", occurred_at="2026-11-17T00:00:00Z")], source="test")
    assert {r["status"] for r in rewards_with_status(campaign, "u_1")} == {"issued"}
    assert Reward.objects.filter(user_id="u_2").count() == 8  # kept, never deleted


def test_verify_draw_recomputes_everything_and_catches_a_difference(
    campaign: Campaign, clock: Clock
) -> None:
    _card_holder(campaign, clock, "u_1", 60)
    services.spin(campaign, "u_1", "daily")
    draw_coverage(at=DRAW_AT)
    out = StringIO()
    call_command("verify_draw", "winter", stdout=out)
    assert "every recorded outcome matches the seed (drawn)" in out.getvalue()
    draw = CoverageDraw.objects.get(user_id="u_1")
    tampered = [dict(item) for item in draw.chosen]
    tampered[0]["rebate"] = str(
        Decimal(tampered[0]["rebate"]) + 1
    )  # one more USDT than the rules give
    draw.chosen = tampered
    draw.save()
    with pytest.raises(CommandError, match="1 difference"):
        call_command("verify_draw", "winter", stdout=StringIO())


def test_replaying_the_log_reproduces_cards_draws_and_rewards(
    campaign: Campaign, clock: Clock
) -> None:
    _card_holder(campaign, clock, "u_1", 120)
    _card_holder(campaign, clock, "u_2", 30)
    services.spin(campaign, "u_1", "daily")
    draw_coverage(at=DRAW_AT)
    issue_campaign_bonuses(at=ISSUE_AT)

    def snapshot() -> tuple[object, ...]:
        from campaigns.models import DailySpin, DailyVolume, Participant

        return (
            sorted(Participant.objects.values_list("user_id", "registered_at", "card_percent")),
            sorted(DailyVolume.objects.values_list("user_id", "day", "volume", "last_position")),
            sorted(DailySpin.objects.values_list("user_id", "number", "amount")),
            sorted(
                (d.user_id, d.covered, d.losing_orders, str(d.chosen))
                for d in CoverageDraw.objects.all()
            ),
            sorted(
                # The id too: the ledger's paid items name rewards by id.
                Reward.objects.values_list(
                    "id", "user_id", "kind", "reference", "amount", "idempotency_key"
                )
            ),
            sorted((r["status"], str(r["amount"])) for r in rewards_with_status(campaign, "u_1")),
        )

    before = snapshot()
    rebuild()
    assert snapshot() == before
    paid = set(PaidItem.objects.values_list("item_id", flat=True))
    assert paid == set(Reward.objects.values_list("id", flat=True)) and len(paid) > 0
    assert verify_ledger() == []
