"""Scheduled jobs of the ledger app."""

from __future__ import annotations

import datetime as dt

from jobs.registry import job
from ledger import payouts


@job(
    "publish_payouts",
    key="instant",
    schedule=dt.timedelta(seconds=10),
    description="Relay new payout instructions (the outbox) to the payout Redis Stream.",
    decides=False,
)
def publish_payouts(*, at: dt.datetime) -> dict[str, int]:
    """RULES.md section 5: every user credit is published as a payout instruction
    for the exchange's wallet service. At-least-once; the wallet service applies
    each idempotency key once."""
    return payouts.publish_payouts(at=at)
