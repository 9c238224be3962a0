"""Suite-wide rules."""

from __future__ import annotations

import pytest


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """A skipped test is a test that did not run: the suite fails rather than hide it."""
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = reporter.stats.get("skipped", []) if reporter else []
    if reporter and skipped:
        reporter.write_line(f"FAILED: {len(skipped)} test(s) skipped; no test may be skipped")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
