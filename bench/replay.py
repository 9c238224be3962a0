"""Replay of the campaign benchmark's world, against building it in the first place.

    .venv/bin/python -m bench.replay --users 100000 --fills 5000000

1. ``bench.campaign_jobs`` builds its world (users, invitations,
   registrations, fills through the ingestion pipeline, spins) and runs its
   jobs, in a child process: its wall time is the baseline, "the original
   ingestion plus the original job runs".
2. ``manage.py replay_into`` rebuilds that database from its log in a new
   one and compares the two, in a child process: its wall time and peak
   resident memory, and the report's verdict.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

from bench import harness

PYTHON = sys.executable
SOURCE = os.environ.get("BENCH_DATABASE", "rewards_bench")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--fills", type=int, default=5_000_000)
    args = parser.parse_args()
    print(f"replay: the campaign world of {args.users:,} users, {args.fills:,} fills", flush=True)
    from config import embedded

    if not os.environ.get("DATABASE_URL") or not os.environ.get("REDIS_URL"):
        embedded.provide(os.environ)
    env = {**os.environ, "BENCH_DATABASE": SOURCE}
    started = time.perf_counter()
    build, build_peak, out = harness.child_run(
        [
            PYTHON,
            "-m",
            "bench.campaign_jobs",
            "--users",
            str(args.users),
            "--fills",
            str(args.fills),
            "--fresh-fills",
            str(max(args.fills // 100, 1)),
        ],
        env=env,
    )
    print(out, end="", flush=True)
    harness.row("original: world built and jobs run", f"{build:.1f} s, peak {build_peak} MB")

    sys.path.insert(0, str(harness.ROOT))
    os.chdir(harness.ROOT)
    from replay import scratch  # URLs from the environment only: no settings needed

    into = f"{SOURCE}_replay"
    create_started = time.perf_counter()
    scratch.create(into)
    harness.row("scratch database made", f"{time.perf_counter() - create_started:.1f} s")
    seconds, peak, report = harness.child_run(
        [PYTHON, "manage.py", "replay_into", scratch.url_of(SOURCE)],
        env=scratch.environment(into),
    )
    print(report, end="", flush=True)
    harness.row("replay and comparison", f"{seconds:.1f} s, peak {peak} MB")
    harness.row("replay / original", f"{seconds / build:.2f}")
    scratch.drop(into)
    harness.row("total", f"{time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
