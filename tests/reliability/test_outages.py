"""Outages of Redis and PostgreSQL are survived, not fatal, with real servers and
real processes.

- REST ingestion keeps answering 2xx from PostgreSQL while Redis is stopped;
  the rate limits fail open and every check let through is counted.
- A ``manage.py consume_events`` process keeps running while its Redis is
  stopped and started again, and while its database session is terminated in
  the middle of a batch and PostgreSQL refuses connections; it resumes, and
  every event pushed is stored exactly once.
- A Celery worker and Beat keep running through both outages and the
  scheduled job runs again after each; a job whose database goes away is
  retried for the same key (those two below, unmarked, run in-process).

The machine's servers are never stopped: Redis is a private server
(``servers.PrivateRedis``), PostgreSQL is reached through a proxy that is
stopped instead (``servers.TcpProxy``). Each test prints its figures
(docs/reliability.md, "Outages").
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import IO, Any

import psycopg
import pytest
import redis
from celery.exceptions import Retry
from django.db import connection, connections
from django.test import Client
from django_celery_beat.models import IntervalSchedule, PeriodicTask
from rest_framework.test import APIClient

from access.services import create_service_token
from jobs import tasks
from jobs.models import JobRun
from jobs.registry import Daily, job
from ledger import event_store
from ledger.stream import publish_events
from monitoring import outages, throttling
from monitoring.models import OutageCount
from tests import events
from tests.reliability.servers import PrivateRedis, TcpProxy

ROOT = Path(__file__).resolve().parents[2]
STREAM = "outage.events"


# --- helpers ---------------------------------------------------------------------------


def until(condition: Callable[[], Any], timeout: float = 60.0, what: str = "") -> float:
    """Poll until ``condition()``; the seconds it took."""
    started = time.monotonic()
    while not condition():
        assert time.monotonic() - started < timeout, f"not in {timeout} s: {what}"
        time.sleep(0.02)
    return time.monotonic() - started


def figures(request: pytest.FixtureRequest, line: str) -> None:
    """A line of figures in the test session's output (past the output capture)."""
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if reporter is not None and capture is not None:
        with capture.global_and_fixture_disabled():
            reporter.write_line(f"\n[outage figures] {line}")


def database_url(host: str | None = None, port: int | None = None) -> str:
    """The test database as the application role, directly or through a proxy."""
    db = connections["default"].settings_dict
    user = db["USER"] + (f":{db['PASSWORD']}" if db["PASSWORD"] else "")
    if host is None and str(db["HOST"]).startswith("/"):
        return f"postgresql://{user}@/{db['NAME']}?host={db['HOST']}"
    host = host or db["HOST"] or "127.0.0.1"
    port_part = f":{port or db['PORT']}" if (port or db["PORT"]) else ""
    return f"postgresql://{user}@{host}{port_part}/{db['NAME']}"


def upstream() -> tuple[str, int] | str:
    db = connections["default"].settings_dict
    port = int(db["PORT"] or 5432)
    if str(db["HOST"]).startswith("/"):
        return f"{db['HOST']}/.s.PGSQL.{port}"
    return (str(db["HOST"] or "127.0.0.1"), port)


def child_env(database: str, redis_url: str) -> dict[str, str]:
    env = {
        **os.environ,
        "DATABASE_URL": database,
        "REDIS_URL": redis_url,
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DJANGO_DEBUG": "false",
        "LOG_LEVEL": "INFO",
    }
    for name in ("FROZEN_NOW", "TIME_LAPSE", "CELERY_BROKER_URL", "DATABASE_OWNER_URL"):
        env.pop(name, None)
    return env


class Process:
    """A child process with its output in files (a chatty child never blocks)."""

    def __init__(self, argv: list[str], env: dict[str, str]) -> None:
        self.out: IO[bytes] = tempfile.TemporaryFile()  # noqa: SIM115 - closed by finish
        self.err: IO[bytes] = tempfile.TemporaryFile()  # noqa: SIM115
        self.proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=self.out, stderr=self.err)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def finish(self, timeout: float = 30) -> tuple[int, str, str]:
        """SIGTERM, wait; (exit code, stdout, stderr)."""
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait()
        texts = []
        for stream in (self.out, self.err):
            stream.seek(0)
            texts.append(stream.read().decode(errors="replace"))
            stream.close()
        return code, texts[0], texts[1]


