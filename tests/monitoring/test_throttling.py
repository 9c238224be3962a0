"""API rate limits: per exchange user, stricter for spins, apart for services."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from rest_framework.test import APIClient

from monitoring.throttling import parse_rate
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
