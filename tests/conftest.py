"""Suite-wide rules."""

from __future__ import annotations

from typing import Any

import pytest


@pytest.fixture(autouse=True)
def _api_rate_limits_lifted(settings: Any) -> None:
    """API rate limits guard production from scripts; they are not what other
    tests test (one fires fifty spins at once to prove spins are race-safe), and
    their counters live in Redis, across tests. The tests of the limits
    (tests/monitoring) set the rates they exercise."""
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {}}


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """A skipped test is a test that did not run: the suite fails rather than hide it."""
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = reporter.stats.get("skipped", []) if reporter else []
    if reporter and skipped:
        reporter.write_line(f"FAILED: {len(skipped)} test(s) skipped; no test may be skipped")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