def consumer(name: str, database: str, redis_url: str) -> Process:
    return Process(
        [
            sys.executable,
            "manage.py",
            "consume_events",
            "--stream",
            STREAM,
            "--group",
            "g",
            "--name",
            name,
            "--batch",
            "250",
            "--block-ms",
            "200",
            "--retry-min-seconds",
            "0.2",
            "--retry-max-seconds",
            "2",
            "--no-progress",
        ],
        child_env(database, redis_url),
    )


def summary(stdout: str) -> dict[str, int]:
    return {k: int(v) for k, v in (kv.split("=") for kv in stdout.strip().splitlines()[-1].split())}


def stored() -> tuple[int, int]:
    """(rows, distinct event ids) in the event log."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*), count(DISTINCT event_id) FROM ledger_event")
        rows, distinct = cursor.fetchone()
    return int(rows), int(distinct)


def stored_at_least(n: int) -> bool:
    return stored()[0] >= n


def fills(prefix: str, n: int) -> list[str]:
    return [json.dumps(events.fill(f"u_{i % 40}", order_id=f"{prefix}{i}")) for i in range(n)]


def counted(component: str, dependency: str) -> int:
    row = OutageCount.objects.filter(component=component, dependency=dependency).first()
    return row.count if row else 0


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    server = PrivateRedis(tmp_path)
    server.start()
    yield server
    server.close()


@pytest.fixture
def proxy() -> Iterator[TcpProxy]:
    relay = TcpProxy(upstream())
    relay.start()
    yield relay
    relay.stop()


# --- REST ingestion while Redis is down --------------------------------------------------


@pytest.mark.heavy
@pytest.mark.django_db(transaction=True)
def test_rest_ingestion_answers_from_postgresql_while_redis_is_stopped(
    request: pytest.FixtureRequest,
    private_redis: PrivateRedis,
    settings: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings.CACHES = {"default": {**settings.CACHES["default"], "LOCATION": private_redis.url}}
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {"service": "100000/min"},
    }
    monkeypatch.setattr(throttling, "_fail_open", throttling._FailOpen())
    monkeypatch.setattr(outages, "_pending", Counter())
    _, token = create_service_token(name="outage-rest")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    batches = iter(range(10**6))
    took: dict[str, list[float]] = {"up": [], "down": []}

    def post(state: str) -> None:
        n = next(batches)
        body = {"events": [json.loads(e) for e in fills(f"rest{n}-", 20)]}
        started = time.monotonic()
        answer = client.post("/api/v1/events", body, format="json")
        took[state].append(time.monotonic() - started)
        assert answer.status_code == 200, answer.content
        assert {o["status"] for o in answer.json()["results"]} == {"accepted"}

    for _ in range(5):
        post("up")
    keys = private_redis.client().keys("rewards:*throttle:service:*")
    assert len(keys) == 1  # the limit was counted in Redis
    private_redis.stop()
    down_started = time.monotonic()
    during = 0
    while time.monotonic() - down_started < 3:
        post("down")
        during += 1
    private_redis.start()
    down_for = time.monotonic() - down_started
    time.sleep(throttling.SKIP_AFTER_FAILURE_SECONDS)
    for _ in range(5):
        post("up")
    rows, distinct = stored()
    requests = 10 + during
    assert (rows, distinct) == (requests * 20, requests * 20)
    outages.flush()
    # Every request made while Redis was down was let through, and only those.
    assert counted("rate_limit", "redis") == during
    # Counting again (a minute may have begun meanwhile: a new window, a new key).
    counters = private_redis.client().keys("rewards:*throttle:service:*")
    assert sum(int(private_redis.client().get(key) or 0) for key in counters) == 10
    figures(
        request,
        f"REST while Redis was stopped {down_for:.1f} s: {during} requests of 20 events, all"
        f" 200 in a median {statistics.median(took['down']) * 1000:.1f} ms, the slowest"
        f" {max(took['down']) * 1000:.1f} ms (Redis up: median"
        f" {statistics.median(took['up']) * 1000:.1f} ms); fail-open counted {during}; events"
        f" {rows} rows, {distinct} distinct, lost 0",
    )


# --- the stream consumer -------------------------------------------------------------------


def _heartbeat(name: str) -> dict[str, Any]:
    members = Client().get("/readyz").json()["consumers"]["members"]
    return dict(members.get(name, {}))


@pytest.mark.heavy
@pytest.mark.django_db(transaction=True)
def test_the_consumer_survives_redis_stopped_and_started_again(
    request: pytest.FixtureRequest, private_redis: PrivateRedis
) -> None:
    pushed = fills("r", 3000)
    client = private_redis.client()
    publish_events(client, STREAM, pushed[:2000])
    process = consumer("c-redis", database_url(), private_redis.url)
    try:
        until(lambda: stored()[0] >= 500, what="the consumer started")
        private_redis.stop()
        stopped_at = time.monotonic()
        at_stop = stored()[0]
        until(lambda: _heartbeat("c-redis").get("waiting_for") == "redis", 30, "waiting shown")
        time.sleep(max(0.0, 5 - (time.monotonic() - stopped_at)))
        assert process.alive()
        private_redis.start()
        down_for = time.monotonic() - stopped_at
        # More events while it catches up, some of them sent twice.
        publish_events(client, STREAM, pushed[2000:] + pushed[2500:2600])
        resumed = until(lambda: stored()[0] > at_stop, 30, "resumed after the restart")
        until(lambda: stored()[0] >= 3000, 60, "every event stored")
        until(lambda: client.xpending(STREAM, "g")["pending"] == 0, 30, "all acknowledged")
        assert process.alive()
        assert _heartbeat("c-redis")["state"] == "consuming"
    finally:
        code, out, err = process.finish()
    assert code == 0, err[-3000:]
    assert stored() == (3000, 3000)
    tally = summary(out)
    assert tally["accepted"] == 3000 and tally["duplicate"] == 100
    assert tally["outages"] >= 1 and tally["retries"] >= 1 and tally["unprocessable"] == 0
    assert counted("consumer", "redis") == tally["retries"]
    assert "redis did not answer" in err
    figures(
        request,
        f"consumer, Redis stopped {down_for:.1f} s ({at_stop} of 2000 events stored when it"
        f" stopped): {tally['retries']} retries, {tally['outages']} waits, first new event"
        f" stored {resumed:.1f} s after the restart; 3100 pushed (100 twice), 3000 rows,"
        f" 3000 distinct, lost 0, exit {code} on SIGTERM",
    )


def _waiting_for_the_log(conn: psycopg.Connection[Any], name: str) -> int | None:
    """The consumer's backend while its batch's transaction waits for the event
    log's append lock (which the test holds), else None."""
    row = conn.execute(
        "SELECT pid FROM pg_stat_activity WHERE application_name = %s"
        " AND xact_start IS NOT NULL AND wait_event_type = 'Lock'",
        [f"consume_events {name}"],
    ).fetchone()
    return int(row[0]) if row else None


