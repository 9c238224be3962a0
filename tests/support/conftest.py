from __future__ import annotations

import datetime as dt
from collections.abc import Generator

import pytest

from campaigns.models import Campaign
from tests.support import world


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> world.Clock:
    """Set the one clock (FROZEN_NOW) to an instant; returns it."""

    def set_to(text: str) -> dt.datetime:
        monkeypatch.setenv("FROZEN_NOW", text)
        return world.instant(text)

    set_to(world.START)
    return set_to


@pytest.fixture
def winter(db: None, clock: world.Clock) -> Campaign:
    """The world of tests/support/world.py, as of 2026-11-21T03:00Z."""
    return world.build(clock)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Keep each phase's report on the test, so a fixture can tell it failed."""
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report
