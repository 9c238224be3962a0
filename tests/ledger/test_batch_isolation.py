"""A batch never dies for one event: what the database refuses is isolated,
quarantined with the database's own message, and the rest commits.

The contract and the wire bounds stop every refusal this suite knows of
before the database sees it, so the refusals here are made on purpose: rules
installed for the test on the log itself and on a read model, raising for
marked events, the way a constraint or a projector would.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from django.core.management import call_command
from rest_framework.test import APIClient

from ledger.ingestion import ingest
from ledger.models import ClosedOrder, Event, QuarantinedInput
from tests import events

pytestmark = pytest.mark.django_db(transaction=True)

_RULES = """
CREATE FUNCTION test_refuse_marked_event() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.user_id LIKE 'refused%' THEN
        RAISE EXCEPTION 'events of % are refused here', NEW.user_id
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER test_refuse_marked_event BEFORE INSERT ON ledger_event
    FOR EACH ROW EXECUTE FUNCTION test_refuse_marked_event();
CREATE FUNCTION test_refuse_marked_order() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.order_id LIKE 'unprojectable%' THEN
        RAISE EXCEPTION 'order % cannot be projected', NEW.order_id;
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER test_refuse_marked_order BEFORE INSERT ON ledger_closedorder
    FOR EACH ROW EXECUTE FUNCTION test_refuse_marked_order();
"""
_DROP = """
DROP TRIGGER IF EXISTS test_refuse_marked_event ON ledger_event;
DROP FUNCTION IF EXISTS test_refuse_marked_event();
DROP TRIGGER IF EXISTS test_refuse_marked_order ON ledger_closedorder;
DROP FUNCTION IF EXISTS test_refuse_marked_order();
"""


@pytest.fixture
def refusing_database(connect_as: Callable[[str], psycopg.Connection[Any]]) -> Iterator[None]:
    owner = connect_as("owner")
    owner.autocommit = True
    owner.execute(_DROP)
    owner.execute(_RULES)
    yield
    owner.execute(_DROP)


def _batch() -> tuple[list[dict[str, Any]], set[int]]:
    """1,000 valid fills; three the log refuses and two no read model takes,
    spread over the batch (first, middle, last among them)."""
    batch = [events.fill(f"u_{i % 37}", order_id=f"o_{i}", action="close") for i in range(1000)]
    marked = {0: "log", 417: "read model", 418: "log", 731: "read model", 999: "log"}
    for index, where in marked.items():
        if where == "log":
            batch[index]["user_id"] = f"refused_{index}"
        else:
            batch[index]["data"]["order_id"] = f"unprojectable_{index}"
    return batch, set(marked)


def _assert_isolated(outcomes: list[dict[str, Any]], marked: set[int]) -> None:
    refused = [o for o in outcomes if o["status"] == "rejected"]
    assert sorted(o["index"] for o in refused) == sorted(marked)
    assert all(o["reason"] == "refused" for o in refused)
    assert {o["status"] for o in outcomes if o["index"] not in marked} == {"accepted"}
    assert Event.objects.count() == 995
    assert ClosedOrder.objects.count() == 995
    assert ClosedOrder.objects.filter(order_id__startswith="unprojectable").count() == 0
    quarantined = {q.event_id: q for q in QuarantinedInput.objects.all()}
    assert len(quarantined) == 5
    assert all(q.reason == "refused" for q in quarantined.values())
    messages = sorted(q.errors[0]["message"] for q in quarantined.values())
    assert messages[0].startswith("refused by the database: events of refused_0 are refused here")
    assert "order unprojectable_417 cannot be projected" in " ".join(messages)


def test_the_log_and_a_projector_refusing_events_do_not_take_the_batch_down(
    refusing_database: None,
) -> None:
    batch, marked = _batch()
    report = ingest(batch, source="test")
    assert report.summary() == {"accepted": 995, "duplicate": 0, "rejected": 5}
    _assert_isolated([o.as_dict() for o in report.outcomes], marked)
    # The refused events are quarantined whole: the same batch again stores
    # nothing new and refuses the same five.
    again = ingest(batch, source="test")
    assert again.summary() == {"accepted": 0, "duplicate": 995, "rejected": 5}


def test_the_rest_door_answers_per_event(
    refusing_database: None, service_client: APIClient
) -> None:
    batch, marked = _batch()
    response = service_client.post("/api/v1/events", {"events": batch}, format="json")
    assert response.status_code == 200
    body = response.json()
    assert (body["accepted"], body["rejected"]) == (995, 5)
    _assert_isolated(body["results"], marked)


def test_the_file_door_reports_the_lines(refusing_database: None, tmp_path: Path) -> None:
    batch, marked = _batch()
    source = tmp_path / "events.jsonl"
    source.write_text("".join(json.dumps(event) + "\n" for event in batch))
    report = tmp_path / "rejected.jsonl"
    call_command("ingest_events", str(source), "--no-progress", "--report", str(report))
    lines = [json.loads(line) for line in report.read_text().splitlines()]
    assert [line["line"] for line in lines] == [index + 1 for index in sorted(marked)]
    assert {line["reason"] for line in lines} == {"refused"}
    assert Event.objects.count() == 995