@pytest.mark.heavy
@pytest.mark.django_db(transaction=True)
def test_the_consumer_survives_terminated_sessions_and_a_refusing_database(
    request: pytest.FixtureRequest,
    proxy: TcpProxy,
    connect_as: Callable[[str], psycopg.Connection[Any]],
) -> None:
    from django.conf import settings

    # The machine's Redis (a stream of this test's own): only PostgreSQL goes away here.
    redis_client = redis.Redis.from_url(settings.REDIS_URL)
    redis_client.delete(STREAM)
    pushed = fills("d", 6000)
    publish_events(redis_client, STREAM, pushed[:3000])
    process = consumer("c-db", database_url("127.0.0.1", proxy.port), settings.REDIS_URL)
    watcher = connect_as("app")
    watcher.autocommit = True
    terminated = 0
    try:
        until(lambda: stored()[0] >= 3000, 60, "the first events stored")
        # Its session ended by the server in the middle of a batch, three times:
        # the test holds the event log's append lock, the consumer's next batch
        # opens its transaction and waits for it, and is terminated there.
        for n in range(3):
            watcher.execute("SELECT pg_advisory_lock(%s)", [event_store.APPEND_LOCK_KEY])
            chunk = pushed[3000 + 500 * n : 3500 + 500 * n]
            publish_events(redis_client, STREAM, chunk)
            until(lambda: _waiting_for_the_log(watcher, "c-db") is not None, 30, "a batch")
            pid = _waiting_for_the_log(watcher, "c-db")
            row = watcher.execute("SELECT pg_terminate_backend(%s)", [pid]).fetchone()
            watcher.execute("SELECT pg_advisory_unlock(%s)", [event_store.APPEND_LOCK_KEY])
            terminated += row == (True,)
            until(partial(stored_at_least, 3500 + 500 * n), 60, "the batch retried")
        published = 4500
        assert process.alive()
        # Then PostgreSQL is gone for 5 s: connections dropped, new ones refused,
        # while the rest of the events (and 200 sent again) arrive.
        at_stop = stored()[0]
        proxy.stop()
        stopped_at = time.monotonic()
        publish_events(redis_client, STREAM, pushed[published:] + pushed[:200])
        time.sleep(5)
        assert process.alive()
        proxy.start()
        down_for = time.monotonic() - stopped_at
        resumed = until(lambda: stored()[0] > at_stop, 60, "resumed")
        until(lambda: stored()[0] >= 6000, 120, "every event stored")
        until(lambda: redis_client.xpending(STREAM, "g")["pending"] == 0, 30, "all acknowledged")
        assert process.alive()
    finally:
        code, out, err = process.finish()
        redis_client.delete(STREAM)
    assert code == 0, err[-3000:]
    assert terminated == 3
    assert stored() == (6000, 6000)
    tally = summary(out)
    # A batch whose commit went through but whose answer was lost is retried
    # and found duplicate: accepted + duplicate may exceed what was pushed.
    assert tally["accepted"] <= 6000 and tally["unprocessable"] == 0
    assert tally["accepted"] + tally["duplicate"] >= 6200
    # One wait per terminated batch, one for the outage.
    assert tally["outages"] == 4 and tally["retries"] >= 4
    assert err.count("terminating connection due to administrator command); retry 1 ") == 3
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM ledger_quarantinedinput")
        assert cursor.fetchone() == (0,)  # an outage is never the entries' fault
    assert counted("consumer", "database") == tally["retries"]
    assert err.count("consumer c-db: database did not answer") == tally["retries"]
    figures(
        request,
        f"consumer, {terminated} sessions terminated mid-batch then PostgreSQL refusing"
        f" {down_for:.1f} s: {tally['retries']} retries, {tally['outages']} waits, first"
        f" event stored {resumed:.1f} s after it answered again; 6200 pushed (200 twice), 6000"
        f" rows, 6000 distinct, {6000 - tally['accepted']} committed before their connection"
        f" was cut and found duplicate on retry, quarantined 0, lost 0, exit {code} on SIGTERM",
    )


