"""The Redis Stream door: consumer groups, ack after commit, reclaim, poison entries,
and outages of Redis and PostgreSQL waited out (real servers: a closed port is an
unreachable one)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import pytest
import redis
from django.conf import settings
from django.db import DataError, OperationalError, connection, connections
from django.test import Client

from ledger.models import ClosedOrder, Event, QuarantinedInput
from ledger.stream import ConsumerStats, EventStreamConsumer, publish_events
from monitoring.models import ConsumerHeartbeat, OutageCount
from monitoring.outages import Backoff, outage_of
from tests import events
from tests.databases import child_database_url

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
    env["DATABASE_URL"] = child_database_url()
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
    # The work was shared (the first process up may take every new event and
    # leave the others only the copies sent again).
    assert sum(int(s["accepted"]) + int(s["duplicate"]) > 0 for s in summaries) >= 2
    assert Event.objects.count() == 3000
    assert ClosedOrder.objects.count() == 1000
    assert {o.realized_pnl for o in ClosedOrder.objects.all()} == {Decimal("-4.5")}
    assert redis_client.xpending(stream_name, "g")["pending"] == 0


@pytest.mark.django_db
def test_consumer_stops_on_request(redis_client: redis.Redis, stream_name: str) -> None:
    stop = threading.Event()
    stop.set()
    consumer = _consumer(redis_client, stream_name, "c1")
    assert consumer.run(stop=stop).batches == 0
    assert settings.EVENT_STREAM  # the default stream name is configured


# --- outages and poison entries ------------------------------------------------------------

FAST = Backoff(first=0.02, cap=0.1)


@pytest.fixture
def closed_port() -> int:
    """A local TCP port nothing listens on: a server that is down."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _until(condition: Any, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "the condition was not met in time"
        time.sleep(0.01)


def _in_thread(consumer: EventStreamConsumer, **kw: Any) -> tuple[threading.Thread, list[Any]]:
    """Run the consumer in a thread of its own (its own database connection,
    closed when it ends); the second item gets its stats or its exception."""
    outcome: list[Any] = []

    def run() -> None:
        try:
            outcome.append(consumer.run(**kw))
        except BaseException as exc:  # handed to the test
            outcome.append(exc)
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    return thread, outcome


def test_backoff_doubles_with_jitter_up_to_its_cap() -> None:
    backoff = Backoff(first=0.5, cap=30.0)
    for attempt, (low, high) in {
        1: (0.25, 0.5),
        2: (0.5, 1.0),
        3: (1.0, 2.0),
        7: (15.0, 30.0),
        1000: (15.0, 30.0),
    }.items():
        delays = [backoff.delay(attempt) for _ in range(200)]
        assert all(low <= d <= high for d in delays)
        assert len(set(delays)) > 150  # jittered: processes coming back do not line up


@pytest.mark.django_db(transaction=True)
def test_an_unreachable_redis_is_waited_for_and_the_consumer_stops_when_asked(
    closed_port: int, stream_name: str
) -> None:
    client = redis.Redis.from_url(f"redis://127.0.0.1:{closed_port}/0")
    consumer = _consumer(client, stream_name, "c-wait", backoff=FAST)
    stop = threading.Event()
    thread, outcome = _in_thread(consumer, stop=stop)
    _until(lambda: consumer.stats.retries >= 3)
    # It says so while it waits: readyz names it waiting for Redis.
    _until(lambda: _readyz_consumer("c-wait").get("retries", 0) >= 3)
    waiting = _readyz_consumer("c-wait")
    assert (waiting["state"], waiting["waiting_for"]) == ("waiting", "redis")
    assert waiting["reason"] == (
        f"ConnectionError: Error 111 connecting to 127.0.0.1:{closed_port}. Connection refused."
    )
    stop.set()
    thread.join(timeout=5)
    assert not thread.is_alive()
    [stats] = outcome
    assert isinstance(stats, ConsumerStats)
    assert (stats.batches, stats.outages) == (0, 0)
    # Every retry counted where /metrics reads it, and the process said it stopped.
    assert OutageCount.objects.get(component="consumer", dependency="redis").count == stats.retries
    assert ConsumerHeartbeat.objects.get(name="c-wait").state == "stopped"
    assert Client().get("/readyz").json()["consumers"] == {"status": "none", "members": {}}


def _readyz_consumer(name: str) -> dict[str, Any]:
    members = Client().get("/readyz").json()["consumers"]["members"]
    return dict(members.get(name, {}))


@pytest.mark.django_db(transaction=True)
def test_a_database_outage_retries_the_same_batch_and_counts_no_delivery(
    redis_client: redis.Redis, stream_name: str, closed_port: int
) -> None:
    batch = [events.fill("u_1", order_id=f"db{i}") for i in range(30)]
    publish_events(redis_client, stream_name, [json.dumps(e) for e in batch])
    db = connections["default"].settings_dict
    connections.close_all()
    host, port = db["HOST"], db["PORT"]
    # PostgreSQL refuses every connection: the consumer's are made to a closed port.
    db["HOST"], db["PORT"] = "127.0.0.1", str(closed_port)
    consumer = _consumer(redis_client, stream_name, "c-db", backoff=FAST)
    try:
        thread, outcome = _in_thread(consumer, idle_exit=True)
        _until(lambda: consumer.stats.retries >= 3)
        pending = redis_client.xpending_range(stream_name, "g", min="-", max="+", count=100)
        # Read once and held: waiting is not a delivery, so nothing nears quarantine.
        assert [p["times_delivered"] for p in pending] == [1] * 30
    finally:
        db["HOST"], db["PORT"] = host, port
    thread.join(timeout=30)
    [stats] = outcome
    assert isinstance(stats, ConsumerStats)
    assert (stats.accepted, stats.rejected, stats.quarantined_unprocessable) == (30, 0, 0)
    assert (stats.batches, stats.outages) == (1, 1)
    assert Event.objects.count() == 30
    assert not QuarantinedInput.objects.exists()
    assert redis_client.xpending(stream_name, "g")["pending"] == 0
    counted = OutageCount.objects.get(component="consumer", dependency="database")
    assert counted.count == stats.retries >= 3


