"""Ops in the admin: correct and replay quarantined input, fund accounts, read balances."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from django.contrib.auth.models import Group, User
from django.test import Client

from ledger.bookkeeping import UserCredit, fund_account, open_funding_account, post_user_credits
from ledger.ingestion import ingest
from ledger.models import Account, Event, LedgerTransaction, QuarantinedInput
from tests import events

pytestmark = pytest.mark.django_db


def _staff(role: str) -> Client:
    user = User.objects.create_user(f"{role}-1", password="a-long-password-1", is_staff=True)
    user.groups.add(Group.objects.get(name=role))
    client = Client()
    client.force_login(user)
    return client


def test_an_operator_corrects_and_replays_a_rejected_event() -> None:
    bad = events.fill("u_5", order_id="o_5")
    bad["data"]["fee"] = 0.25
    ingest([bad], source="rest")
    entry = QuarantinedInput.objects.get()
    operator = _staff("operator")
    page = operator.get(f"/admin/ledger/quarantinedinput/{entry.pk}/change/")
    assert page.status_code == 200 and b"data.fee" in page.content

    bad["data"]["fee"] = "0.25"
    saved = operator.post(
        f"/admin/ledger/quarantinedinput/{entry.pk}/change/", {"raw": json.dumps(bad)}
    )
    assert saved.status_code == 302
    operator.post(
        "/admin/ledger/quarantinedinput/",
        {"action": "replay", "_selected_action": [entry.pk]},
    )
    entry.refresh_from_db()
    assert (entry.status, entry.replay_result, entry.resolved_by) == (
        "replayed",
        "accepted",
        "operator-1",
    )
    assert Event.objects.get(event_id=bad["event_id"]).data["fee"] == "0.25"


def test_finance_funds_an_account_once_and_an_operator_cannot() -> None:
    account = open_funding_account(program="campaign:winter", asset="USDT")
    url = f"/admin/ledger/account/{account.pk}/fund/"
    assert _staff("operator").get(url).status_code == 403

    finance = _staff("finance")
    form = finance.get(url)
    assert form.status_code == 200
    key = form.context["form"].initial["key"]
    body = {"amount": "2500.5", "note": "budget FIN-1", "key": key}
    assert finance.post(url, body).status_code == 302
    assert finance.post(url, body).status_code == 302  # a double submit
    account.refresh_from_db()
    assert account.balance == Decimal("2500.5")
    assert LedgerTransaction.objects.filter(kind="funding.top_up").count() == 1
    funded = Event.objects.get(type="ledger.account_funded")
    assert (funded.data["amount"], funded.data["by"], funded.data["note"]) == (
        "2500.5",
        "finance-1",
        "budget FIN-1",
    )
    # The staff action itself is in the log too, once (the double submit funded nothing).
    [action] = Event.objects.filter(type="ops.admin_action")
    assert (action.data["staff"], action.data["message"], action.data["object"]) == (
        "finance-1",
        "funded 2500.5",
        "ledger.account",
    )


def test_the_account_list_shows_user_balances_summed_from_postings() -> None:
    account = open_funding_account(program="campaign:winter", asset="USDT")
    fund_account(account=account, amount=Decimal("100"), idempotency_key="t", by="finance")
    post_user_credits(
        [
            UserCredit(f"r{n}", "campaign.daily_prize", account, "alice", Decimal(amount))
            for n, amount in enumerate(["12.5", "7.25"])
        ]
    )
    alice = Account.objects.get(user_id="alice")
    page = _staff("viewer").get("/admin/ledger/account/", {"q": "alice"})
    assert page.status_code == 200
    row = next(r for r in page.context["cl"].result_list if r.pk == alice.pk)
    assert row.posted_total == Decimal("19.75")


def test_quarantine_keeps_bytes_text_cannot_hold_and_shows_them_escaped() -> None:
    received = b'{"event_id": "e-1", "type": "trade.filled", "note": "a\x00b\xff"}'
    outcome = ingest([received], source="test").outcomes[0]
    assert outcome.status == "rejected"
    assert outcome.quarantine_id is not None
    entry = QuarantinedInput.objects.get(pk=outcome.quarantine_id)
    assert entry.received is not None and bytes(entry.received) == received
    assert entry.raw == '{"event_id": "e-1", "type": "trade.filled", "note": "a\\u0000b\\xff"}'
    page = _staff("operator").get(f"/admin/ledger/quarantinedinput/{entry.pk}/change/")
    assert page.status_code == 200
    assert "a\\u0000b\\xff" in page.content.decode()
