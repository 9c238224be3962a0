"""The support view's and the ops dashboard's reads, on the world of world.py."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import pytest

from campaigns.models import Campaign
from referrals.models import ReferralCode
from support import selectors
from tests.campaigns.conftest import make_campaign
from tests.support import world

UTC = dt.UTC
NOW = world.instant(world.END)


def _at(text: str) -> dt.datetime:
    return world.instant(text)


def _rows(overview: selectors.UserOverview, key: str, *columns: str) -> list[tuple[Any, ...]]:
    return [tuple(row[c] for c in columns) for row in overview.section(key).rows]


def _total(overview: selectors.UserOverview, key: str) -> int:
    return overview.section(key).total


def test_everything_about_a_user_with_its_cause(winter: Campaign) -> None:
    u_1 = selectors.user_overview("u_1", now=NOW)
    assert u_1.account is not None
    assert (u_1.account.account_type, u_1.account.parent_user_id) == ("main", "")
    assert u_1.account.registered_at == _at(world.REGISTERED)
    assert u_1.referral_code == ReferralCode.objects.get(user_id="u_1").code
    assert _total(u_1, "risk_measures") == 0
    assert _rows(u_1, "sub_accounts", "user_id", "account_type") == [("u_sub", "sub")]

    [joined] = u_1.section("participations").rows
    assert (joined["campaign"], joined["registered_at"]) == ("winter", _at("2026-11-02T00:00:00Z"))
    assert (joined["valid_volume"], joined["volume_target"]) == (Decimal(3300), Decimal(1000))
    assert joined["coverage_spin_at"] == _at("2026-11-05T00:05:00Z")
    assert (joined["card"], joined["card_drawn_at"]) == ("8%", _at("2026-11-05T00:00:00Z"))
    assert (joined["daily_earned"], joined["daily_used"]) == (1, 1)
    assert joined["draw"] == "1 of 13 orders covered"
    assert _rows(u_1, "invitations", "campaign", "source") == [("winter", "test")]
    assert _rows(u_1, "campaign_rewards", "kind", "amount", "earned_at", "status") == [
        ("coverage_rebate", Decimal(20), _at("2026-11-15T01:00:00Z"), "issued"),
        ("daily_prize", Decimal(7), _at("2026-11-05T00:00:00Z"), "issued"),
    ]

    assert _rows(u_1, "vouchers", "program", "face_value", "remaining", "status", "source") == [
        ("welcome", Decimal(50), Decimal(38), "active", "test")
    ]
    assert _rows(u_1, "consumptions", "order_id", "loss", "amount", "payout", "paid_at") == [
        ("v1", Decimal(12), Decimal(12), "paid", _at("2026-11-21T00:30:00Z"))
    ]

    assert _rows(u_1, "referred_by", "referrer", "refusal") == [("r_1", "")]
    assert _rows(u_1, "referees", "referee", "refusal") == [("e_1", "")]
    assert _rows(
        u_1, "commissions_earned", "day", "referee", "fees", "rate", "amount", "state"
    ) == [(dt.date(2026, 11, 20), "e_1", Decimal("0.5"), Decimal("0.1"), Decimal("0.05"), "paid")]
    assert _rows(u_1, "commissions_generated", "referrer", "amount", "state") == [
        ("r_1", Decimal("0.05"), "paid")
    ]
    assert _rows(u_1, "commission_payouts", "day", "asset", "amount") == [
        (dt.date(2026, 11, 20), "USDT", Decimal("0.05"))
    ]

    assert _rows(u_1, "earn_activations", "change") == [("activated",)]
    assert _rows(u_1, "earn_interest", "day", "asset", "principal", "interest", "status") == [
        (dt.date(2026, 11, 20), "USDC", Decimal(0), Decimal(0), "paid"),
        (dt.date(2026, 11, 20), "USDT", Decimal(25000), Decimal("10.2739726"), "paid"),
        # Made up by the distribution of the 20th: active from 12:00, so P = 0.
        (dt.date(2026, 11, 19), "USDC", Decimal(0), Decimal(0), "paid"),
        (dt.date(2026, 11, 19), "USDT", Decimal(0), Decimal(0), "paid"),
    ]
    # three instants of the 20th and the 19th's 16:00 (made up by the distribution), two assets
    assert _total(u_1, "earn_snapshots") == 8

    credits = u_1.section("credits").rows
    assert sorted((c["kind"], c["amount"], c["account_kind"]) for c in credits) == [
        ("campaign.coverage_rebate", Decimal(20), "futures_bonus"),
        ("campaign.daily_prize", Decimal(7), "futures_bonus"),
        ("earn.interest", Decimal("10.2739726"), "spot"),
        ("referral.commission", Decimal("0.05"), "spot"),
        ("voucher.compensation", Decimal(12), "spot"),
    ]
    assert credits[0]["kind"] == "referral.commission"  # newest first
    assert all(c["cause"].startswith("{") and c["delivery"] == "pending" for c in credits)

    quarantined = u_1.section("quarantine").rows
    assert sorted(q["reason"] for q in quarantined) == ["invalid", "unprocessable"]


def test_a_disqualified_users_unissued_prize_is_void(winter: Campaign) -> None:
    u_2 = selectors.user_overview("u_2", now=NOW)
    assert _rows(u_2, "risk_measures", "measure", "since") == [
        ("disqualify_campaigns", _at("2026-11-12T00:00:00Z"))
    ]
    assert _rows(u_2, "campaign_rewards", "kind", "amount", "status") == [
        ("daily_prize", Decimal(7), "void")
    ]
    assert _rows(u_2, "vouchers", "face_value", "remaining", "status") == [
        (Decimal(30), Decimal(30), "active")
    ]
    assert _total(u_2, "credits") == 0


def test_sections_are_bounded_and_say_how_many_there_are(winter: Campaign) -> None:
    u_1 = selectors.user_overview("u_1", now=NOW, limit=2)
    credits = u_1.section("credits")
    assert (len(credits.rows), credits.total, credits.truncated) == (2, 5, True)
    snapshots = u_1.section("earn_snapshots")
    # 3 instants of the 20th and the 19th's 16:00 (the only one while active), 2 assets each
    assert (len(snapshots.rows), snapshots.total) == (2, 8)
    assert not u_1.section("participations").truncated


def test_an_unknown_user_has_empty_sections(winter: Campaign) -> None:
    nobody = selectors.user_overview("u_10", now=NOW)
    assert nobody.account is None and nobody.referral_code is None
    # Only the quarantined input mentions this id.
    assert {s.key: s.total for s in nobody.sections if s.total} == {"quarantine": 1}


def test_quarantine_matches_the_user_id_exactly() -> None:
    import re

    pattern = re.compile(selectors.quarantine_pattern("u_1"))
    assert pattern.search('{"user_id": "u_1", "type": "x"}')
    assert pattern.search('{"user_id":"u_1"}')
    assert pattern.search('{"payload": "{\\"user_id\\": \\"u_1\\"}"}')
    assert not pattern.search('{"user_id": "u_10"}')
    assert not pattern.search('{"parent_user_id": "x", "referrer": "u_1"}')


def _nonzero(board: selectors.Dashboard) -> dict[str, dict[str, dict[str, str]]]:
    """Per chart and dataset: the days with a value other than 0."""
    days = [day.isoformat() for day in board.days]
    return {
        chart.key: {
            d.label: {day: v for day, v in zip(days, d.data, strict=True) if v != "0"}
            for d in chart.datasets
        }
        for chart in board.charts
    }


def _subject(key: str) -> selectors.Subject:
    return next(s for s in selectors.subjects() if s.key == key)


def test_campaign_charts_per_day(winter: Campaign) -> None:
    board = selectors.dashboard(
        _subject("campaign:winter"), dt.date(2026, 10, 20), dt.date(2026, 11, 20)
    )
    assert len(board.days) == 32
    funded = {day: "100000" for day in (d.isoformat() for d in board.days)}
    used = {day: "27" for day in funded if day >= "2026-11-16"}
    assert _nonzero(board) == {
        "registrations": {
            "invited": {"2026-10-20": "2"},
            "registered": {"2026-11-02": "2"},
        },
        "volume": {"valid futures volume": {"2026-11-03": "3300", "2026-11-04": "50"}},
        "spins": {"coverage spins": {"2026-11-05": "1"}, "daily spins": {"2026-11-05": "2"}},
        "cards": {"8% card": {"2026-11-05": "1"}},
        "rewards": {
            "coverage rebates earned": {"2026-11-15": "20"},
            "daily prizes won": {"2026-11-05": "14"},
            "bonuses issued": {"2026-11-16": "27"},
        },
        "funding-USDT": {"budget (funded to date)": funded, "used to date": used},
    }
    assert dict(board.figures)["issued"] == "27 USDT"
    assert dict(board.figures)["left in the funding account"] == "99,973 USDT"
    payload = board.payload()
    assert payload["days"][0] == "2026-10-20"
    assert [c["key"] for c in payload["charts"]] == [
        "registrations",
        "volume",
        "spins",
        "cards",
        "rewards",
        "funding-USDT",
    ]


def test_the_default_range_is_around_today(winter: Campaign) -> None:
    campaign = _subject("campaign:winter")
    # Registration opens 10-25; the campaign ends 11-15 and issues within 14
    # days: 11-29. Today inside that life: the life.
    assert selectors.default_range(campaign, dt.date(2026, 11, 21)) == (
        dt.date(2026, 10, 25),
        dt.date(2026, 11, 29),
    )
    # Finished: stretched to today. Upcoming: from today.
    assert selectors.default_range(campaign, dt.date(2026, 12, 20)) == (
        dt.date(2026, 10, 25),
        dt.date(2026, 12, 20),
    )
    assert selectors.default_range(campaign, dt.date(2026, 10, 1)) == (
        dt.date(2026, 10, 1),
        dt.date(2026, 11, 29),
    )
    # Long over: the 366 days up to today.
    assert selectors.default_range(campaign, dt.date(2028, 1, 1)) == (
        dt.date(2027, 1, 1),
        dt.date(2028, 1, 1),
    )
    # A program: the last 30 days.
    assert selectors.default_range(_subject("earn"), dt.date(2026, 11, 21)) == (
        dt.date(2026, 10, 23),
        dt.date(2026, 11, 21),
    )
    with pytest.raises(ValueError, match="at most 366 days"):
        selectors.dashboard(_subject("earn"), dt.date(2025, 1, 1), dt.date(2026, 1, 2))


def test_the_dashboard_opens_on_the_campaign_of_today(winter: Campaign) -> None:
    make_campaign(
        "spring",
        funding="0",
        starts_at=_at("2027-03-01T00:00:00Z"),
        ends_at=_at("2027-03-15T00:00:00Z"),
        registration_opens_at=_at("2027-02-20T00:00:00Z"),
        registration_closes_at=_at("2027-03-10T00:00:00Z"),
    )
    found = selectors.subjects()
    assert [s.key for s in found[:2]] == ["campaign:spring", "campaign:winter"]  # newest first
    opened = {
        day: subject.key if (subject := selectors.default_subject(found, day)) else None
        for day in (dt.date(2026, 11, 21), dt.date(2027, 3, 29), dt.date(2027, 3, 30))
    }
    # Winter's life holds 11-21; spring's ends 03-15 + 14 days; after that, the newest.
    assert opened == {
        dt.date(2026, 11, 21): "campaign:winter",
        dt.date(2027, 3, 29): "campaign:spring",
        dt.date(2027, 3, 30): "campaign:spring",
    }
    assert selectors.default_subject([], dt.date(2026, 11, 21)) is None


def test_program_charts_per_day(winter: Campaign) -> None:
    first, last = dt.date(2026, 11, 19), dt.date(2026, 11, 21)
    vouchers = _nonzero(selectors.dashboard(_subject("vouchers:welcome"), first, last))
    assert vouchers == {
        "vouchers": {"granted": {"2026-11-20": "2"}, "voided": {}, "expired with money left": {}},
        "compensation": {
            "matched (by order close day)": {"2026-11-20": "12"},
            "paid": {"2026-11-21": "12"},
            "cancelled": {},
        },
        "funding-USDT": {
            "budget (funded to date)": {
                d: "10000" for d in ("2026-11-19", "2026-11-20", "2026-11-21")
            },
            "used to date": {"2026-11-21": "12"},
        },
    }
    referrals = _nonzero(selectors.dashboard(_subject("referrals"), first, last))
    assert referrals["commissions-USDT"] == {
        "settled (by fill day)": {"2026-11-20": "0.1"},
        "invalid rebates": {},
        "paid (distribution of that day)": {"2026-11-20": "0.1"},
    }
    assert referrals["funding-USDT"]["used to date"] == {"2026-11-21": "0.1"}
    earn = _nonzero(selectors.dashboard(_subject("earn"), first, last))
    assert earn["activations"] == {"activated": {"2026-11-19": "1"}, "deactivated": {}}
    assert earn["interest"] == {"USDC": {}, "USDT": {"2026-11-20": "10.2739726"}}
    assert earn["funding-USDT"]["used to date"] == {"2026-11-21": "10.2739726"}
    assert earn["funding-USDC"]["used to date"] == {}
