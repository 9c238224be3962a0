"""Postings per second from one hot funding account.

    .venv/bin/python -m bench.hot_account --credits 100000 --users 20000 --workers 2

Every reward of a campaign comes out of one funding account: a ledger that
takes a row lock per posting on that account crawls. This posts ``--credits``
reward credits (5% of them repeating an idempotency key already used, as a
rerun job would) to ``--users`` users through ``post_user_credits`` in batches
of ``--batch``, the way the jobs post them, from ``--workers`` concurrent
workers sharing the one account. It then checks every ledger invariant
(``verify_ledger``) and that the funding account lost exactly the sum of the
distinct credits, worked out here independently of the ledger.
"""

from __future__ import annotations

import argparse
import random
import threading
import time
from decimal import Decimal

from bench import harness

harness.setup()

from django.db import connection  # noqa: E402

from ledger.bookkeeping import (  # noqa: E402
    UserCredit,
    fund_account,
    open_funding_account,
    post_user_credits,
)
from ledger.models import Account, LedgerTransaction, PayoutInstruction, Posting  # noqa: E402
from ledger.verification import verify_ledger  # noqa: E402


def credits_to_post(
    count: int, users: int, duplicate_share: float, account: Account
) -> list[UserCredit]:
    rng = random.Random(5)
    credits: list[UserCredit] = []
    for n in range(count):
        if credits and rng.random() < duplicate_share:
            credits.append(rng.choice(credits))  # a rerun: same key, same credit
            continue
        user = f"u_{rng.randrange(users):06d}"
        credits.append(
            UserCredit(
                idempotency_key=f"bench:rebate:{user}:o{n}",
                kind="campaign.coverage_rebate",
                funding_account=account,
                user_id=user,
                amount=Decimal(rng.randrange(100, 50_000)) / 100,
                user_kind="futures_bonus",
                cause={"campaign": "bench", "order_id": f"o{n}"},
            )
        )
    return credits


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--credits", type=int, default=100_000)
    parser.add_argument("--users", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=5_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--duplicates", type=float, default=0.05)
    args = parser.parse_args()

    account = open_funding_account(program="campaign:bench", asset="USDT")
    budget = Decimal(args.credits) * 500
    fund_account(account=account, amount=budget, idempotency_key="bench-budget", by="bench")
    credits = credits_to_post(args.credits, args.users, args.duplicates, account)
    distinct = {credit.idempotency_key: credit.amount for credit in credits}
    batches = [credits[i : i + args.batch] for i in range(0, len(credits), args.batch)]
    print(
        f"hot_account: {len(credits):,} credits ({len(distinct):,} distinct keys) to "
        f"{args.users:,} users from one funding account, batches of {args.batch:,}, "
        f"{args.workers} workers",
        flush=True,
    )

    lock = threading.Lock()
    queue = list(reversed(batches))
    posted = 0
    skipped = 0

    def worker() -> None:
        nonlocal posted, skipped
        try:
            while True:
                with lock:
                    if not queue:
                        return
                    batch = queue.pop()
                report = post_user_credits(batch)
                with lock:
                    posted += report.posted
                    skipped += report.duplicates
        finally:
            connection.close()

    started = time.perf_counter()
    threads = [threading.Thread(target=worker) for _ in range(args.workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - started

    postings = 2 * posted
    harness.row("credits posted / duplicate keys skipped", f"{posted:,} / {skipped:,}")
    harness.row("postings written", f"{postings:,} in {seconds:.2f} s")
    harness.row("postings per second", f"{postings / seconds:,.0f}")
    harness.row("credits (transactions) per second", f"{posted / seconds:,.0f}")

    account.refresh_from_db()
    expected_balance = budget - sum(distinct.values(), Decimal(0))
    breaches = verify_ledger()
    checks = {
        "transactions == distinct keys": LedgerTransaction.objects.filter(
            kind="campaign.coverage_rebate"
        ).count()
        == len(distinct),
        "payout instructions == distinct keys": PayoutInstruction.objects.count() == len(distinct),
        "funding balance == budget - distinct credits": account.balance == expected_balance,
        "postings == 2 x credits + 2 (funding)": Posting.objects.count() == postings + 2,
        "verify_ledger: no breach": not breaches,
    }
    for label, ok in checks.items():
        harness.row(label, "ok" if ok else "FAILED")
    if not all(checks.values()):
        raise SystemExit(f"invariants broken: {breaches}")


if __name__ == "__main__":
    main()
