"""Every hostile kind of tests/ledger/hostile.py, sent between two valid events
through each door: the neighbours are stored, the kind gets its outcome,
every input is accounted for, the quarantine names the field, nothing
answers 5xx and no exception escapes. And the import of a large file does
not stop at its one bad line."""

from __future__ import annotations

import io
import json
import os
import subprocess
from collections import Counter
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import redis
from django.core.management import call_command
from django.db import connection
from rest_framework.test import APIClient

from ledger.models import ClosedOrder, Event, QuarantinedInput
from tests import events
from tests.databases import child_database_url
from tests.ledger import hostile
from tests.ledger.hostile import ACCEPTED, DUPLICATE, Kind, Rejected

URL = "/api/v1/events"
ROOT = Path(__file__).resolve().parents[2]
ENVELOPE = ("event_id", "type", "occurred_at", "user_id", "data")

KINDS = [pytest.param(kind, id=kind.name) for kind in hostile.CATALOGUE]


def _sent(kind: Kind) -> tuple[list[bytes], list[hostile.Outcome]]:
    """The inputs of one test: the kind between two valid neighbours."""
    return (
        [hostile.BEFORE_LINE, *kind.lines, hostile.AFTER_LINE],
        [ACCEPTED, *kind.outcomes, ACCEPTED],
    )


def _counts(outcomes: list[hostile.Outcome]) -> tuple[int, int, int]:
    return (
        outcomes.count(ACCEPTED),
        outcomes.count(DUPLICATE),
        sum(isinstance(outcome, Rejected) for outcome in outcomes),
    )


def _fields(errors: list[dict[str, str]]) -> frozenset[str]:
    return frozenset(error["field"] for error in errors)


def _exact(text: str) -> Any:
    return json.loads(text, parse_float=Decimal, parse_int=Decimal)


def _assert_stored(kind: Kind, lines: list[bytes], outcomes: list[hostile.Outcome]) -> None:
    """The log holds exactly the accepted lines, each as it was sent (numbers
    exactly, extra fields apart); the quarantine holds exactly the rejected
    ones, naming their fields; closed orders sum exactly."""
    accepted = [
        hostile.decoded(line) for line, o in zip(lines, outcomes, strict=True) if o == ACCEPTED
    ]
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT event_id, type, user_id, data::text, extra::text FROM ledger_event"
            " WHERE origin = 'exchange' ORDER BY position"
        )
        stored = {row[0]: row[1:] for row in cursor.fetchall()}
    assert sorted(stored) == sorted(body["event_id"] for body in accepted)
    for body in accepted:
        event_type, user_id, data, extra = stored[body["event_id"]]
        assert (event_type, user_id) == (body["type"], body["user_id"])
        assert _exact(data) == body["data"]
        assert _exact(extra) == {k: v for k, v in body.items() if k not in ENVELOPE}

    expected = Counter(
        (outcome.reason, outcome.fields) for outcome in outcomes if isinstance(outcome, Rejected)
    )
    quarantined = Counter(
        (row.reason, _fields(row.errors)) for row in QuarantinedInput.objects.all()
    )
    assert quarantined == expected
    for order_id, (notional, pnl) in kind.closed_orders.items():
        order = ClosedOrder.objects.get(order_id=order_id)
        assert (order.closing_notional, order.realized_pnl) == (notional, pnl)


# The file door reads at most this much of one line (a longer one is refused
# unread, and kept up to there).
READ_LIMIT = 1_048_576


def _kept(line: bytes, source: str) -> bytes:
    return line[: READ_LIMIT + 1] if source == "file" else line


def _assert_received_kept(lines: list[bytes], outcomes: list[hostile.Outcome], source: str) -> None:
    """The quarantine keeps each rejected input's exact bytes."""
    rejected = Counter(
        _kept(line, source)
        for line, outcome in zip(lines, outcomes, strict=True)
        if isinstance(outcome, Rejected)
    )
    kept = Counter(hostile.received(row) for row in QuarantinedInput.objects.all())
    assert kept == rejected


# --- REST ------------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("kind", KINDS)
def test_rest_door(kind: Kind, service_client: APIClient) -> None:
    lines, outcomes = _sent(kind)
    body = b'{"events":[' + b",".join(lines) + b"]}"
    response = service_client.generic(
        "POST",
        URL,
        body,  # type: ignore[arg-type]  # bytes as they are: the client sends them unchanged
        content_type="application/json",
    )
    if kind.rest_refuses_body:
        assert response.status_code == 400, response.content[:500]
        assert response.json()["error"]["message"]
        _assert_stored(kind, [], [])
        return
    assert response.status_code == 200, response.content[:500]
    answer = response.json()
    assert (answer["accepted"], answer["duplicate"], answer["rejected"]) == _counts(outcomes)
    assert [result["index"] for result in answer["results"]] == list(range(len(lines)))
    quarantine_ids = set(QuarantinedInput.objects.values_list("pk", flat=True))
    for result, outcome in zip(answer["results"], outcomes, strict=True):
        if isinstance(outcome, Rejected):
            assert result["status"] == "rejected", result
            assert _fields(result["errors"]) == outcome.fields, result
            assert result["quarantine_id"] in quarantine_ids
            row = QuarantinedInput.objects.get(pk=result["quarantine_id"])
            assert (row.reason, _fields(row.errors), row.source) == (
                outcome.reason,
                outcome.fields,
                "rest",
            )
        else:
            assert result["status"] == outcome, result
            assert "errors" not in result
    _assert_stored(kind, lines, outcomes)


# --- file ----------------------------------------------------------------------------------


