"""The Earn jobs at scale: 100,000 active users.

    .venv/bin/python -m bench.earn_jobs --users 100000

Set-up: every user activated (``earn.activated``, through the event store),
a history of futures wallet states (three USDT reports and one USDC report on
the day, some with a bonus) and of position lists (two a day, long and short
across USDT-M, USDC-M and coin-M) ingested through the ingestion service, the
Earn pool funded, then ``ANALYZE`` as autovacuum would. Then the three
``earn_snapshot --at T`` of day D, ``accrue_earn_interest --day D`` and
``distribute_earn_interest --day D`` run as ``manage.py run_job`` in child
processes, timed, with peak memory.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import random
import sys
import time
from decimal import Decimal
from typing import Any

from bench import harness

os.environ["FROZEN_NOW"] = "2026-11-19T00:00:00Z"
harness.setup()

from django.db import connection  # noqa: E402

from earn.models import DailyInterest, Snapshot  # noqa: E402
from ledger.bookkeeping import fund_account, open_funding_account  # noqa: E402
from ledger.event_store import DomainEvent, append_domain_events  # noqa: E402
from ledger.ingestion import ingest  # noqa: E402
from ledger.models import PayoutInstruction  # noqa: E402

PYTHON = sys.executable
CHUNK = 10_000
DAY = dt.date(2026, 11, 20)
UNDERLYINGS = [("BTC", 90_000), ("ETH", 3_000), ("SOL", 150)]


def _at(day: int, hour: int, minute: int) -> str:
    return f"2026-11-{day}T{hour:02d}:{minute:02d}:00Z"


def _positions(rng: random.Random) -> list[dict[str, Any]]:
    items = []
    for _ in range(rng.randrange(0, 4)):
        name, price = rng.choice(UNDERLYINGS)
        market = rng.choices(["usdt_m", "usdc_m", "coin_m"], [70, 20, 10])[0]
        quote = {"usdt_m": "USDT", "usdc_m": "USDC", "coin_m": "USD"}[market]
        items.append(
            {
                "symbol": f"{name}_{quote}",
                "market": market,
                "side": rng.choice(["long", "short"]),
                "quantity": str(Decimal(rng.randrange(1, 400_000)) / price / 100),
                "avg_entry_price": str(price),
            }
        )
    return items


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--users", type=int, default=100_000)
    args = parser.parse_args()
    rng = random.Random(7)
    print(f"earn_jobs: {args.users:,} active users", flush=True)
    started = time.perf_counter()
    activated = dt.datetime(2026, 11, 19, 6, tzinfo=dt.UTC)
    for first in range(0, args.users, CHUNK):
        append_domain_events(
            [
                DomainEvent(
                    event_id=f"earn.activated:u_{n:06d}",
                    type="earn.activated",
                    occurred_at=activated,
                    data={},
                    user_id=f"u_{n:06d}",
                )
                for n in range(first, min(first + CHUNK, args.users))
            ]
        )
    batch: list[dict[str, Any]] = []
    for n in range(args.users):
        user = f"u_{n:06d}"
        # Reports the day before and through day D: each snapshot reads its own state.
        for day, hour, asset in (
            (19, 12, "USDT"),
            (19, 13, "USDC"),
            (20, 5, "USDT"),
            (20, 12, "USDT"),
        ):
            batch.append(
                {
                    "event_id": f"w-{n}-{day}-{hour}-{asset}",
                    "type": "futures_wallet.updated",
                    "occurred_at": _at(day, hour, rng.randrange(60)),
                    "user_id": user,
                    "data": {
                        "asset": asset,
                        "available": str(rng.randrange(0, 200_000)),
                        "locked_in_orders": str(rng.randrange(0, 1_000)),
                        "margin_used": str(rng.randrange(0, 20_000)),
                        "bonus": str(rng.choice([0, 0, 0, 50, 500])),
                    },
                }
            )
        for day, hour in ((19, 14), (20, 10)):
            batch.append(
                {
                    "event_id": f"p-{n}-{day}-{hour}",
                    "type": "futures_positions.updated",
                    "occurred_at": _at(day, hour, rng.randrange(60)),
                    "user_id": user,
                    "data": {"positions": _positions(rng)},
                }
            )
        if len(batch) >= CHUNK:
            ingest(batch, source="bench")
            batch.clear()
    if batch:
        ingest(batch, source="bench")
    for asset in ("USDT", "USDC"):
        fund_account(
            account=open_funding_account(program="earn", asset=asset),
            amount=Decimal(100_000_000),
            idempotency_key=f"earn-pool-{asset}",
            by="bench",
        )
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    harness.row("set-up: activations, wallets, positions", f"{time.perf_counter() - started:.0f} s")

    for hour in (0, 8, 16):
        # Each instant is taken once its lateness window (5 minutes) is over.
        at = f"2026-11-20T{hour:02d}:05:00Z"
        env = {**os.environ, "FROZEN_NOW": f"2026-11-20T{hour:02d}:05:00Z"}
        seconds, peak, out = harness.child_run(
            [PYTHON, "manage.py", "run_job", "earn_snapshot", "--at", at], env=env
        )
        harness.row(f"earn_snapshot --at {at}", f"{seconds:.1f} s, peak {peak} MB")
    harness.row("snapshot rows", f"{Snapshot.objects.count():,}")
    env = {**os.environ, "FROZEN_NOW": "2026-11-21T00:20:00Z"}
    seconds, peak, out = harness.child_run(
        [PYTHON, "manage.py", "run_job", "accrue_earn_interest", "--day", DAY.isoformat()], env=env
    )
    harness.row("accrue_earn_interest", f"{seconds:.1f} s, peak {peak} MB")
    harness.row(
        "daily interest rows (> 0)",
        f"{DailyInterest.objects.count():,} ({DailyInterest.objects.filter(interest__gt=0).count():,})",
    )
    env = {**os.environ, "FROZEN_NOW": "2026-11-21T00:40:00Z"}
    seconds, peak, out = harness.child_run(
        [PYTHON, "manage.py", "run_job", "distribute_earn_interest", "--day", DAY.isoformat()],
        env=env,
    )
    harness.row("distribute_earn_interest", f"{seconds:.1f} s, peak {peak} MB")
    seconds, _, out = harness.child_run(
        [PYTHON, "manage.py", "run_job", "distribute_earn_interest", "--day", DAY.isoformat()],
        env=env,
    )
    harness.row("distribute_earn_interest again", f"{seconds:.1f} s  {out.strip()[-60:]}")
    harness.row("payout instructions", f"{PayoutInstruction.objects.count():,}")


if __name__ == "__main__":
    main()