# --- scheduled jobs --------------------------------------------------------------------------

lost_sessions: list[str] = []


@job(
    "test_outage_day",
    key="day",
    schedule=Daily(hour=3),
    description="test: loses its database session on its first call",
)
def outage_day(*, day: dt.date) -> dict[str, object]:
    lost_sessions.append(day.isoformat())
    if len(lost_sessions) == 1 or os.environ.get("OUTAGE_EVERY_CALL"):
        # The clock passes midnight meanwhile: the retry must still run this day.
        os.environ["FROZEN_NOW"] = "2026-11-25T00:00:05Z"
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_terminate_backend(pg_backend_pid())")
    return {"day": day.isoformat()}


@pytest.mark.django_db(transaction=True)
def test_a_job_whose_database_goes_away_is_retried_for_the_same_day(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    lost_sessions.clear()
    monkeypatch.setenv("FROZEN_NOW", "2026-11-24T03:00:00Z")
    result = tasks.run_scheduled_job.apply(args=("test_outage_day",))
    assert lost_sessions == ["2026-11-23", "2026-11-23"]
    assert result.get()["status"] == "succeeded"
    first, second = JobRun.objects.filter(job="test_outage_day").order_by("id")
    assert (first.key, first.status) == ("2026-11-23", "abandoned")
    assert "its database session" in first.error and "has ended" in first.error
    assert (second.key, second.status, second.trigger) == ("2026-11-23", "succeeded", "beat")
    outages.flush()
    assert counted("job:test_outage_day", "database") == 1


@pytest.mark.django_db(transaction=True)
def test_a_job_whose_database_stays_away_is_given_up_naming_the_rerun(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    lost_sessions.clear()
    monkeypatch.setenv("FROZEN_NOW", "2026-11-24T03:00:00Z")
    monkeypatch.setenv("OUTAGE_EVERY_CALL", "1")
    monkeypatch.setattr(tasks, "MAX_RETRIES", 2)
    lines: list[str] = []

    class Lines(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(record.getMessage())

    handler = Lines(logging.ERROR)
    logging.getLogger("jobs.tasks").addHandler(handler)
    try:
        result = tasks.run_scheduled_job.apply(args=("test_outage_day",))
    finally:
        logging.getLogger("jobs.tasks").removeHandler(handler)
    assert result.state == "FAILURE" and not isinstance(result.result, Retry)
    assert lost_sessions == ["2026-11-23"] * 3
    [line] = lines
    assert line.startswith("job test_outage_day [2026-11-23] given up after 2 retries:")
    assert line.endswith("rerun it with: manage.py run_job test_outage_day --day 2026-11-23")
    outages.flush()
    assert counted("job:test_outage_day", "database") == 3


@pytest.mark.heavy
@pytest.mark.django_db(transaction=True)
def test_worker_and_beat_run_on_through_redis_and_database_outages(
    request: pytest.FixtureRequest, private_redis: PrivateRedis, proxy: TcpProxy
) -> None:
    # Beat fires one job, every second (the schedules migrate loaded are left out).
    PeriodicTask.objects.all().delete()
    every_second, _ = IntervalSchedule.objects.get_or_create(
        every=1, period=IntervalSchedule.SECONDS
    )
    PeriodicTask.objects.create(
        name="job:publish_payouts",
        task="jobs.run_scheduled_job",
        args=json.dumps(["publish_payouts"]),
        interval=every_second,
    )
    env = child_env(database_url("127.0.0.1", proxy.port), private_redis.url)
    celery = [sys.executable, "-m", "celery", "-A", "config"]
    worker = Process(
        [*celery, "worker", "--concurrency", "1", "--without-mingle", "--without-gossip"], env
    )
    beat = Process([*celery, "beat", "--max-interval", "1"], env)

    def runs() -> int:
        return JobRun.objects.filter(job="publish_payouts", status="succeeded").count()

    def more_runs_than(before: int) -> bool:
        return runs() > before

    try:
        until(lambda: runs() >= 2, 60, "runs before the outages")
        seen: dict[str, float] = {}
        for outage, (stop, start) in {
            "redis": (private_redis.stop, private_redis.start),
            "database": (proxy.stop, proxy.start),
        }.items():
            stop()
            time.sleep(6)
            assert worker.alive() and beat.alive(), outage
            start()
            seen[outage] = until(partial(more_runs_than, runs()), 90, f"after {outage}")
        time.sleep(2)
        assert worker.alive() and beat.alive()
    finally:
        worker_code, _, worker_err = worker.finish()
        beat_code, _, beat_err = beat.finish()
    assert (worker_code, beat_code) == (0, 0), (worker_err[-2000:], beat_err[-2000:])
    retried = counted("job:publish_payouts", "database")
    abandoned = JobRun.objects.filter(job="publish_payouts", status="abandoned").count()
    figures(
        request,
        f"worker and beat, Redis stopped 6 s then PostgreSQL refusing 6 s: both alive, exit 0;"
        f" the job ran again {seen['redis']:.1f} s and {seen['database']:.1f} s after each came"
        f" back; {retried} job retries counted, {abandoned} runs recorded abandoned",
    )
