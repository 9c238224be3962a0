"""Every payout job, two real processes at once, pays exactly once.

Per job, ``RELIABILITY_TRIALS`` (25) trials, each on a fresh copy of its world
(over 10,000 payable items): two ``manage.py run_job`` processes in a random
order, the second started a random 0-2 s after the first, for the days D and
D+1 (the incident: 29,992 users paid twice), for the same day twice, or for a
catch-up of an earlier day beside the scheduled run (for the campaign job:
instants an hour apart, the same instant twice, a missed hour beside the
scheduled one). Then: every user credited exactly what the world owes
(amounts finer than the unit: each credit rounded down once), every owed item
tied to exactly one credit and nothing else paid, payout instructions equal
to the credits, each run succeeded (or was skipped because the same key was
running), and ``verify_ledger`` finds no breach. Trials run two at a time
(``RELIABILITY_PARALLEL``), each on its own copy.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass

import pytest

from tests.reliability import harness
from tests.reliability.conftest import Worlds, lanes, trial_rng

pytestmark = pytest.mark.heavy

TRIALS = int(os.environ.get("RELIABILITY_TRIALS", "25"))
GOOD = {"succeeded", "skipped"}


@dataclass
class Trial:
    label: str
    runs: list[harness.Run]
    money: harness.Money
    problems: list[str]


@pytest.mark.parametrize("name", list(harness.JOBS))
def test_payout_runs_started_together_pay_every_item_exactly_once(
    name: str,
    server: harness.Server,
    worlds: Worlds,
    verifiers: list[harness.Verifier],
    payers: dict[str, list[str]],
    request: pytest.FixtureRequest,
) -> None:
    job = harness.JOBS[name]
    world = worlds.get(name)
    scenarios = list(job.scenarios.items())
    kept = threading.Lock()
    kept_one: list[str] = []

    def trial(n: int, lane: harness.Lane) -> Trial:
        label, keys = scenarios[n % len(scenarios)]
        db = lane.copies.next()
        env = harness.child_env(server, db, job.frozen_now)
        runs = harness.race(job, keys, env, trial_rng(request, n))
        money, problems, statuses = harness.assess(
            server, lane.verifier, job, payers[name], db, runs
        )
        odd = {pk: status for pk, status in statuses.items() if status not in GOOD}
        if odd:
            problems.append(f"runs ended {odd}")
        if len(statuses) != len(keys):
            problems.append(f"{len(statuses)} runs recorded for {len(keys)} processes")
        if problems:
            with kept:
                if not kept_one:
                    kept_one.append(server.keep(db, f"fail_race_{name}"))
                    problems.append(f"copy kept as {kept_one[0]}")
        return Trial(label, runs, money, problems)

    started = time.perf_counter()
    with lanes(server, verifiers, world, name) as made:
        trials = harness.in_lanes(made, range(TRIALS), trial)
    tally = harness.Tally(job=name, suite="race", seconds=time.perf_counter() - started)
    failures = []
    for n, done in enumerate(trials):
        tally.trials += 1
        tally.items = done.money.items
        tally.credits += done.money.credits
        tally.amount += done.money.credited
        tally.doubles += done.money.doubles
        tally.tracked = done.money.tracked
        tally.overlapped += harness.overlapped(done.runs)
        tally.skipped_runs += sum(run.skipped for run in done.runs)
        if done.problems:
            tally.failed_trials += 1
            offsets = ", ".join(f"--{job.key} {r.key} at +{r.offset:.2f} s" for r in done.runs)
            failures.append(f"trial {n + 1} [{done.label}: {offsets}]: " + "; ".join(done.problems))
    if not tally.tracked:
        tally.notes.append(f"{job.job} records no paid items: item checks not made")
    harness.TALLIES.append(tally)
    assert not failures, f"{len(failures)} of {TRIALS} trials failed:\n" + "\n".join(failures)
