"""/metrics: every family read from PostgreSQL and Redis, exact for a known world."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
import redis
from django.test import Client
from prometheus_client.parser import text_string_to_metric_families

from jobs.runner import run_job
from ledger.bookkeeping import UserCredit, fund_account, open_funding_account, post_user_credits
from ledger.ingestion import ingest
from monitoring.metrics import consumer_backlog
from tests import events

NOW = "2026-11-20T10:00:30Z"
NOW_UNIX = dt.datetime(2026, 11, 20, 10, 0, 30, tzinfo=dt.UTC).timestamp()

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape() -> tuple[Samples, set[str]]:
    response = Client().get("/metrics")
    assert response.status_code == 200
    assert response["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    samples: Samples = {}
    families = set()
    for family in text_string_to_metric_families(response.content.decode()):
        families.add(family.name)
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples, families


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, frozenset(labels.items()))]


@pytest.fixture
def streams(settings: Any, redis_client: redis.Redis) -> Iterator[tuple[str, str]]:
    """This test's own inbound and payout streams, removed afterwards."""
    inbound, payouts = f"test.events.{uuid.uuid4().hex}", f"test.payouts.{uuid.uuid4().hex}"
    settings.EVENT_STREAM, settings.EVENT_CONSUMER_GROUP = inbound, "rewards"
    settings.PAYOUT_STREAM = payouts
    yield inbound, payouts
    redis_client.delete(inbound, payouts)


@pytest.mark.django_db
def test_metrics_report_ingestion_jobs_credits_quarantine_and_lag(
    monkeypatch: pytest.MonkeyPatch, redis_client: redis.Redis, streams: tuple[str, str]
) -> None:
    monkeypatch.setenv("FROZEN_NOW", NOW)
    inbound, _ = streams
    registrations = [events.registered(f"u_{n}") for n in (1, 2, 3)]
    invalid = events.registered("u_4", account_type="robot")
    report = ingest([json.dumps(e) for e in [*registrations, invalid]], source="stream")
    assert report.summary() == {"accepted": 3, "duplicate": 0, "rejected": 1}
    ingest([json.dumps(registrations[0])], source="rest")  # delivered twice: a duplicate

    account = open_funding_account(program="campaign:winter", asset="USDT")
    fund_account(account=account, amount=Decimal("100"), idempotency_key="top-up-1", by="ops")
    post_user_credits(
        [
            UserCredit("rebate:u_1", "campaign.coverage_rebate", account, "u_1", Decimal("10")),
            UserCredit("rebate:u_2", "campaign.coverage_rebate", account, "u_2", Decimal("5")),
        ]
    )
    run_job("publish_payouts", at=dt.datetime(2026, 11, 20, 10, 0, tzinfo=dt.UTC))

    # Five entries on the inbound stream: three delivered to the group, two of
    # them acknowledged: one pending, two not yet delivered.
    for n in range(5):
        redis_client.xadd(inbound, {"event": json.dumps(events.registered(f"s_{n}"))})
    redis_client.xgroup_create(inbound, "rewards", id="0")
    delivered: Any = redis_client.xreadgroup("rewards", "c1", {inbound: ">"}, count=3)
    redis_client.xack(inbound, "rewards", *[entry_id for entry_id, _ in delivered[0][1]][:2])

    samples, families = scrape()

    assert {
        "rewards_events_ingested",
        "rewards_events_duplicate",
        "rewards_events_rejected",
        "rewards_quarantine_open",
        "rewards_job_runs",
        "rewards_job_duration_seconds_max",
        "rewards_job_last_duration_seconds",
        "rewards_job_last_status",
        "rewards_job_last_success_timestamp_seconds",
        "rewards_credited",
        "rewards_funded",
        "rewards_funding_balance",
        "rewards_payout_oldest_unacked_age_seconds",
        "rewards_payout_unacked",
        "rewards_event_stream_length",
        "rewards_event_consumer_pending",
        "rewards_event_consumer_lag",
        "rewards_scrape_source_up",
    } <= families
    registered = {"type": "user.registered"}
    assert value(samples, "rewards_events_ingested_total", source="stream", **registered) == 3
    assert value(samples, "rewards_events_duplicate_total", source="rest", **registered) == 1
    assert (
        value(
            samples,
            "rewards_events_rejected_total",
            source="stream",
            reason="invalid",
            **registered,
        )
        == 1
    )
    assert [key for key in samples if key[0] == "rewards_events_ingested_total"] == [
        ("rewards_events_ingested_total", frozenset({("source", "stream"), *registered.items()}))
    ]
    assert value(samples, "rewards_quarantine_open", reason="invalid") == 1

    job = {"job": "publish_payouts"}
    assert value(samples, "rewards_job_runs", status="succeeded", **job) == 1
    for status in ("running", "failed", "skipped"):
        assert value(samples, "rewards_job_runs", status=status, **job) == 0
    assert value(samples, "rewards_job_runs", job="settle_referrals", status="succeeded") == 0
    # The clock is frozen: a run starts and ends at the same instant.
    assert value(samples, "rewards_job_duration_seconds_max", **job) == 0
    assert value(samples, "rewards_job_last_duration_seconds", **job) == 0
    assert value(samples, "rewards_job_last_status", status="succeeded", **job) == 1
    assert value(samples, "rewards_job_last_success_timestamp_seconds", **job) == NOW_UNIX
    assert ("rewards_job_last_status", frozenset({("job", "settle_referrals")})) not in samples

    winter = {"program": "campaign:winter", "asset": "USDT"}
    assert value(samples, "rewards_credited_total", **winter) == 15
    assert value(samples, "rewards_funded_total", **winter) == 100
    assert value(samples, "rewards_funding_balance", **winter) == 85
    # Published by the job, not yet acknowledged by the wallet, created "now".
    assert value(samples, "rewards_payout_oldest_unacked_age_seconds") == 0
    assert value(samples, "rewards_payout_unacked") == 2

    assert value(samples, "rewards_event_stream_length", stream=inbound) == 5
    assert value(samples, "rewards_event_consumer_pending", stream=inbound, group="rewards") == 1
    assert value(samples, "rewards_event_consumer_lag", stream=inbound, group="rewards") == 2
    assert value(samples, "rewards_scrape_source_up", source="database") == 1
    assert value(samples, "rewards_scrape_source_up", source="redis") == 1


