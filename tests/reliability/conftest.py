"""The servers, worlds and ``verify_ledger`` process the heavy suites share, and
their summary at the end of the session."""

from __future__ import annotations

import contextlib
import json
import os
import random
import tempfile
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import unquote, urlparse

import pytest

from tests.reliability import harness

# RELIABILITY_SEED replays a session's random offsets and kill points (the
# summary prints the seed of every session).
SEED = int(os.environ.get("RELIABILITY_SEED") or random.SystemRandom().randrange(10**9))


def _role(url: str) -> harness.Role:
    parsed = urlparse(url)
    return harness.Role(unquote(parsed.username or ""), unquote(parsed.password or ""))


@pytest.fixture(scope="session")
def server() -> Iterator[harness.Server]:
    """The test database's server, with this suite's databases on it: a migrated
    empty ``base`` made here, the rest below. Dropped at the end, but for the
    copies of failed trials (``..._fail_...``), kept to be looked at until the
    next session."""
    from django.conf import settings

    db: dict[str, Any] = settings.DATABASES["default"]
    test_name = db.get("TEST", {}).get("NAME") or f"test_{db['NAME']}"
    app = harness.Role(str(db["USER"]), str(db["PASSWORD"] or ""))
    owner_url = os.environ.get("DATABASE_OWNER_URL")
    server = harness.Server(
        host=str(db["HOST"] or "localhost"),
        port=str(db["PORT"] or ""),
        admin=_role(owner_url) if owner_url else app,
        app=app,
        prefix=f"{test_name}_rel",
    )
    server.drop_all()
    harness.make_base(server, server.name("base"))
    yield server
    with server.connect() as conn:
        names = [
            row[0]
            for row in conn.execute(
                "SELECT datname FROM pg_database WHERE starts_with(datname, %s)",
                [server.prefix + "_"],
            )
        ]
    for name in names:
        if not name.startswith(server.name("fail_")):
            server.drop(name)


class Worlds:
    """Each job's world, built once per session (``tests.reliability.worlds``)
    from ``base`` in a child process, then the template of its trials."""

    def __init__(self, server: harness.Server) -> None:
        self.server = server
        self.built = harness.WORLDS

    def get(self, name: str) -> str:
        db = self.server.name(f"w_{name}")
        if name not in self.built:
            started = time.perf_counter()
            self.server.copy(self.server.name("base"), db)
            with tempfile.NamedTemporaryFile(suffix=".json") as owed:
                harness.run_child(
                    [harness.PYTHON, "-m", "tests.reliability.worlds", name, owed.name],
                    harness.child_env(self.server, db),
                )
                rows = json.load(owed)
            figures = harness.record_world(self.server, db, harness.JOBS[name], rows)
            self.built[name] = {**figures, "seconds": time.perf_counter() - started}
        return db


@pytest.fixture(scope="session")
def worlds(server: harness.Server) -> Worlds:
    return Worlds(server)


# Trials of a job run this many at a time, each on its own copy: a trial
# leaves a core idle while its second run waits for its offset or for the
# first's lock, and the other trial's processes take it.
PARALLEL = max(1, int(os.environ.get("RELIABILITY_PARALLEL", "2")))


@pytest.fixture(scope="session")
def verifiers(server: harness.Server) -> Iterator[list[harness.Verifier]]:
    verifiers = [harness.Verifier(server) for _ in range(PARALLEL)]
    yield verifiers
    for verifier in verifiers:
        verifier.close()


@contextlib.contextmanager
def lanes(
    server: harness.Server, verifiers: list[harness.Verifier], world: str, name: str
) -> Iterator[list[harness.Lane]]:
    """One lane per verify_ledger process, each with copies of ``world`` of its own."""
    made = [
        harness.Lane(harness.Copies(server, world, f"{name}{n}"), verifier)
        for n, verifier in enumerate(verifiers)
    ]
    try:
        yield made
    finally:
        for lane in made:
            lane.copies.close()


def trial_rng(request: pytest.FixtureRequest, n: int) -> random.Random:
    """Trial n's random offsets or kill point: the same for the same seed,
    whichever lane runs it."""
    return random.Random(f"{SEED}:{request.node.name}:{n}")


@pytest.fixture(scope="session")
def payers() -> dict[str, list[str]]:
    """Per job, the ledger.payables payers of its items (empty where a job does
    not record paid items)."""
    try:
        from ledger.payables import all_payers
    except ImportError:
        return {name: [] for name in harness.JOBS}
    return {
        name: [p.name for p in all_payers() if p.table == job.item_table]
        for name, job in harness.JOBS.items()
    }


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not harness.TALLIES:
        return
    terminalreporter.section("payout jobs raced and killed as real processes")
    terminalreporter.write_line(
        f"seed {SEED} (RELIABILITY_SEED={SEED} replays it), {PARALLEL} trials at a time"
    )
    for tally in harness.TALLIES:
        terminalreporter.write_line(tally.line())
        for note in tally.notes:
            terminalreporter.write_line(f"      {note}")
    for name, world in sorted(harness.WORLDS.items()):
        terminalreporter.write_line(
            f"world {name:10} {world['items']:,} items, {world['users']:,} users,"
            f" owed {world['owed']} ({world['fractional_users']} with amounts finer than"
            f" the unit), built in {world['seconds']:.0f} s"
        )
