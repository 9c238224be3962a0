"""A job the rules refuse tells ops why, without a traceback, with its own exit status."""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from jobs.management.commands.run_job import EXIT_REFUSED
from jobs.models import JobRun, JobRunStatus

pytestmark = pytest.mark.django_db


def test_a_day_not_over_is_refused_with_its_reason_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FROZEN_NOW", "2026-11-20T23:59:59Z")
    out, err = io.StringIO(), io.StringIO()
    with pytest.raises(CommandError) as refused:
        call_command(
            "run_job", "accrue_earn_interest", "--day", "2026-11-20", stdout=out, stderr=err
        )
    run = JobRun.objects.get(job="accrue_earn_interest")
    assert refused.value.returncode == EXIT_REFUSED == 3
    assert str(refused.value) == (
        "accrue_earn_interest [2026-11-20] refused (too_early): Earn interest of 2026-11-20"
        f" is accrued once the day is over (run #{run.pk})"
    )
    assert "Traceback" not in err.getvalue() + out.getvalue()
    assert run.status == JobRunStatus.FAILED
    assert run.error == (
        "refused (too_early): Earn interest of 2026-11-20 is accrued once the day is over"
    )