@pytest.mark.django_db
def test_a_scrape_without_redis_still_reports_the_database(
    settings: Any, closed_port: int, streams: tuple[str, str]
) -> None:
    ingest([json.dumps(events.registered("u_1"))], source="file")
    settings.REDIS_URL = f"redis://127.0.0.1:{closed_port}/0"
    samples, families = scrape()
    assert value(samples, "rewards_scrape_source_up", source="database") == 1
    assert value(samples, "rewards_scrape_source_up", source="redis") == 0
    assert (
        value(samples, "rewards_events_ingested_total", source="file", type="user.registered") == 1
    )
    assert "rewards_event_consumer_lag" not in families


def test_lag_before_any_consumer_and_after_deleted_entries(
    redis_client: redis.Redis, streams: tuple[str, str]
) -> None:
    inbound, _ = streams
    assert consumer_backlog(redis_client, inbound, "rewards") == (0, 0, 0)
    ids = [redis_client.xadd(inbound, {"event": "{}"}) for _ in range(4)]
    # No consumer yet: the first one will read the stream from its start.
    assert consumer_backlog(redis_client, inbound, "rewards") == (4, 0, 4)
    redis_client.xgroup_create(inbound, "rewards", id="0")
    redis_client.xreadgroup("rewards", "c1", {inbound: ">"}, count=1)
    # A deleted entry leaves Redis unable to say the lag: it is counted instead.
    redis_client.xdel(inbound, ids[2])
    assert consumer_backlog(redis_client, inbound, "rewards") == (3, 1, 2)
