"""Ingestion tallies: every outcome of every door counted once, in the batch's transaction."""

from __future__ import annotations

import json

import pytest
from django.db import transaction

from ledger.ingestion import ingest, quarantine_unprocessable, replay_quarantined
from ledger.models import QuarantinedInput
from monitoring.models import IngestCount
from tests import events


def tallies() -> dict[tuple[str, str, str, str], int]:
    return {
        (row.source, row.event_type, row.outcome, row.reason): row.count
        for row in IngestCount.objects.all()
    }


@pytest.mark.django_db
def test_each_outcome_is_counted_once_per_door_type_and_reason() -> None:
    fill = events.fill("u_1", event_id="fill-1")
    ingest([json.dumps(fill), json.dumps(fill), events.registered("u_1")], source="rest")
    ingest([json.dumps(fill)], source="stream")
    ingest([{**fill, "occurred_at": "2026-11-21T00:00:00Z"}], source="rest")  # same id, new body
    ingest(["{not json", {"type": "made.up", "event_id": "x"}], source="file")
    quarantine_unprocessable(b'{"type": "trade.filled"}', source="stream", message="kept failing")
    assert tallies() == {
        ("rest", "trade.filled", "accepted", ""): 1,
        ("rest", "user.registered", "accepted", ""): 1,
        ("rest", "trade.filled", "duplicate", ""): 1,
        ("stream", "trade.filled", "duplicate", ""): 1,
        ("rest", "trade.filled", "rejected", "conflict"): 1,
        # Types outside the contract are not kept as labels.
        ("file", "", "rejected", "invalid"): 2,
        ("stream", "trade.filled", "rejected", "unprocessable"): 1,
    }


@pytest.mark.django_db
def test_a_replay_counts_what_it_appends_and_no_second_rejection() -> None:
    bad = events.registered("u_9", account_type="robot")
    ingest([json.dumps(bad)], source="rest")
    entry = QuarantinedInput.objects.get()
    replay_quarantined(entry, by="ops")  # still invalid: stays open, counted once already
    replay_quarantined(
        entry, raw=json.dumps({**bad, "data": {**bad["data"], "account_type": "main"}}), by="ops"
    )
    assert tallies() == {
        ("rest", "user.registered", "rejected", "invalid"): 1,
        ("replay", "user.registered", "accepted", ""): 1,
    }


@pytest.mark.django_db
def test_a_batch_that_rolls_back_counts_nothing() -> None:
    with pytest.raises(RuntimeError), transaction.atomic():
        ingest([events.registered("u_1")], source="rest")
        raise RuntimeError("the request failed after ingesting")
    assert tallies() == {}
