"""The Redis Stream door: consumer groups, ack after commit, reclaim, poison entries."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import redis
from django.conf import settings
from django.db import connections

from ledger.models import ClosedOrder, Event, QuarantinedInput
from ledger.stream import EventStreamConsumer, publish_events
from tests import events

ROOT = Path(__file__).resolve().parents[2]


def _consumer(client: redis.Redis, stream: str, name: str, **kw: Any) -> EventStreamConsumer:
    return EventStreamConsumer(
        client=client, stream=stream, group="g", name=name, batch_size=50, block_ms=50, **kw
    )


@pytest.mark.django_db(transaction=True)
def test_entries_are_ingested_and_acknowledged(redis_client: redis.Redis, stream_name: str) -> None:
    batch = [events.fill("u_1", order_id=f"o{i}") for i in range(120)]
    publish_events(redis_client, stream_name, [json.dumps(e) for e in batch])
    stats = _consumer(redis_client, stream_name, "c1").run(idle_exit=True)
    assert (stats.accepted, stats.duplicate, stats.rejected) == (120, 0, 0)
    assert Event.objects.count() == 120
    assert redis_client.xpending(stream_name, "g")["pending"] == 0


@pytest.mark.django_db(transaction=True)
def test_a_poison_entry_goes_to_quarantine_and_does_not_block(
    redis_client: redis.Redis, stream_name: str
) -> None:
    good = events.fill("u_1", order_id="after-poison")
    redis_client.xadd(stream_name, {"event": "{not json"})
    redis_client.xadd(stream_name, {"something": "else"})
    publish_events(redis_client, stream_name, [json.dumps(good)])
    stats = _consumer(redis_client, stream_name, "c1").run(idle_exit=True)
    assert (stats.accepted, stats.rejected) == (1, 2)
    assert ClosedOrder.objects.filter(order_id="after-poison").exists()
    raws = sorted(q.raw for q in QuarantinedInput.objects.all())
    assert raws == ['{"something": "else"}', "{not json"]
    assert all(q.source == "stream" for q in QuarantinedInput.objects.all())
    assert redis_client.xpending(stream_name, "g")["pending"] == 0


@pytest.mark.django_db(transaction=True)
def test_entries_of_a_dead_consumer_are_reclaimed(
    redis_client: redis.Redis, stream_name: str
) -> None:
    batch = [events.fill("u_1", order_id=f"o{i}") for i in range(10)]
    publish_events(redis_client, stream_name, [json.dumps(e) for e in batch])
    dead = _consumer(redis_client, stream_name, "dead")
    dead.ensure_group()
    # The dead consumer read the entries and crashed before committing or acking.
    redis_client.xreadgroup("g", "dead", {stream_name: ">"}, count=10)
    assert redis_client.xpending(stream_name, "g")["pending"] == 10
    survivor = _consumer(redis_client, stream_name, "alive", reclaim_idle_ms=0)
    stats = survivor.run(idle_exit=True)
    assert stats.reclaimed == 10 and stats.accepted == 10
    assert redis_client.xpending(stream_name, "g")["pending"] == 0
    assert Event.objects.count() == 10


@pytest.mark.django_db(transaction=True)
def test_an_entry_redelivered_after_commit_has_one_effect(
    redis_client: redis.Redis, stream_name: str
) -> None:
    event = events.fill("u_1", order_id="once", realized_pnl="-7")
    publish_events(redis_client, stream_name, [json.dumps(event)] * 3)
    _consumer(redis_client, stream_name, "c1").run(idle_exit=True)
    assert ClosedOrder.objects.get(order_id="once").realized_pnl == -7
    assert Event.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_three_consumer_processes_give_each_event_exactly_one_effect(
    redis_client: redis.Redis, stream_name: str
) -> None:
    # 3,000 fills of 1,000 orders, every event sent twice, shared by three processes.
    batch = [
        events.fill(f"u_{i % 50}", order_id=f"o{i % 1000}", realized_pnl="-1.5")
        for i in range(3000)
    ]
    payload = [json.dumps(e) for e in batch]
    publish_events(redis_client, stream_name, payload + payload[::-1])
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings"}
    env["DATABASE_URL"] = _test_database_url()
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "manage.py",
                "consume_events",
                "--stream",
                stream_name,
                "--group",
                "g",
                "--name",
                f"p{n}",
                "--batch",
                "200",
                "--block-ms",
                "200",
                "--until-idle",
            ],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for n in range(3)
    ]
    outputs = [proc.communicate(timeout=180) for proc in procs]
    assert [proc.returncode for proc in procs] == [0, 0, 0], outputs
    summaries = [
        dict(kv.split("=") for kv in out.strip().splitlines()[-1].split()) for out, _ in outputs
    ]
    assert sum(int(s["accepted"]) for s in summaries) == 3000
    assert sum(int(s["duplicate"]) for s in summaries) == 3000
    assert sum(int(s["accepted"]) > 0 for s in summaries) >= 2  # the work was shared
    assert Event.objects.count() == 3000
    assert ClosedOrder.objects.count() == 1000
    assert {o.realized_pnl for o in ClosedOrder.objects.all()} == {Decimal("-4.5")}
    assert redis_client.xpending(stream_name, "g")["pending"] == 0


def _test_database_url() -> str:
    """The URL of the test database this process is using, for child processes."""
    db = connections["default"].settings_dict
    connections.close_all()
    host = db["HOST"]
    if host.startswith("/"):
        return f"postgresql://{db['USER']}@/{db['NAME']}?host={host}"
    port = f":{db['PORT']}" if db["PORT"] else ""
    return f"postgresql://{db['USER']}@{host}{port}/{db['NAME']}"


def test_consumer_stops_on_request(redis_client: redis.Redis, stream_name: str) -> None:
    stop = threading.Event()
    stop.set()
    consumer = _consumer(redis_client, stream_name, "c1")
    assert consumer.run(stop=stop).batches == 0
    assert settings.EVENT_STREAM  # the default stream name is configured
