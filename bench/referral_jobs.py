"""The referral jobs at scale: 100,000 referrers, 1,000,000 referees and
5,000,000 referee fills in one day.

    .venv/bin/python -m bench.referral_jobs --referrers 100000 --referees 1000000 --fills 5000000

Set-up: referrers and referees registered through ingestion (referees with a
referrer's code), an MX holding per referrer spread over the tiers, the fills
of day D ingested (80% futures, 15% spot, 5% margin; fees in USDT, some in
ETH and BTC), the pools funded, then ``ANALYZE`` as autovacuum would. Then
``settle_referrals --day D`` and ``distribute_referral_commissions --day D``
run as ``manage.py run_job`` in child processes, timed, with peak memory.
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

from ledger.bookkeeping import fund_account, open_funding_account  # noqa: E402
from ledger.ingestion import ingest  # noqa: E402
from ledger.models import PayoutInstruction  # noqa: E402
from referrals.models import Commission, ReferralCode  # noqa: E402

PYTHON = sys.executable
CHUNK = 10_000
DAY = dt.date(2026, 11, 20)
START = dt.datetime(2026, 11, 20, tzinfo=dt.UTC)


def flush(batch: list[dict[str, Any]]) -> None:
    if batch:
        ingest(batch, source="bench")
        batch.clear()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--referrers", type=int, default=100_000)
    parser.add_argument("--referees", type=int, default=1_000_000)
    parser.add_argument("--fills", type=int, default=5_000_000)
    args = parser.parse_args()
    rng = random.Random(11)
    print(
        f"referral_jobs: {args.referrers:,} referrers, {args.referees:,} referees, {args.fills:,} fills",
        flush=True,
    )
    started = time.perf_counter()
    batch: list[dict[str, Any]] = []
    for n in range(args.referrers):
        batch.append(
            {
                "event_id": f"reg-r{n}",
                "type": "user.registered",
                "occurred_at": "2026-01-01T00:00:00Z",
                "user_id": f"r_{n:06d}",
                "data": {"account_type": "main"},
            }
        )
        batch.append(
            {
                "event_id": f"mx-r{n}",
                "type": "holding.updated",
                "occurred_at": "2026-11-20T06:00:00Z",
                "user_id": f"r_{n:06d}",
                "data": {"asset": "MX", "amount": str(rng.choice([500, 20_000, 60_000, 150_000]))},
            }
        )
        if len(batch) >= CHUNK:
            flush(batch)
    flush(batch)
    codes = dict(
        ReferralCode.objects.filter(user_id__startswith="r_").values_list("user_id", "code")
    )
    for n in range(args.referees):
        referrer = f"r_{rng.randrange(args.referrers):06d}"
        batch.append(
            {
                "event_id": f"reg-e{n}",
                "type": "user.registered",
                "occurred_at": "2026-03-01T00:00:00Z",
                "user_id": f"e_{n:07d}",
                "data": {"account_type": "main", "referral_code": codes[referrer]},
            }
        )
        if len(batch) >= CHUNK:
            flush(batch)
    flush(batch)
    harness.row("set-up: registrations and relations", f"{time.perf_counter() - started:.0f} s")
    started = time.perf_counter()
    for n in range(args.fills):
        market = rng.choices(["usdt_m", "spot", "margin"], [80, 15, 5])[0]
        asset = rng.choices(["USDT", "ETH", "BTC"], [90, 6, 4])[0]
        fee = Decimal(rng.randrange(1, 5_000)) / (100 if asset == "USDT" else 1_000_000)
        at = START + dt.timedelta(seconds=n * 86_000 / args.fills)
        batch.append(
            {
                "event_id": f"fill-{n:08d}",
                "type": "trade.filled",
                "occurred_at": at.isoformat().replace("+00:00", "Z"),
                "user_id": f"e_{rng.randrange(args.referees):07d}",
                "data": {
                    "order_id": f"o{n}",
                    "symbol": "BTC_USDT",
                    "market": market,
                    "action": "open",
                    "side": "long",
                    "quantity": "0.01",
                    "price": "90000",
                    "notional": "900",
                    "fee": str(fee),
                    "fee_asset": asset,
                    "fee_rate": "0.0005",
                    "realized_pnl": "0",
                    "origin": "manual",
                    "promo_funding": [],
                },
            }
        )
        if len(batch) >= CHUNK:
            flush(batch)
    flush(batch)
    harness.row("set-up: fills ingested", f"{time.perf_counter() - started:.0f} s")
    for asset, amount in (("USDT", 100_000_000), ("ETH", 100_000), ("BTC", 10_000)):
        fund_account(
            account=open_funding_account(program="referrals", asset=asset),
            amount=Decimal(amount),
            idempotency_key=f"pool-{asset}",
            by="bench",
        )
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")

    env = {**os.environ, "FROZEN_NOW": "2026-11-21T00:15:00Z"}
    seconds, peak, out = harness.child_run(
        [PYTHON, "manage.py", "run_job", "settle_referrals", "--day", DAY.isoformat()], env=env
    )
    harness.row("settle_referrals", f"{seconds:.1f} s, peak {peak} MB  {out.strip()[-60:]}")
    env = {**os.environ, "FROZEN_NOW": "2026-11-21T01:00:00Z"}
    seconds, peak, out = harness.child_run(
        [
            PYTHON,
            "manage.py",
            "run_job",
            "distribute_referral_commissions",
            "--day",
            DAY.isoformat(),
        ],
        env=env,
    )
    harness.row(
        "distribute_referral_commissions", f"{seconds:.1f} s, peak {peak} MB  {out.strip()[-110:]}"
    )
    seconds, _, out = harness.child_run(
        [PYTHON, "manage.py", "run_job", "settle_referrals", "--day", DAY.isoformat()], env=env
    )
    harness.row("settle_referrals again (nothing new)", f"{seconds:.1f} s  {out.strip()[-60:]}")
    harness.row(
        "commission rows / payout instructions",
        f"{Commission.objects.count():,} / {PayoutInstruction.objects.count():,}",
    )


if __name__ == "__main__":
    main()
