"""Every payout job, killed with SIGKILL at a random point and rerun, pays
exactly once, and the killed run is recorded abandoned.

Per job: one undisturbed run on a copy of its world measures how long the run
lasts from its record (start-up over) to the end of the process: N. Then, on
a fresh copy each time, until ``RELIABILITY_KILLS`` (10) kills have landed
while the run was alive: start the job, wait for its run record, sleep a
uniformly random 0-N s, SIGKILL it, wait until its database session has
ended, rerun the same key as a new process, and make the race suite's checks.
Two more kills per job are aimed at the moment the run's first credits are
seen committed (polled every 2 ms): paid, or partly paid, and still running.
The run the kill left ``running`` must be ``abandoned`` after the rerun (the
rerun sweeps runs whose runner's session is gone). Kills run two at a time
(``RELIABILITY_PARALLEL``), each on its own copy.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import psycopg
import pytest

from tests.reliability import harness
from tests.reliability.conftest import Worlds, lanes, trial_rng

pytestmark = pytest.mark.heavy

KILLS = int(os.environ.get("RELIABILITY_KILLS", "10"))
# Kills aimed, besides, at the moment the first credits are seen committed:
# the run has paid (some of) it and not yet recorded its end.
AT_COMMIT = 2


def _recorded(
    conn: psycopg.Connection[Any], job: harness.PayoutJob, run: harness.Run
) -> float | None:
    """Wait for the run's record; the seconds since its start, or None if the
    process ended first."""
    while run.proc.poll() is None:
        if conn.execute(
            "SELECT 1 FROM jobs_jobrun WHERE job = %s AND status = 'running'", [job.job]
        ).fetchone():
            return time.monotonic() - run.started
        time.sleep(0.005)
    return None


def _committed(conn: psycopg.Connection[Any], job: harness.PayoutJob, run: harness.Run) -> None:
    """Wait until a credit of the job's kinds is committed, or the process ends."""
    while run.proc.poll() is None:
        if conn.execute(
            "SELECT EXISTS (SELECT 1 FROM ledger_ledgertransaction WHERE kind = ANY(%s))",
            [list(job.credit_kinds)],
        ).fetchone() == (True,):
            return
        time.sleep(0.002)


def _calibrate(
    server: harness.Server, job: harness.PayoutJob, trial: str, env: dict[str, str]
) -> tuple[float, float]:
    """(seconds until the run is recorded, seconds until the process ends) of
    one undisturbed run."""
    run = harness.start_run(job, job.kill_key, env)
    with server.connect(trial) as conn:
        recorded = _recorded(conn, job, run)
    run.finish()
    ended = (run.ended or time.monotonic()) - run.started
    assert run.returncode == 0, run.describe()
    assert recorded is not None, "the run ended before its record was seen"
    return recorded, ended


@dataclass
class Kill:
    delay: float | None  # after the run's record; None: no record seen
    inside: bool  # killed while the run was alive
    outcome: str
    money: harness.Money
    problems: list[str]
    abandoned: int = 0
    waited: float = 0.0
    notes: list[str] = field(default_factory=list)


