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
    assert again.getvalue().strip() == "accepted=0 duplicate=13 rejected=1"


def test_reads_standard_input(monkeypatch: pytest.MonkeyPatch) -> None:
    data = "\n".join(json.dumps(events.holding(f"u_{i}")) for i in range(3)).encode()
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data)))
    out = io.StringIO()
    call_command("ingest_events", "-", "--no-progress", stdout=out)
    assert out.getvalue().strip() == "accepted=3 duplicate=0 rejected=0"


def test_missing_file_is_a_clear_error() -> None:
    with pytest.raises(CommandError, match="no such file"):
        call_command("ingest_events", "/nonexistent/events.jsonl")