def _import(path: Path, *args: str) -> tuple[list[str], list[dict[str, Any]]]:
    report = path.with_suffix(".report")
    out, err = io.StringIO(), io.StringIO()
    call_command(
        "ingest_events", str(path), "--no-progress", "--report", str(report), *args,
        stdout=out, stderr=err,
    )  # fmt: skip
    rows = [json.loads(line) for line in report.read_text().splitlines()]
    return out.getvalue().splitlines(), rows


@pytest.mark.django_db
@pytest.mark.parametrize("kind", KINDS)
def test_file_door(kind: Kind, tmp_path: Path) -> None:
    lines, outcomes = _sent(kind)
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    printed, report = _import(path, "--verbosity", "2")
    accepted, duplicate, rejected = _counts(outcomes)
    assert printed[-1] == f"accepted={accepted} duplicate={duplicate} rejected={rejected}"
    expected_report = [
        (number, outcome.reason, outcome.fields)
        for number, outcome in enumerate(outcomes, start=1)
        if isinstance(outcome, Rejected)
    ]
    assert [(row["line"], row["reason"], _fields(row["errors"])) for row in report] == (
        expected_report
    )
    for row in report:
        entry = QuarantinedInput.objects.get(pk=row["quarantine_id"])
        assert entry.source == "file"
        assert hostile.received(entry) == _kept(lines[row["line"] - 1], "file")
        for error in row["errors"]:
            assert f"line {row['line']}: {error['field']}: {error['message']}" in printed
    _assert_stored(kind, lines, outcomes)
    _assert_received_kept(lines, outcomes, "file")


# --- stream --------------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("kind", KINDS)
def test_stream_door(
    kind: Kind, redis_client: redis.Redis, stream_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    hostile.keep_test_connection(monkeypatch)
    lines, outcomes = _sent(kind)
    stats = hostile.consume_stream(redis_client, stream_name, lines, batch=50)
    assert (stats.accepted, stats.duplicate, stats.rejected) == _counts(outcomes)
    assert stats.quarantined_unprocessable == 0
    assert set(QuarantinedInput.objects.values_list("source", flat=True)) <= {"stream"}
    _assert_stored(kind, lines, outcomes)
    _assert_received_kept(lines, outcomes, "stream")


ENVELOPE_MISSING = frozenset(ENVELOPE)


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("fields", "outcome"),
    [
        pytest.param({b"something": b"else"}, Rejected(ENVELOPE_MISSING), id="no event field"),
        pytest.param({b"event": b""}, Rejected(frozenset({"(body)"})), id="empty event field"),
        pytest.param(
            {
                b"event": hostile.dumps(events.holding("u_entry", event_id="entry-extra")),
                b"trace": b"\xff\x00",
            },
            ACCEPTED,
            id="event field beside others",
        ),
    ],
)
def test_stream_entries_of_other_shapes(
    fields: dict[bytes, bytes],
    outcome: hostile.Outcome,
    redis_client: redis.Redis,
    stream_name: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An entry is read from its ``event`` field; an entry without one is
    rejected, not lost, and blocks nothing behind it."""
    hostile.keep_test_connection(monkeypatch)
    redis_client.xadd(stream_name, {"event": hostile.BEFORE_LINE})
    redis_client.xadd(stream_name, fields)  # type: ignore[arg-type]
    redis_client.xadd(stream_name, {"event": hostile.AFTER_LINE})
    stats = hostile.consume_stream(redis_client, stream_name, [], batch=50)
    expected = [ACCEPTED, outcome, ACCEPTED]
    assert (stats.accepted, stats.duplicate, stats.rejected) == _counts(expected)
    assert stats.quarantined_unprocessable == 0
    quarantined = [(row.reason, _fields(row.errors)) for row in QuarantinedInput.objects.all()]
    assert quarantined == [(o.reason, o.fields) for o in expected if isinstance(o, Rejected)]
    stored = set(Event.objects.filter(origin="exchange").values_list("event_id", flat=True))
    assert stored == {"nb-before", "nb-after"} | ({"entry-extra"} if outcome == ACCEPTED else set())


# --- a large file with one bad line, imported by a real process ----------------------------------


@pytest.fixture
def big_file(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "big.jsonl"
    bad = hostile.dumps(
        {**events.fill("u_big", order_id="bad", event_id="big-bad"), "note": "a\x00b"}
    )
    with path.open("wb") as out:
        for number in range(1, 20_001):
            if number == 12_346:
                out.write(bad + b"\n")
                continue
            user = f"u_{number % 500}"
            if number % 2:
                event = events.fill(user, order_id=f"o{number % 3000}", event_id=f"big-{number}")
            else:
                event = events.holding(user, amount=str(number), event_id=f"big-{number}")
            out.write(hostile.dumps(event) + b"\n")
    yield path


@pytest.mark.django_db(transaction=True)
def test_a_bad_line_deep_in_a_large_file_costs_only_itself(big_file: Path) -> None:
    report = big_file.with_suffix(".report")
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings"}
    env["DATABASE_URL"] = child_database_url()
    done = subprocess.run(
        [str(ROOT / ".venv/bin/python"), "manage.py", "ingest_events", str(big_file),
         "--no-progress", "--report", str(report)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Traceback" not in done.stderr
    assert done.stdout.strip().splitlines()[-1] == "accepted=19999 duplicate=0 rejected=1"
    rows = [json.loads(line) for line in report.read_text().splitlines()]
    assert [(r["line"], r["event_id"], r["reason"], _fields(r["errors"])) for r in rows] == [
        (12_346, "big-bad", "invalid", frozenset({"note"}))
    ]
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM ledger_event WHERE event_id LIKE 'big-%%'")
        assert cursor.fetchone() == (19_999,)
    assert QuarantinedInput.objects.get().pk == rows[0]["quarantine_id"]
