"""The one ingestion pipeline: accept, dedupe, conflict, quarantine, replay."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal

import pytest

from ledger.ingestion import discard_quarantined, ingest, replay_quarantined
from ledger.models import ClosedOrder, Event, ExchangeUser, QuarantinedInput, QuarantineStatus
from tests import events

pytestmark = pytest.mark.django_db


def test_accepts_new_events_in_one_global_order() -> None:
    batch = [events.registered("u_1"), events.fill("u_1"), events.holding("u_1")]
    report = ingest(batch, source="test")
    assert report.summary() == {"accepted": 3, "duplicate": 0, "rejected": 0}
    stored = list(Event.objects.order_by("position"))
    assert [e.event_id for e in stored] == [e["event_id"] for e in batch]
    assert stored[0].position < stored[1].position < stored[2].position
    assert all(e.received_at.tzinfo is not None for e in stored)


def test_same_id_same_body_is_a_harmless_duplicate() -> None:
    event = events.fill("u_1")
    ingest([event], source="test")
    again = ingest([dict(event), json.dumps(event)], source="test")
    assert again.summary() == {"accepted": 0, "duplicate": 2, "rejected": 0}
    assert Event.objects.count() == 1
    assert ClosedOrder.objects.get().realized_pnl == Decimal("-10")


def test_same_id_different_body_is_a_conflict_and_the_first_body_stands() -> None:
    first = events.fill("u_1", realized_pnl="-10", event_id="trd-conflict")
    second = events.fill("u_1", realized_pnl="-99", event_id="trd-conflict")
    ingest([first], source="test")
    report = ingest([second], source="test")
    outcome = report.outcomes[0]
    assert outcome.status == "rejected"
    assert outcome.errors[0].field == "event_id"
    assert "different body" in outcome.errors[0].message
    entry = QuarantinedInput.objects.get(pk=_quarantined(outcome))
    assert entry.reason == "conflict"
    assert json.loads(entry.raw)["data"]["realized_pnl"] == "-99"
    assert ClosedOrder.objects.get().realized_pnl == Decimal("-10")


def test_conflict_inside_one_batch_keeps_the_first() -> None:
    first = events.fill("u_1", realized_pnl="-10", event_id="trd-x")
    second = events.fill("u_1", realized_pnl="-20", event_id="trd-x")
    report = ingest([first, second], source="test")
    assert [o.status for o in report.outcomes] == ["accepted", "rejected"]
    assert ClosedOrder.objects.get().realized_pnl == Decimal("-10")


def test_rejected_input_is_kept_exactly_as_received() -> None:
    raw = '{"event_id": "bad-1", "type": "trade.filled", "occurred_at": "yesterday"}'
    report = ingest([raw, "not json at all"], source="file")
    assert report.summary() == {"accepted": 0, "duplicate": 0, "rejected": 2}
    first, second = QuarantinedInput.objects.order_by("id")
    assert first.raw == raw
    assert first.event_id == "bad-1" and first.event_type == "trade.filled"
    assert {e["field"] for e in first.errors} >= {"occurred_at", "user_id", "data"}
    assert second.raw == "not json at all"
    assert second.errors[0]["field"] == "(body)"
    assert first.source == "file" and first.status == QuarantineStatus.OPEN


def test_ops_correct_and_replay_a_quarantined_event() -> None:
    event = events.fill("u_7", order_id="o_7", realized_pnl="-3.5")
    event["data"]["fee"] = 0.5  # a float: refused
    entry = QuarantinedInput.objects.get(
        pk=_quarantined(ingest([event], source="test").outcomes[0])
    )
    assert entry.errors == [
        {
            "field": "data.fee",
            "message": "must be a decimal number as a JSON string, not a JSON number",
        }
    ]

    still_bad = replay_quarantined(entry, by="ops")
    assert still_bad.status == "rejected"
    entry.refresh_from_db()
    assert entry.status == QuarantineStatus.OPEN and entry.replay_result == "still rejected"

    event["data"]["fee"] = "0.5"
    outcome = replay_quarantined(entry, raw=json.dumps(event), by="ops")
    assert outcome.status == "accepted"
    entry.refresh_from_db()
    assert entry.status == QuarantineStatus.REPLAYED and entry.resolved_by == "ops"
    assert QuarantinedInput.objects.count() == 1
    order = ClosedOrder.objects.get(user_id="u_7")
    assert order.realized_pnl == Decimal("-3.5")
    with pytest.raises(ValueError, match="not open"):
        replay_quarantined(entry, by="ops")


def test_discarded_input_is_kept() -> None:
    entry = QuarantinedInput.objects.get(pk=_quarantined(ingest(["{}"], source="test").outcomes[0]))
    discard_quarantined(entry, by="ops", note="test garbage")
    entry.refresh_from_db()
    assert entry.status == QuarantineStatus.DISCARDED and entry.raw == "{}"


def test_closed_order_sums_closing_fills_and_takes_the_first_close() -> None:
    # Three closing fills of one order, delivered out of order, plus an opening fill.
    batch = [
        events.fill(
            "u_1",
            order_id="o_9",
            realized_pnl="40.25",
            notional="500",
            occurred_at="2026-11-20T10:00:03Z",
            event_id="f-c",
            origin="api",
        ),
        events.fill(
            "u_1",
            order_id="o_9",
            action="open",
            notional="900",
            occurred_at="2026-11-20T09:00:00Z",
            event_id="f-open",
        ),
        events.fill(
            "u_1",
            order_id="o_9",
            realized_pnl="-100.50",
            notional="300",
            occurred_at="2026-11-20T10:00:01Z",
            event_id="f-b",
            promo_funding=["bonus"],
        ),
        events.fill(
            "u_1",
            order_id="o_9",
            realized_pnl="-12",
            notional="200",
            occurred_at="2026-11-20T10:00:01Z",
            event_id="f-a",
            symbol="ETH_USDT",
        ),
    ]
    ingest(batch[:2], source="test")
    ingest(batch[2:], source="test")
    order = ClosedOrder.objects.get(user_id="u_1", order_id="o_9")
    # -100.50 - 12 + 40.25 = -72.25: a losing order, loss 72.25, fees excluded.
    assert order.realized_pnl == Decimal("-72.25")
    assert order.loss == Decimal("72.25")
    assert order.closing_notional == Decimal("1000")
    assert order.closing_fills == 3
    # Tie on time 10:00:01 -> the lower event_id "f-a" is first.
    assert order.first_close_event_id == "f-a"
    assert order.first_close_at == dt.datetime(2026, 11, 20, 10, 0, 1, tzinfo=dt.UTC)
    assert order.last_close_at == dt.datetime(2026, 11, 20, 10, 0, 3, tzinfo=dt.UTC)
    assert order.symbol == "ETH_USDT" and order.origin == "manual"
    assert order.promo_funding == ["bonus"]


def test_user_directory_keeps_the_earliest_registration() -> None:
    late = events.registered(
        "u_5", account_type="institutional", occurred_at="2026-11-21T00:00:00Z"
    )
    early = events.registered(
        "u_5", account_type="main", referral_code="ABC234", occurred_at="2026-11-20T00:00:00Z"
    )
    ingest([late], source="test")
    ingest([early], source="test")
    user = ExchangeUser.objects.get(user_id="u_5")
    assert (user.account_type, user.referral_code) == ("main", "ABC234")


def _quarantined(outcome: object) -> int:
    quarantine_id = getattr(outcome, "quarantine_id", None)
    assert quarantine_id is not None, "the rejected input was not quarantined"
    return int(quarantine_id)
