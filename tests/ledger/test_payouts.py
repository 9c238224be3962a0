"""The payout outbox: REST for the wallet service, the payout stream, the user's credits."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from typing import Any

import pytest
import redis
from django.test import override_settings
from rest_framework.test import APIClient

from ledger.bookkeeping import UserCredit, fund_account, open_funding_account, post_user_credits
from ledger.models import PayoutInstruction
from ledger.payouts import publish_payouts

pytestmark = pytest.mark.django_db
EXPIRY = dt.datetime(2026, 12, 18, tzinfo=dt.UTC)


@pytest.fixture
def credits(db: None) -> None:
    account = open_funding_account(program="campaign:winter", asset="USDT")
    fund_account(account=account, amount=Decimal("500"), idempotency_key="w", by="finance")
    post_user_credits(
        [
            UserCredit(
                idempotency_key="rebate:alice:o1",
                kind="campaign.coverage_rebate",
                funding_account=account,
                user_id="alice",
                amount=Decimal("42.5"),
                user_kind="futures_bonus",
                cause={"campaign": "winter", "order_id": "o1"},
                expires_at=EXPIRY,
            ),
            UserCredit(
                idempotency_key="prize:bob:2026-11-20",
                kind="campaign.daily_prize",
                funding_account=account,
                user_id="bob",
                amount=Decimal("7"),
                user_kind="futures_bonus",
                cause={"campaign": "winter"},
            ),
        ]
    )


def test_wallet_service_lists_and_acknowledges(service_client: APIClient, credits: None) -> None:
    page = service_client.get("/api/v1/payouts").json()
    # One batch is posted in idempotency-key order (the lock order), so bob's comes first.
    assert [(p["user_id"], p["amount"], p["account"]) for p in page["results"]] == [
        ("bob", "7", "futures_bonus"),
        ("alice", "42.5", "futures_bonus"),
    ]
    first = page["results"][1]
    assert first["expires_at"] == "2026-12-18T00:00:00+00:00"
    assert first["idempotency_key"] == "rebate:alice:o1:futures_bonus:USDT"
    assert first["cause"] == {"campaign": "winter", "order_id": "o1"}

    ack = service_client.post(f"/api/v1/payouts/{first['id']}/ack")
    assert ack.status_code == 200
    acked_at = ack.json()["acked_at"]
    again = service_client.post(f"/api/v1/payouts/{first['id']}/ack")
    assert again.json()["acked_at"] == acked_at
    remaining = service_client.get("/api/v1/payouts").json()["results"]
    assert [p["user_id"] for p in remaining] == ["bob"]
    assert service_client.post("/api/v1/payouts/999999/ack").status_code == 404


def test_paging_parameters_are_checked(service_client: APIClient, credits: None) -> None:
    page = service_client.get("/api/v1/payouts?limit=1").json()
    assert len(page["results"]) == 1 and page["next_after"] == page["results"][0]["id"]
    rest = service_client.get(f"/api/v1/payouts?after={page['next_after']}").json()
    assert [p["user_id"] for p in rest["results"]] == ["alice"]
    bad = service_client.get("/api/v1/payouts?limit=abc")
    assert bad.status_code == 400 and "limit" in bad.json()["error"]["fields"]


def test_the_relay_publishes_each_instruction_to_the_stream(credits: None) -> None:
    client = redis.Redis.from_url(_redis_url())
    stream = f"test.payouts.{PayoutInstruction.objects.first().pk}"  # type: ignore[union-attr]
    client.delete(stream)
    with override_settings(PAYOUT_STREAM=stream):
        at = dt.datetime(2026, 11, 21, tzinfo=dt.UTC)
        assert publish_payouts(at=at, client=client) == {"published": 2}
        assert publish_payouts(at=at, client=client) == {"published": 0}
    entries: list[tuple[bytes, dict[bytes, bytes]]] = client.xrange(stream)  # type: ignore[assignment]
    messages = [json.loads(fields[b"payout"]) for _, fields in entries]
    client.delete(stream)
    assert [(m["user_id"], m["amount"]) for m in messages] == [("bob", "7"), ("alice", "42.5")]
    assert PayoutInstruction.objects.filter(published_at__isnull=True).count() == 0


def test_a_user_sees_only_their_own_credits(user_client: Any, credits: None) -> None:
    response = user_client("alice").get("/api/v1/me/ledger")
    assert response.status_code == 200
    rows = response.json()["results"]
    assert len(rows) == 1
    assert rows[0]["kind"] == "campaign.coverage_rebate"
    assert rows[0]["amount"] == "42.5"
    assert rows[0]["cause"] == {"campaign": "winter", "order_id": "o1"}
    assert rows[0]["status"] == "pending"
    assert user_client("carol").get("/api/v1/me/ledger").json()["results"] == []
    assert APIClient().get("/api/v1/me/ledger").status_code == 401


def test_a_service_token_is_not_a_user(service_client: APIClient) -> None:
    assert service_client.get("/api/v1/me/ledger").status_code == 403


def _redis_url() -> str:
    from django.conf import settings

    return settings.REDIS_URL