def test_what_counts_as_an_outage_of_a_dependency(closed_port: int) -> None:
    with pytest.raises(redis.RedisError) as refused:
        redis.Redis(port=closed_port).ping()
    assert outage_of(refused.value) == "redis"
    real = redis.Redis.from_url(settings.REDIS_URL)
    real.set("test:wrongtype", "1")
    with pytest.raises(redis.ResponseError) as wrong_type:
        real.lpush("test:wrongtype", "x")  # a bug, not an outage
    real.delete("test:wrongtype")
    assert outage_of(wrong_type.value) is None
    with pytest.raises(psycopg.OperationalError) as no_server:
        psycopg.connect(host="127.0.0.1", port=closed_port, dbname="x", connect_timeout=2)
    assert outage_of(no_server.value) == "database"


@pytest.mark.django_db(transaction=True)
def test_terminated_sessions_and_timeouts_are_told_apart(connect_as: Any) -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        (pid,) = cursor.fetchone()
    # A session of the same role may end it, as an operator or a failover would.
    connect_as("app").execute("SELECT pg_terminate_backend(%s)", [pid])
    with pytest.raises(OperationalError) as terminated, connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    assert outage_of(terminated.value) == "database"  # 57P01
    connection.close()
    with pytest.raises(OperationalError) as timed_out, connection.cursor() as cursor:
        # The statement's own doing: retrying it would time out again.
        cursor.execute("SET statement_timeout = '10ms'; SELECT pg_sleep(1)")
    assert outage_of(timed_out.value) is None  # 57014
    with pytest.raises(DataError) as bad_value, connection.cursor() as cursor:
        cursor.execute("SELECT 'x'::numeric")
    assert outage_of(bad_value.value) is None


def _failing_on(marker: str, real: Any) -> Any:
    """``real`` but raising (as a bug would) for any batch holding ``marker``."""

    def call(self: Any, raws: list[Any], *args: Any, **kw: Any) -> Any:
        if any(marker.encode() in raw for raw in raws if isinstance(raw, bytes)):
            raise ValueError(f"cannot handle {marker}")
        return real(self, raws, *args, **kw)

    return call


@pytest.mark.django_db(transaction=True)
def test_an_entry_failing_alone_is_quarantined_at_its_first_failure(
    redis_client: redis.Redis, stream_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    batch = [events.fill("u_1", order_id=f"p{i}") for i in range(5)]
    batch[2] = events.fill("u_1", order_id="POISON")
    publish_events(redis_client, stream_name, [json.dumps(e) for e in batch])
    monkeypatch.setattr(
        EventStreamConsumer, "_ingest", _failing_on("POISON", EventStreamConsumer._ingest)
    )
    stats = _consumer(redis_client, stream_name, "c1").run(idle_exit=True)
    assert (stats.accepted, stats.quarantined_unprocessable, stats.retries) == (4, 1, 0)
    entry = QuarantinedInput.objects.get()
    assert (entry.reason, entry.event_id) == ("unprocessable", batch[2]["event_id"])
    assert entry.errors == [
        {"field": "(entry)", "message": "failed alone: ValueError: cannot handle POISON"}
    ]
    assert Event.objects.count() == 4
    assert redis_client.xpending(stream_name, "g")["pending"] == 0


@pytest.mark.django_db(transaction=True)
def test_an_entry_that_cannot_even_be_quarantined_is_left_pending_and_the_rest_goes_on(
    redis_client: redis.Redis, stream_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    batch = [events.fill("u_1", order_id=f"q{i}") for i in range(4)]
    batch[1] = events.fill("u_1", order_id="POISON")
    publish_events(redis_client, stream_name, [json.dumps(e) for e in batch])
    monkeypatch.setattr(
        EventStreamConsumer, "_ingest", _failing_on("POISON", EventStreamConsumer._ingest)
    )

    def refuse(raw: Any, **kw: Any) -> None:
        raise ValueError("the quarantine refuses it too")

    monkeypatch.setattr("ledger.stream.quarantine_unprocessable", refuse)
    consumer = _consumer(redis_client, stream_name, "c1", reclaim_idle_ms=0)
    stats = consumer.run(idle_exit=True)  # returns: the parked entry is not retried at once
    assert (stats.accepted, stats.quarantined_unprocessable, stats.parked) == (3, 0, 1)
    assert Event.objects.count() == 3
    [pending] = redis_client.xpending_range(stream_name, "g", min="-", max="+", count=10)
    assert pending["consumer"] == b"c1"
    assert list(consumer.parked) == [pending["message_id"]]
