"""A campaign backtest over 5,000,000 recorded fills (issue 15: under 5 minutes).

    BENCH_DATABASE=rewards_bench .venv/bin/python -m bench.backtest --users 100000 --fills 5000000

Set-up (not timed): the users known, then the fills of 14 days (the campaign
benchmark's traffic, bench.workload) ingested through the pipeline and the
log vacuumed, as a live database would hold them. No campaign runs in it. Then, timed as one
child process, ``manage.py backtest`` of a draft open campaign over those 14
days: the scratch database made and migrated, every fill copied and folded
in hourly steps, every trader registered, every spin used, the draw, and the
report (with the scratch database dropped).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import tempfile
import time
from pathlib import Path

from bench import harness

harness.setup()

from django.db import connection  # noqa: E402

from bench.workload import trade_fills  # noqa: E402
from ledger.ingestion import ingest  # noqa: E402

START = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
DAYS = 14
CHUNK = 10_000

DRAFT = """
campaigns:
  - slug: bench-draft
    title: Bench draft
    starts_at: "2027-01-01T00:00:00Z"
    ends_at: "2027-01-15T00:00:00Z"
    registration_opens_at: "2026-12-31T00:00:00Z"
    invitation_only: false
    volume_target: "1000000"
funding_accounts:
  - program: "campaign:bench-draft"
    asset: USDT
    top_ups: [{key: bench-draft, amount: "3000000"}]
"""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--fills", type=int, default=5_000_000)
    parser.add_argument("--step", default="60")
    args = parser.parse_args()
    print(f"backtest: {args.users:,} users, {args.fills:,} fills over {DAYS} days", flush=True)
    started = time.perf_counter()
    users = [f"u_{n:06d}" for n in range(args.users)]
    for first in range(0, len(users), CHUNK):
        ingest(
            [
                {
                    "event_id": f"reg-{u}",
                    "type": "user.registered",
                    "occurred_at": "2026-01-01T00:00:00Z",
                    "user_id": u,
                    "data": {"account_type": "main"},
                }
                for u in users[first : first + CHUNK]
            ],
            source="bench",
        )
    end = START + dt.timedelta(days=DAYS)
    batch = []
    for event in trade_fills(
        args.fills,
        users=args.users,
        start=START,
        seconds_per_order=(end - START - dt.timedelta(minutes=10)).total_seconds()
        / (args.fills / 3.5),
    ):
        batch.append(event)
        if len(batch) == CHUNK:
            ingest(batch, source="bench")
            batch = []
    if batch:
        ingest(batch, source="bench")
    with connection.cursor() as cursor:
        # What autovacuum does to a live log: summarises occurred_at's BRIN
        # ranges (a backtest reads the window step by step through it).
        cursor.execute("VACUUM ANALYZE ledger_event")
        cursor.execute("SELECT count(*) FROM ledger_event WHERE type = 'trade.filled'")
        recorded = cursor.fetchone()[0]
        cursor.execute("SELECT pg_size_pretty(pg_database_size(current_database()))")
        size = cursor.fetchone()[0]
    harness.row("set-up: users and fills ingested", f"{time.perf_counter() - started:.0f} s")
    harness.row("recorded fills (duplicates dropped)", f"{recorded:,}, database {size}")

    with tempfile.TemporaryDirectory() as folder:
        draft, out = Path(folder, "draft.yaml"), Path(folder, "report.json")
        draft.write_text(DRAFT)
        last = (end - dt.timedelta(days=1)).date().isoformat()
        seconds, peak, text = harness.child_run(
            [
                sys.executable, "manage.py", "backtest", str(draft),
                "--from", START.date().isoformat(), "--to", last,
                "--seed", "bench", "--step", args.step, "--json", str(out),
            ]
        )  # fmt: skip
        report = json.loads(out.read_text())
    figures = dict(report["draft"]["figures"])
    harness.row(
        "manage.py backtest, wall time",
        f"{seconds:.1f} s (in the scratch database {report['seconds']} s), parent peak {peak} MB",
    )
    harness.row("facts copied / job runs", f"{report['facts_copied']:,} / {report['job_runs']:,}")
    for label in (
        "participants",
        "coverage spins (cards drawn)",
        "daily spins",
        "losing orders in scope (n)",
        "covered orders (k)",
        "rewards",
    ):
        harness.row(label, figures[label])
    harness.row("budget runs out on", str(report["runs_out"].get("USDT")))
    print(text, flush=True)


if __name__ == "__main__":
    main()
