"""The campaign endpoints as the exchange's frontend and services call them."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable
from typing import Any

import pytest
from django.db import connection
from rest_framework.test import APIClient

from access.services import create_service_token
from campaigns import services
from campaigns.jobs import draw_coverage, refresh_spins
from campaigns.models import Campaign, DailySpin
from ledger.ingestion import ingest
from tests import events
from tests.campaigns.conftest import instant, known_users, make_campaign
from tests.ledger.conftest import user_jwt

Clock = Callable[[str], dt.datetime]
BASE = "/api/v1/campaigns"


def _client(user: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {user_jwt(user)}")
    return client


def test_a_user_sees_only_campaigns_open_to_them(campaign: Campaign, clock: Clock) -> None:
    make_campaign(slug="private-vip", funding="0")
    body = _client("u_1").get(BASE).json()
    assert [c["slug"] for c in body["results"]] == ["winter"]
    winter = body["results"][0]
    assert winter["draw"] == {"seed_sha256": campaign.seed_hash, "seed": None, "drawn_at": None}
    assert (
        winter["rules"]["cap_per_order"] == "500" and winter["rules"]["losing_order_limit"] == 100
    )
    assert winter["phase"] == "upcoming" and winter["registered"] is False
    assert _client("u_1").get(f"{BASE}/private-vip").status_code == 404
    assert _client("stranger").get(f"{BASE}/winter").status_code == 404


def test_eligibility_for_the_user_and_for_a_service(campaign: Campaign, clock: Clock) -> None:
    clock("2026-11-02T00:00:00Z")
    mine = _client("u_sub").get(f"{BASE}/winter/eligibility").json()
    assert (mine["eligible"], mine["reasons"]) == (False, ["account_type"])
    _, token = create_service_token(name="frontend-bff")
    service = APIClient()
    service.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    answer = service.get(f"{BASE}/winter/eligibility/u_nobody").json()
    assert answer["reasons"] == ["unknown_user", "not_invited"]
    assert service.get(f"{BASE}/winter/eligibility/u_1").json()["eligible"] is True
    # One credential per operation: each kind is sent to its own.
    assert service.get(f"{BASE}/winter/eligibility").status_code == 403
    assert _client("u_1").get(f"{BASE}/winter/eligibility/u_2").status_code == 403
    bad = service.get(f"{BASE}/winter/eligibility/%20%20")
    assert bad.status_code == 400 and "user_id" in bad.json()["error"]["fields"]


def test_register_spin_and_progress(campaign: Campaign, clock: Clock) -> None:
    clock("2026-11-02T00:00:00Z")
    client = _client("u_1")
    assert client.post(f"{BASE}/winter/registration").status_code == 201
    assert client.post(f"{BASE}/winter/registration").status_code == 200
    refused = _client("u_mm").post(f"{BASE}/winter/registration")
    assert refused.status_code == 409
    assert refused.json()["error"]["code"] == "not_eligible"
    assert refused.json()["error"]["fields"]["reasons"] == ["account_type"]

    clock("2026-11-05T00:00:00Z")
    ingest(
        [
            events.fill(
                "u_1",
                order_id="v",
                action="open",
                notional="1500",
                occurred_at="2026-11-03T00:00:00Z",
            ),
            events.fill(
                "u_1", order_id="x", realized_pnl="-12.5", occurred_at="2026-11-04T00:00:00Z"
            ),
        ],
        source="test",
    )
    refresh_spins(at=instant("2026-11-05T00:00:00Z"))
    me = client.get(f"{BASE}/winter/me").json()
    assert me["valid_volume"] == "2500" and me["volume_target"] == "1000"
    assert me["spins"] == {"coverage": 1, "daily": 2}
    assert me["losing_orders_counted"] == 1 and me["losing_order_limit"] == 100

    assert client.post(f"{BASE}/winter/spins", {"kind": "coverage"}, format="json").json() == {
        "kind": "coverage",
        "card_percent": "8",
    }
    daily = client.post(f"{BASE}/winter/spins", {"kind": "daily"}, format="json").json()
    assert daily == {"kind": "daily", "number": 1, "amount": "7", "asset": "USDT"}
    bad = client.post(f"{BASE}/winter/spins", {"kind": "jackpot"}, format="json")
    assert bad.status_code == 400 and "kind" in bad.json()["error"]["fields"]
    again = client.post(f"{BASE}/winter/spins", {"kind": "coverage"}, format="json")
    assert again.status_code == 409 and again.json()["error"]["code"] == "card_already_drawn"

    me = client.get(f"{BASE}/winter/me").json()
    assert me["spins"] == {"coverage": 0, "daily": 1} and me["card_percent"] == "8"
    assert me["rewards"] == [
        {
            "kind": "daily_prize",
            "reference": "1",
            "amount": "7",
            "earned_at": "2026-11-05T00:00:00Z",
            "status": "pending",
            "issued_at": None,
            "expires_at": None,
        }
    ]
    assert _client("u_2").get(f"{BASE}/winter/me").status_code == 404


def test_the_draw_explains_itself_after_the_reveal(campaign: Campaign, clock: Clock) -> None:
    clock("2026-11-02T00:00:00Z")
    services.register(campaign, "u_1")
    clock("2026-11-05T00:00:00Z")
    ingest(
        [
            events.fill(
                "u_1",
                order_id="v",
                action="open",
                notional="1500",
                occurred_at="2026-11-03T00:00:00Z",
            )
        ]
        + [
            events.fill(
                "u_1",
                order_id=f"o{n:02d}",
                realized_pnl=str(-100 * n),
                occurred_at=f"2026-11-04T00:{n:02d}:00Z",
            )
            for n in range(1, 26)
        ],
        source="test",
    )
    refresh_spins(at=instant("2026-11-05T00:00:00Z"))
    services.spin(campaign, "u_1", "coverage")
    early = _client("u_1").get(f"{BASE}/winter/draw")
    assert early.status_code == 409 and early.json()["error"]["code"] == "draw_not_done"

    draw_coverage(at=instant("2026-11-15T01:00:00Z"))
    clock("2026-11-15T02:00:00Z")
    body = _client("u_1").get(f"{BASE}/winter/draw").json()
    campaign.refresh_from_db()
    assert body["seed"] == campaign.seed and body["losing_orders"] == 25 and body["covered"] == 2
    covered = [o for o in body["orders"] if o["covered"]]
    smallest = sorted(body["orders"], key=lambda o: o["ticket"])[:2]
    assert [o["order_id"] for o in covered] == sorted(o["order_id"] for o in smallest)
    assert all(o["rebate"] == str(min(int(o["loss"]), 500)) for o in covered)


@pytest.mark.django_db(transaction=True)
def test_fifty_parallel_spins_for_one_spin_give_one_win(clock: Clock) -> None:
    campaign = make_campaign()
    known_users(("u_1", "main"))
    services.invite(campaign, ["u_1"], source="test")
    clock("2026-11-02T00:00:00Z")
    services.register(campaign, "u_1")
    clock("2026-11-05T00:00:00Z")
    ingest(
        [events.fill("u_1", action="open", notional="20", occurred_at="2026-11-03T00:00:00Z")],
        source="test",
    )
    refresh_spins(at=instant("2026-11-05T00:00:00Z"))

    barrier = threading.Barrier(50)
    answers: list[tuple[int, Any]] = []
    lock = threading.Lock()

    def spin() -> None:
        try:
            barrier.wait()
            response = _client("u_1").post(f"{BASE}/winter/spins", {"kind": "daily"}, format="json")
            with lock:
                answers.append((response.status_code, response.json()))
        finally:
            connection.close()

    threads = [threading.Thread(target=spin) for _ in range(50)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wins = [body for code, body in answers if code == 200]
    refusals = [body for code, body in answers if code == 409]
    assert len(wins) == 1 and wins[0]["amount"] == "7"
    assert len(refusals) == 49
    assert {body["error"]["code"] for body in refusals} == {"no_spin_available"}
    assert DailySpin.objects.count() == 1
