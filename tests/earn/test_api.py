"""The Earn endpoints (user JWT), the admin screens and apply_config."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.contrib.auth.models import Group, User
from django.test import Client
from rest_framework.test import APIClient

from earn.jobs import accrue_earn_interest, distribute_earn_interest, earn_snapshot
from earn.models import Activation, EarnTerms
from ledger.configuration import ConfigError, apply_config
from ledger.ingestion import ingest
from ledger.models import Event
from tests import events
from tests.earn.conftest import Clock, btc_long
from tests.ledger.conftest import user_jwt

D = dt.date(2026, 11, 20)


def _client(user: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {user_jwt(user)}")
    return client


def test_activation_is_recorded_as_events_and_idempotent(db: None, clock: Clock) -> None:
    client = _client("u_1")
    clock("2026-11-19T12:00:00Z")
    first = client.post("/api/v1/earn/activation")
    assert first.status_code == 201
    assert first.json() == {"active": True, "since": "2026-11-19T12:00:00Z", "changed": True}
    again = client.post("/api/v1/earn/activation")
    assert (again.status_code, again.json()["changed"]) == (200, False)
    clock("2026-11-20T09:00:00Z")
    off = client.delete("/api/v1/earn/activation")
    assert off.json() == {"active": False, "since": "2026-11-20T09:00:00Z", "changed": True}
    assert client.delete("/api/v1/earn/activation").json()["changed"] is False
    assert list(
        Event.objects.filter(user_id="u_1").order_by("position").values_list("type", "occurred_at")
    ) == [
        ("earn.activated", dt.datetime(2026, 11, 19, 12, tzinfo=dt.UTC)),
        ("earn.deactivated", dt.datetime(2026, 11, 20, 9, tzinfo=dt.UTC)),
    ]
    assert APIClient().post("/api/v1/earn/activation").status_code in (401, 403)


def test_status_terms_todays_snapshots_and_estimate(db: None, clock: Clock) -> None:
    ingest(
        [
            events.wallet("u_1", available="30000", occurred_at="2026-11-19T12:00:00Z"),
            events.positions("u_1", items=[btc_long("100000")], occurred_at="2026-11-19T12:00:00Z"),
        ],
        source="test",
    )
    clock("2026-11-19T12:00:00Z")
    _client("u_1").post("/api/v1/earn/activation")
    clock("2026-11-20T00:05:00Z")
    earn_snapshot(at=dt.datetime(2026, 11, 20, 0, 5, tzinfo=dt.UTC))
    # 25,000 left after the first snapshot: the rest of the day is estimated from now.
    ingest(
        [events.wallet("u_1", available="25000", occurred_at="2026-11-20T05:00:00Z")],
        source="test",
    )
    clock("2026-11-20T09:00:00Z")  # the 08:00 snapshot is not taken yet
    body = _client("u_1").get("/api/v1/earn").json()
    assert body["active"] is True and body["assets"] == ["USDT", "USDC"]
    assert body["terms"] == {
        "effective_from": "2000-01-01",
        "position_threshold": "100000",
        "boosted_principal": "25000",
        "boosted_apr": "0.15",
        "base_apr": "0.03",
        "snapshot_times": ["00:00", "08:00", "16:00"],
    }
    usdt = [s for s in body["today"]["snapshots"] if s["asset"] == "USDT"]
    assert [(s["at"], s["principal"], s["position_value"], s["estimated"]) for s in usdt] == [
        ("2026-11-20T00:00:00Z", "30000", "100000", False),
        ("2026-11-20T08:00:00Z", "25000", "100000", True),
        ("2026-11-20T16:00:00Z", "25000", "100000", True),
    ]
    estimate = {e["asset"]: e for e in body["today"]["estimate"]}
    # P 25,000, V 100,000: 25,000 x 15% / 365
    assert estimate["USDT"]["interest"] == "10.2739726"
    assert estimate["USDC"]["interest"] == "0"


def test_interest_history_shows_every_number(db: None, clock: Clock) -> None:
    from ledger.bookkeeping import fund_account, open_funding_account

    fund_account(
        account=open_funding_account(program="earn", asset="USDT"),
        amount=Decimal(100),
        idempotency_key="earn-pool",
        by="finance",
    )
    ingest(
        [
            events.wallet("u_1", available="85000", occurred_at="2026-11-19T12:00:00Z"),
            events.positions("u_1", items=[btc_long("100000")], occurred_at="2026-11-19T12:00:00Z"),
        ],
        source="test",
    )
    clock("2026-11-19T12:00:00Z")
    _client("u_1").post("/api/v1/earn/activation")
    clock("2026-11-21T00:20:00Z")
    accrue_earn_interest(day=D)  # takes the day's three snapshots from history
    rows = _client("u_1").get("/api/v1/earn/interest").json()["results"]
    usdt = next(r for r in rows if r["asset"] == "USDT")
    assert usdt == {
        "day": "2026-11-20",
        "asset": "USDT",
        "snapshots": [
            {"at": f"2026-11-20T{h}:00:00Z", "principal": "85000", "position_value": "100000"}
            for h in ("00", "08", "16")
        ],
        "principal": "85000",
        "position_value": "100000",
        "boosted_portion": "25000",
        "boosted_apr": "0.15",
        "base_portion": "60000",
        "base_apr": "0.03",
        "interest": "15.20547945",
        "status": "accrued",
    }
    clock("2026-11-21T00:40:00Z")
    distribute_earn_interest(day=D)
    rows = _client("u_1").get("/api/v1/earn/interest").json()["results"]
    assert {r["status"] for r in rows} == {"paid"}


def test_admin_screens_for_ops(db: None, clock: Clock) -> None:
    clock("2026-11-19T12:00:00Z")
    _client("u_1").post("/api/v1/earn/activation")
    _client("u_2").post("/api/v1/earn/activation")
    _client("u_2").delete("/api/v1/earn/activation")
    clock("2026-11-21T00:20:00Z")
    accrue_earn_interest(day=D)
    operator = User.objects.create_user("ops-e", password="a-long-password-1", is_staff=True)
    operator.groups.add(Group.objects.get(name="operator"))
    client = Client()
    client.force_login(operator)
    active = client.get("/admin/earn/activation/?now=active")
    assert [a.user_id for a in active.context["cl"].result_list] == ["u_1"]
    page = client.get("/admin/earn/earndistribution/")
    assert b"Earn pool funding now" in page.content
    for screen in ("earnterms", "snapshot", "snapshotrun", "accrual", "dailyinterest"):
        assert client.get(f"/admin/earn/{screen}/").status_code == 200
    refused = client.post(
        "/admin/earn/earnterms/add/",
        {
            "effective_from": "2026-12-01",
            "assets": '["USDT", "USDC"]',
            "position_threshold": "100000",
            "boosted_principal": "25000",
            "boosted_apr": "1.5",
            "base_apr": "0.03",
            "snapshot_times": '["00:00", "08:00"]',
        },
    )
    errors = refused.context["adminform"].form.errors
    assert set(errors) == {"boosted_apr", "snapshot_times"}
    assert not EarnTerms.objects.exists()
    assert Activation.objects.count() == 3


def test_apply_config_earn_terms(db: None, clock: Clock) -> None:
    document = {
        "earn_terms": [
            {
                "effective_from": "2026-12-01",
                "boosted_apr": "0.12",
                "base_apr": "0.02",
                "snapshot_times": ["01:00", "09:00", "17:00"],
            }
        ]
    }
    assert apply_config(document, by="ops")
    terms = EarnTerms.objects.get()
    assert (terms.boosted_apr, terms.base_apr, terms.snapshot_times) == (
        Decimal("0.12"),
        Decimal("0.02"),
        ["01:00", "09:00", "17:00"],
    )
    with pytest.raises(ConfigError, match=r"earn_terms\[0\].boosted_apr"):
        apply_config(
            {"earn_terms": [{"effective_from": "2026-12-02", "boosted_apr": 0.1}]}, by="ops"
        )
