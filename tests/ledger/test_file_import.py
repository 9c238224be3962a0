"""python manage.py ingest_events FILE | -"""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from ledger.models import Event, QuarantinedInput
from tests import events

pytestmark = pytest.mark.django_db


def test_imports_a_file_and_ends_with_the_summary(tmp_path: Path) -> None:
    batch = [events.fill("u_1", order_id=f"o{i}") for i in range(12)]
    lines = [json.dumps(e) for e in batch] + [json.dumps(batch[0]), "", '{"broken": ']
    path = tmp_path / "events.jsonl"
    path.write_text("\n".join(lines) + "\n")
    out = io.StringIO()
    call_command("ingest_events", str(path), "--chunk", "5", "--no-progress", stdout=out)
    assert out.getvalue().strip().splitlines()[-1] == "accepted=12 duplicate=1 rejected=1"
    assert Event.objects.count() == 12
    assert QuarantinedInput.objects.get().source == "file"
    again = io.StringIO()
    call_command("ingest_events", str(path), "--no-progress", stdout=again)
    # Each rejected line is named on the terminal, by default too.
    assert again.getvalue().strip().splitlines() == [
        "line 15: (body): not valid JSON: Expecting value: line 1 column 11 (char 10)",
        "accepted=0 duplicate=13 rejected=1",
    ]


def test_reads_standard_input(monkeypatch: pytest.MonkeyPatch) -> None:
    data = "\n".join(json.dumps(events.holding(f"u_{i}")) for i in range(3)).encode()
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data)))
    out = io.StringIO()
    call_command("ingest_events", "-", "--no-progress", stdout=out)
    assert out.getvalue().strip() == "accepted=3 duplicate=0 rejected=0"


def test_missing_file_is_a_clear_error() -> None:
    with pytest.raises(CommandError, match="no such file"):
        call_command("ingest_events", "/nonexistent/events.jsonl")


def test_the_first_rejected_lines_are_named_and_the_rest_counted(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_text("".join(f'{{"n": {n},\n' for n in range(25)))  # 25 broken lines
    out, err = io.StringIO(), io.StringIO()
    call_command("ingest_events", str(path), "--no-progress", stdout=out, stderr=err)
    *named, summary = out.getvalue().strip().splitlines()
    assert summary == "accepted=0 duplicate=0 rejected=25"
    assert [line.split(": ")[:2] for line in named] == [
        [f"line {n}", "(body)"] for n in range(1, 21)
    ]
    assert err.getvalue().strip() == (
        "5 more rejected lines are in quarantine (the admin); -v lists them all,"
        " --report PATH writes them to a file"
    )
    every = io.StringIO()
    call_command("ingest_events", str(path), "--no-progress", "-v", "2", stdout=every)
    assert len(every.getvalue().strip().splitlines()) == 26
