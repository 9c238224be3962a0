"""The campaign jobs at scale: 100,000 registered users and 5,000,000 fills.

    .venv/bin/python -m bench.campaign_jobs --users 100000 --fills 5000000

Set-up (not timed as a job): a campaign of 14 days; 100,000 users known,
invited (CSV import, timed) and registered; the fills ingested through the
ingestion pipeline in batches (all projections kept up to date); every user
with a coverage spin draws their card and uses up to 3 daily spins (through
the spin service, many at a time). Then each job runs as ``manage.py run_job``
in a child process, timed, with its peak resident memory:

- ``refresh_spins``, first over everything, then after 5 minutes of new
  traffic (``--fresh-fills`` fills in the last 5 minutes of the campaign);
- ``draw_coverage`` after the end plus lateness;
- ``issue_campaign_bonuses``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import time
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

from bench import harness

harness.setup()

from django.db import connection  # noqa: E402

from bench.workload import trade_fills  # noqa: E402
from campaigns import services  # noqa: E402
from campaigns.models import Participant, Reward, SpinAllowance  # noqa: E402
from config import clock  # noqa: E402
from ledger.bookkeeping import fund_account, open_funding_account  # noqa: E402
from ledger.ingestion import ingest  # noqa: E402
from ledger.models import PayoutInstruction  # noqa: E402

START = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
END = START + dt.timedelta(days=14)
PYTHON = sys.executable
CHUNK = 10_000


def chunks(items: list[Any], size: int = CHUNK) -> Iterator[list[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def run_job(name: str, at: dt.datetime) -> tuple[float, int, str]:
    return harness.child_run(
        [PYTHON, "manage.py", "run_job", name, "--at", at.isoformat().replace("+00:00", "Z")]
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--fills", type=int, default=5_000_000)
    parser.add_argument("--fresh-fills", type=int, default=50_000)
    args = parser.parse_args()
    users = [f"u_{n:06d}" for n in range(args.users)]
    print(f"campaign_jobs: {args.users:,} users, {args.fills:,} fills", flush=True)

    campaign = services.create_campaign(
        slug="bench",
        title="Bench",
        starts_at=START,
        ends_at=END,
        registration_opens_at=START - dt.timedelta(days=1),
        registration_closes_at=END,
        volume_target=Decimal("1000000"),
        lateness=dt.timedelta(hours=1),
    )
    account = open_funding_account(program=campaign.funding_program, asset="USDT")
    fund_account(account=account, amount=Decimal("1000000000"), idempotency_key="bench", by="bench")

    started = time.perf_counter()
    for part in chunks(users):
        ingest(
            [
                {
                    "event_id": f"reg-{u}",
                    "type": "user.registered",
                    "occurred_at": "2026-01-01T00:00:00Z",
                    "user_id": u,
                    "data": {"account_type": "main"},
                }
                for u in part
            ],
            source="bench",
        )
    csv_text = "user_id\n" + "\n".join(users) + "\n"
    invite_started = time.perf_counter()
    invited = services.invite(
        campaign, services.invitation_ids_from_csv(csv_text), source="bench csv"
    )
    harness.row(
        "invitation CSV import", f"{invited:,} rows in {time.perf_counter() - invite_started:.2f} s"
    )
    registered_at = START - dt.timedelta(hours=1)
    # Through the service, as the API registers them (many at a time).
    with clock.pinned(registered_at):
        for part in chunks(users):
            services.register_many(campaign, part)

    fills = trade_fills(
        args.fills,
        users=args.users,
        start=START,
        seconds_per_order=(END - START - dt.timedelta(minutes=10)).total_seconds()
        / (args.fills / 3.5),
    )
    batch: list[dict] = []
    for event in fills:
        batch.append(event)
        if len(batch) == CHUNK:
            ingest(batch, source="bench")
            batch = []
    if batch:
        ingest(batch, source="bench")
    harness.row("set-up: users, registrations, fills", f"{time.perf_counter() - started:.0f} s")

    seconds, peak, _ = run_job("refresh_spins", END - dt.timedelta(minutes=5))
    harness.row("refresh_spins, first pass over all volume", f"{seconds:.1f} s, peak {peak} MB")

    granted = list(
        SpinAllowance.objects.filter(campaign=campaign).values_list(
            "user_id", "coverage_granted_at", "daily_earned"
        )
    )
    spin_at = END - dt.timedelta(minutes=4)
    spins = []
    for user_id, coverage_at, daily in granted:
        if coverage_at is not None:
            spins.append((user_id, "coverage"))
        spins += [(user_id, "daily")] * min(daily, 3)
    # Through the service, as the spin endpoint decides them (many at a time).
    with clock.pinned(spin_at):
        for part in chunks(spins):
            services.spin_many(campaign, part)
    holders = Participant.objects.filter(campaign=campaign, card_percent__isnull=False).count()
    harness.row(
        "participants with a card / daily prizes won", f"{holders:,} / {Reward.objects.count():,}"
    )

    fresh = list(
        trade_fills(
            args.fresh_fills,
            users=args.users,
            seed=99,
            start=END - dt.timedelta(minutes=5),
            seconds_per_order=300 / (args.fresh_fills / 3.5),
            id_prefix="fresh",
        )
    )
    for part in chunks(fresh):
        ingest(part, source="bench")
    seconds, peak, out = run_job("refresh_spins", END - dt.timedelta(seconds=1))
    harness.row(
        f"refresh_spins after 5 min of new traffic ({args.fresh_fills:,} fills)",
        f"{seconds:.1f} s, peak {peak} MB  {out.strip()[-60:]}",
    )

    seconds, peak, out = run_job("draw_coverage", END + dt.timedelta(hours=1))
    harness.row("draw_coverage", f"{seconds:.1f} s, peak {peak} MB  {out.strip()[-70:]}")
    seconds, peak, out = run_job("issue_campaign_bonuses", END + dt.timedelta(hours=2))
    harness.row("issue_campaign_bonuses", f"{seconds:.1f} s, peak {peak} MB  {out.strip()[-70:]}")
    harness.row("payout instructions written", f"{PayoutInstruction.objects.count():,}")
    _, _, verdict = harness.child_run([PYTHON, "manage.py", "verify_draw", "bench"])
    harness.row("verify_draw", verdict.strip().splitlines()[-1])
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_size_pretty(pg_database_size(current_database()))")
        harness.row("database size", cursor.fetchone()[0])


if __name__ == "__main__":
    main()
