"""JSON log lines that name their request or job run; the request id round trip."""

from __future__ import annotations

import datetime as dt
import io
import json
import logging
import re
from collections.abc import Iterator

import pytest
from django.test import Client

from jobs.models import JobRun
from jobs.runner import run_job


@pytest.fixture
def log_lines() -> Iterator[io.StringIO]:
    """What the configured console handler (settings.LOGGING) writes, captured."""
    handler = next(
        h
        for h in logging.getLogger().handlers
        if isinstance(h, logging.StreamHandler) and type(h) is logging.StreamHandler
    )
    buffer = io.StringIO()
    previous = handler.setStream(buffer)
    yield buffer
    handler.setStream(previous)


def parsed(buffer: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in buffer.getvalue().splitlines()]


def test_the_callers_request_id_comes_back() -> None:
    response = Client().get("/healthz", headers={"X-Request-ID": "lb-7f3a.42"})
    assert response["X-Request-ID"] == "lb-7f3a.42"


@pytest.mark.parametrize("sent", [None, "", "two words", "x" * 129, "new\nline"])
def test_a_missing_or_unsafe_request_id_is_replaced_by_a_new_one(sent: str | None) -> None:
    headers = {} if sent is None else {"X-Request-ID": sent}
    first = Client().get("/healthz", headers=headers)["X-Request-ID"]
    second = Client().get("/healthz", headers=headers)["X-Request-ID"]
    assert re.fullmatch(r"[0-9a-f]{32}", first) and re.fullmatch(r"[0-9a-f]{32}", second)
    assert first != second


@pytest.mark.django_db
def test_log_lines_of_a_request_are_json_with_its_request_id(log_lines: io.StringIO) -> None:
    # Django logs every 4xx answer (django.request, WARNING): here a 401.
    response = Client().get("/api/v1/campaigns", headers={"X-Request-ID": "req-123"})
    assert response.status_code == 401
    assert response["X-Request-ID"] == "req-123"
    [line] = parsed(log_lines)
    assert list(line) == ["time", "level", "logger", "message", "request_id"]
    assert line["level"] == "WARNING"
    assert line["logger"] == "django.request"
    assert line["message"] == "Unauthorized: /api/v1/campaigns"
    assert line["request_id"] == "req-123"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", str(line["time"]))
    # Outside the request, no request id.
    logging.getLogger("rewards.test").warning("after the request")
    assert "request_id" not in parsed(log_lines)[-1]


@pytest.mark.django_db
def test_log_lines_of_a_job_run_carry_its_job_id(
    log_lines: io.StringIO, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FROZEN_NOW", "2026-11-20T10:00:00Z")
    run = run_job("publish_payouts", at=dt.datetime(2026, 11, 20, 10, 0, tzinfo=dt.UTC))
    assert JobRun.objects.get(pk=run.pk).status == "succeeded"
    lines = parsed(log_lines)
    assert [(line["logger"], line["message"]) for line in lines] == [
        ("jobs.runner", "job publish_payouts [2026-11-20T10:00:00+00:00] started (command)"),
        (
            "jobs.runner",
            "job publish_payouts [2026-11-20T10:00:00+00:00] succeeded in 0.000 s:"
            " {'published': 0}",
        ),
    ]
    assert {line["job_id"] for line in lines} == {
        f"{run.pk}:publish_payouts:2026-11-20T10:00:00+00:00"
    }
    assert all("request_id" not in line for line in lines)


def test_an_exception_is_logged_on_the_same_line() -> None:
    from monitoring.logs import ContextFilter, JsonFormatter

    logger = logging.getLogger("rewards.test.exception")
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(ContextFilter())
    logger.addHandler(handler)
    try:
        try:
            raise ValueError("the ledger does not balance")
        except ValueError:
            logger.exception("check failed for %s", "USDT")
    finally:
        logger.removeHandler(handler)
    [line] = parsed(buffer)
    assert line["message"] == "check failed for USDT"
    assert line["level"] == "ERROR"
    assert str(line["exception"]).startswith("Traceback (most recent call last):")
    assert str(line["exception"]).endswith("ValueError: the ledger does not balance")
