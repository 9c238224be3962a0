"""API rate limits: per exchange user, stricter for spins, apart for services; open
when Redis does not answer (a closed port, a server that never answers)."""

from __future__ import annotations

import logging
import socket
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from django.test import Client
from prometheus_client.parser import text_string_to_metric_families
from rest_framework.test import APIClient

from ledger.models import Event
from monitoring import outages, throttling
from monitoring.throttling import parse_rate
from tests import events
from tests.monitoring.clients import user_client

# The windows are fixed minutes of the one clock: at hh:mm:30 the next one opens in 30 s.
NOW = "2026-11-20T10:00:30Z"
THROTTLED = {
    "error": {
        "code": "throttled",
        "message": "Request was throttled. Expected available in 30 seconds.",
    }
}


@pytest.fixture
def rates(settings: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("FROZEN_NOW", NOW)

    def set_rates(**rates: str) -> None:
        settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": rates}

    return set_rates


def fresh_user() -> APIClient:
    # Counters live in Redis for their window: a user id of this test's own
    # keeps a rerun within the minute from finding this run's counts.
    return user_client(f"u_{uuid.uuid4().hex[:12]}")


@pytest.mark.django_db
def test_a_user_past_the_user_rate_gets_429_in_the_error_shape(rates: Any) -> None:
    rates(user="3/min")
    client = fresh_user()
    answers = [client.get("/api/v1/campaigns") for _ in range(4)]
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    assert answers[3].json() == THROTTLED
    assert answers[3]["Retry-After"] == "30"
    # Another user has a budget of their own.
    assert fresh_user().get("/api/v1/campaigns").status_code == 200


@pytest.mark.django_db
def test_spins_have_a_stricter_scope_of_their_own(rates: Any) -> None:
    rates(user="100/min", spin="2/min")
    client = fresh_user()
    spins = [
        client.post("/api/v1/campaigns/no-such/spins", {"kind": "daily"}, format="json")
        for _ in range(3)
    ]
    # The rate is checked before the view: refused spins count too.
    assert [s.status_code for s in spins] == [404, 404, 429]
    assert spins[2].json() == THROTTLED
    # The rest of the API is still open to this user.
    assert client.get("/api/v1/campaigns").status_code == 200


@pytest.mark.django_db
def test_service_tokens_are_not_held_to_the_user_rate(
    rates: Any, service_client: APIClient
) -> None:
    rates(user="1/min", service="3/min")
    answers = [service_client.get("/api/v1/payouts").status_code for _ in range(4)]
    assert answers == [200, 200, 200, 429]


@pytest.mark.django_db
def test_a_rate_set_off_lifts_the_limit(rates: Any) -> None:
    rates(spin="1/min")  # no "user" rate at all
    client = fresh_user()
    assert {client.get("/api/v1/campaigns").status_code for _ in range(5)} == {200}


def test_rates_read_as_requests_per_period() -> None:
    assert parse_rate("300/min") == (300, 60)
    assert parse_rate("5/s") == (5, 1)
    assert parse_rate("1000/hour") == (1000, 3600)
    assert parse_rate("10000/day") == (10000, 86400)


# --- Redis unreachable: the limits fail open -----------------------------------------------


class Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@pytest.fixture
def fail_open(monkeypatch: pytest.MonkeyPatch) -> Iterator[Lines]:
    """A fresh view of Redis in this process, and the rate limiter's log lines."""
    monkeypatch.setattr(throttling, "_fail_open", throttling._FailOpen())
    # Counts another test left unwritten in this process are not this test's.
    monkeypatch.setattr(outages, "_pending", Counter())
    lines = Lines()
    logger = logging.getLogger("monitoring.throttling")
    logger.addHandler(lines)
    yield lines
    logger.removeHandler(lines)


def redis_at(settings: Any, url: str) -> None:
    settings.CACHES = {
        "default": {**settings.CACHES["default"], "LOCATION": url},
    }


def fail_open_total() -> float:
    text = Client().get("/metrics").content.decode()
    [value] = [
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "rewards_rate_limit_fail_open_total"
    ]
    return value


@pytest.mark.django_db
def test_an_unreachable_redis_lets_requests_through_counted_and_logged_once(
    rates: Any, settings: Any, closed_port: int, fail_open: Lines, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Every check asks Redis (a hanging Redis is left alone for a while: below).
    monkeypatch.setattr(throttling, "SKIP_AFTER_FAILURE_SECONDS", 0.0)
    rates(user="1/min")
    client = fresh_user()
    redis_at(settings, f"redis://127.0.0.1:{closed_port}/0")
    started = time.monotonic()
    answers = [client.get("/api/v1/campaigns").status_code for _ in range(5)]
    # Over the limit five times, served five times: Redis cannot count them.
    assert answers == [200] * 5
    assert time.monotonic() - started < 2  # a refused connection costs nothing
    assert fail_open_total() == 5
    assert fail_open.messages == [
        "rate limits not enforced: Redis did not answer (ConnectionError: Error 111"
        f" connecting to 127.0.0.1:{closed_port}. Connection refused.); requests are let"
        " through until it does"
    ]
    # Redis is back: the limit holds again, and the end of the outage is logged.
    redis_at(settings, settings.REDIS_URL)
    assert [client.get("/api/v1/campaigns").status_code for _ in range(2)] == [200, 429]
    assert fail_open_total() == 5
    assert len(fail_open.messages) == 2
    assert fail_open.messages[1].startswith("rate limits enforced again: Redis answers after ")
    assert fail_open.messages[1].endswith(" s; 5 checks were let through meanwhile")


@pytest.mark.django_db
def test_services_post_events_while_redis_is_unreachable(
    rates: Any, settings: Any, closed_port: int, fail_open: Lines, service_client: APIClient
) -> None:
    rates(service="1/min")
    redis_at(settings, f"redis://127.0.0.1:{closed_port}/0")
    batch = [events.fill("u_1", order_id=f"o{n}") for n in range(3)]
    answers = [
        service_client.post("/api/v1/events", {"events": [event]}, format="json").status_code
        for event in batch
    ]
    assert answers == [200, 200, 200]
    assert Event.objects.count() == 3
    assert fail_open_total() == 3


@pytest.mark.django_db
def test_a_hanging_redis_costs_one_request_its_timeout_then_none(
    rates: Any, settings: Any, fail_open: Lines
) -> None:
    rates(user="100/min")
    client = fresh_user()
    # A server that accepts connections and never answers.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        redis_at(settings, f"redis://127.0.0.1:{silent.getsockname()[1]}/0")
        started = time.monotonic()
        assert client.get("/api/v1/campaigns").status_code == 200
        first = time.monotonic() - started
        started = time.monotonic()
        assert {client.get("/api/v1/campaigns").status_code for _ in range(10)} == {200}
        then = time.monotonic() - started
    timeout = settings.CACHES["default"]["OPTIONS"]["socket_timeout"]
    assert timeout <= first < timeout + 1  # it waited its socket timeout, once
    assert then < timeout  # the next ten did not ask Redis at all
    assert fail_open_total() == 11
    assert [m.split(" (")[0] for m in fail_open.messages] == [
        "rate limits not enforced: Redis did not answer"
    ]
    assert "TimeoutError: Timeout reading from socket" in fail_open.messages[0]
