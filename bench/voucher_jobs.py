"""The voucher jobs at scale: 100,000 users, 300,000 vouchers, 1,000,000 losing
orders in one day.

    .venv/bin/python -m bench.voucher_jobs --users 100000 --vouchers 300000 --orders 1000000

Set-up: users known; 100,000 grants imported from a CSV (timed), the rest
granted through the same service; the losing orders ingested through the
pipeline (one closing fill each; 8% copy/grid/bot, 5% bonus-funded, losses
0.50-200 USDT). Then ``consume_vouchers`` and ``pay_voucher_compensation`` run
as ``manage.py run_job`` in child processes, timed, with peak memory.
"""

from __future__ import annotations

import datetime as dt
import os
import random
import sys
import time
from decimal import Decimal

from bench import harness

DAY = dt.date(2026, 11, 20)
START = dt.datetime(2026, 11, 20, tzinfo=dt.UTC)
os.environ["FROZEN_NOW"] = "2026-11-20T00:00:00Z"  # vouchers arrive at the start of the day
harness.setup()

import argparse  # noqa: E402

from ledger.bookkeeping import fund_account  # noqa: E402
from ledger.ingestion import ingest  # noqa: E402
from ledger.models import PayoutInstruction  # noqa: E402
from vouchers import services  # noqa: E402
from vouchers.models import Consumption  # noqa: E402

PYTHON = sys.executable
CHUNK = 10_000


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--vouchers", type=int, default=300_000)
    parser.add_argument("--orders", type=int, default=1_000_000)
    args = parser.parse_args()
    rng = random.Random(3)
    users = [f"u_{n:06d}" for n in range(args.users)]
    print(
        f"voucher_jobs: {args.users:,} users, {args.vouchers:,} vouchers, {args.orders:,} losing orders",
        flush=True,
    )

    program = services.save_program(slug="bench", title="Bench vouchers")
    services.save_template(program=program, code="fifty", face_value=Decimal(50), validity_days=7)
    from ledger.bookkeeping import open_funding_account

    fund_account(
        account=open_funding_account(program=program.funding_program, asset="USDT"),
        amount=Decimal(100_000_000),
        idempotency_key="bench",
        by="bench",
    )
    for start in range(0, len(users), CHUNK):
        ingest(
            [
                {
                    "event_id": f"reg-{u}",
                    "type": "user.registered",
                    "occurred_at": "2026-01-01T00:00:00Z",
                    "user_id": u,
                    "data": {"account_type": "main"},
                }
                for u in users[start : start + CHUNK]
            ],
            source="bench",
        )

    csv_rows = min(100_000, args.vouchers)
    csv_text = "user_id\n" + "\n".join(users[n % args.users] for n in range(csv_rows)) + "\n"
    started = time.perf_counter()
    report = services.grant_vouchers(
        services.grants_from_csv(csv_text, program="bench", default_template="fifty"),
        source="bench csv",
    )
    harness.row(
        f"CSV grant import, {csv_rows:,} rows",
        f"{time.perf_counter() - started:.1f} s ({report.granted:,} granted)",
    )
    started = time.perf_counter()
    again = services.grant_vouchers(
        services.grants_from_csv(csv_text, program="bench", default_template="fifty"),
        source="bench csv",
    )
    harness.row(
        "  the same file again",
        f"{time.perf_counter() - started:.1f} s ({again.granted} granted, {again.duplicate:,} duplicate)",
    )
    rest = [
        services.Grant(f"bench:{n}", users[n % args.users], "bench", "fifty")
        for n in range(csv_rows, args.vouchers)
    ]
    for start in range(0, len(rest), 50_000):
        services.grant_vouchers(rest[start : start + 50_000], source="bench")

    started = time.perf_counter()
    batch = []
    for n in range(args.orders):
        user = users[rng.randrange(args.users)]
        closed = START + dt.timedelta(seconds=60 + n * (86_000 / args.orders))
        origin = rng.choices(["manual", "api", "copy", "grid", "bot"], [70, 22, 4, 2, 2])[0]
        batch.append(
            {
                "event_id": f"close-{n:08d}",
                "type": "trade.filled",
                "occurred_at": closed.isoformat().replace("+00:00", "Z"),
                "user_id": user,
                "data": {
                    "order_id": f"o{n:08d}",
                    "symbol": "BTC_USDT",
                    "market": "usdt_m",
                    "action": "close",
                    "side": "long",
                    "quantity": "0.01",
                    "price": "90000",
                    "notional": "900",
                    "fee": "0.45",
                    "fee_asset": "USDT",
                    "fee_rate": "0.0005",
                    "realized_pnl": str(-Decimal(rng.randrange(50, 20_000)) / 100),
                    "origin": origin,
                    "promo_funding": ["bonus"] if rng.random() < 0.05 else [],
                },
            }
        )
        if len(batch) == CHUNK:
            ingest(batch, source="bench")
            batch = []
    if batch:
        ingest(batch, source="bench")
    harness.row("set-up: orders ingested", f"{time.perf_counter() - started:.0f} s")

    # Statistics as autovacuum keeps them on a live system (a bulk load outruns it).
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    env = {**os.environ, "FROZEN_NOW": "2026-11-21T00:00:30Z"}
    seconds, peak, out = harness.child_run(
        [PYTHON, "manage.py", "run_job", "consume_vouchers", "--at", "2026-11-21T00:00:00Z"],
        env=env,
    )
    harness.row("consume_vouchers", f"{seconds:.1f} s, peak {peak} MB  {out.strip()[-80:]}")
    env = {**os.environ, "FROZEN_NOW": "2026-11-21T00:30:00Z"}
    seconds, peak, out = harness.child_run(
        [PYTHON, "manage.py", "run_job", "pay_voucher_compensation", "--day", DAY.isoformat()],
        env=env,
    )
    harness.row("pay_voucher_compensation", f"{seconds:.1f} s, peak {peak} MB  {out.strip()[-80:]}")
    harness.row(
        "consumptions / payout instructions",
        f"{Consumption.objects.count():,} / {PayoutInstruction.objects.count():,}",
    )


if __name__ == "__main__":
    main()