@pytest.mark.parametrize("name", list(harness.JOBS))
def test_payout_killed_at_random_then_rerun_pays_exactly_once(
    name: str,
    server: harness.Server,
    worlds: Worlds,
    verifiers: list[harness.Verifier],
    payers: dict[str, list[str]],
    request: pytest.FixtureRequest,
) -> None:
    job = harness.JOBS[name]
    world = worlds.get(name)
    tally = harness.Tally(job=name, suite="kill")
    kept = threading.Lock()
    kept_one: list[str] = []
    started = time.perf_counter()
    with lanes(server, verifiers, world, name) as made:
        db = made[0].copies.next()
        recorded, ended = _calibrate(server, job, db, harness.child_env(server, db, job.frozen_now))
        # N: how long a run lives after its record. A kill that finds the run
        # already ended (the machine was quicker than when calibrated) brings
        # it down to what that run took.
        span = [ended - recorded]
        tally.notes.append(
            f"undisturbed run: recorded after {recorded:.2f} s, ended after {ended:.2f} s"
        )

        def kill(n: int, lane: harness.Lane) -> Kill:
            db = lane.copies.next()
            env = harness.child_env(server, db, job.frozen_now)
            killed = harness.start_run(job, job.kill_key, env)
            with server.connect(db) as conn:
                seen = _recorded(conn, job, killed)
                delay = trial_rng(request, n).uniform(0.0, span[0])
                if n >= AT_COMMIT and seen is not None:
                    time.sleep(delay)
                elif seen is not None:
                    _committed(conn, job, killed)
                    delay = time.monotonic() - killed.started - seen
            if killed.proc.poll() is None:
                harness.kill(killed)
            else:
                killed.finish()
                if seen is not None:
                    span[0] = min(span[0], (killed.ended or 0) - killed.started - seen)
            waited = harness.wait_for_sessions_gone(server, db)
            with server.connect(db) as conn:
                credits, credited, owed = harness.paid_so_far(conn, job)
                runs_before = harness.run_statuses(conn, job)
                tracks_abandoned = harness.supports_abandoned(conn)
            if not killed.killed:
                outcome = "after the run ended"
            elif not runs_before:
                outcome = "before the run was recorded"
            elif credits == 0:
                outcome = "before any payment committed"
            elif owed - credited < harness.UNIT * credits:
                outcome = "after the payment committed"
            else:
                outcome = "between two commits"
            rerun = harness.start_run(job, job.kill_key, env)
            rerun.finish()
            money, problems, statuses = harness.assess(
                server, lane.verifier, job, payers[name], db, [killed, rerun]
            )
            result = Kill(
                delay if seen is not None else None,
                killed.killed,
                outcome,
                money,
                problems,
                waited=waited,
            )
            if rerun.skipped:
                problems.append("the rerun was skipped: the killed run still held the job's lock")
            left_running = [pk for pk, status in runs_before.items() if status == "running"]
            for pk in left_running:
                if not tracks_abandoned:
                    result.notes.append(f"run #{pk} left 'running' (no abandoned runs here)")
                elif statuses.get(pk) == "abandoned":
                    result.abandoned += 1
                else:
                    problems.append(f"killed run #{pk} is {statuses.get(pk)!r}, not 'abandoned'")
            rerun_status = statuses.get(max(statuses)) if statuses else None
            if rerun_status != "succeeded":
                problems.append(f"the rerun ended {rerun_status!r}")
            if problems:
                with kept:
                    if not kept_one:
                        kept_one.append(server.keep(db, f"fail_kill_{name}"))
                        problems.append(f"copy kept as {kept_one[0]}")
            return result

        # First the kills at the first commit, then the random ones.
        kills = harness.in_lanes(made, range(AT_COMMIT), kill)
        while (
            sum(k.inside for k in kills[AT_COMMIT:]) < KILLS and len(kills) < AT_COMMIT + 3 * KILLS
        ):
            more = KILLS - sum(k.inside for k in kills[AT_COMMIT:])
            kills += harness.in_lanes(made, range(len(kills), len(kills) + more), kill)
    tally.seconds = time.perf_counter() - started
    failures = []
    for n, done in enumerate(kills):
        tally.trials += 1
        tally.items = done.money.items
        tally.credits += done.money.credits
        tally.amount += done.money.credited
        tally.doubles += done.money.doubles
        tally.tracked = done.money.tracked
        outcome = ("at the first commit: " if n < AT_COMMIT else "") + done.outcome
        tally.outcomes[outcome] = tally.outcomes.get(outcome, 0) + 1
        tally.notes += [f"kill {n + 1}: {note}" for note in done.notes]
        if done.problems:
            tally.failed_trials += 1
            at = (
                "before any record"
                if done.delay is None
                else f"{done.delay:.2f} s after the record"
            )
            failures.append(f"kill {n + 1} {at} ({done.outcome}): " + "; ".join(done.problems))
    inside = sum(k.inside for k in kills[AT_COMMIT:])
    tally.notes.append(
        f"kills landed while the run was alive: {inside}; killed runs recorded abandoned:"
        f" {sum(k.abandoned for k in kills)}; longest wait for a killed run's session to end:"
        f" {max(k.waited for k in kills):.2f} s"
    )
    harness.TALLIES.append(tally)
    assert inside >= KILLS, f"only {inside} of {len(kills)} kills landed while the run was alive"
    assert not failures, f"{len(failures)} of {len(kills)} kills failed:\n" + "\n".join(failures)
