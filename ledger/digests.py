"""Settlement digests: what a payout paid, as one hash.

Every payment of ``ledger.payables.pay_items`` that credits anyone records a
:class:`~ledger.models.PayoutDigest` in the database transaction of its
credits: the sha256 of its credits, one line each, sorted by idempotency key.
A line is the compact JSON array (UTF-8, no escapes beyond JSON's own, no
spaces) of the credit's key, user, account kind, asset and amount (plain
digits, no exponent, no trailing zeros: ``format_amount``), ended by a
newline::

    ["voucher:winter:u_1:2026-11-20","u_1","spot","USDT","12.5"]

The digest appears in the admin (Ledger > Payout digests) and in the counts
of the job run that paid (``digest #<id>``: the digest), and
:func:`recompute` derives it again from the postings, so an auditor, or a
replay of the log into another database, can compare what was paid with what
was recorded. A payment that pays nothing (a rerun finding everything paid,
a refusal) records no digest: there is nothing to hash, and the run's counts
say so by the digest's absence.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterable, Sequence
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import orjson
from django.db import connection, transaction

from ledger.models import PayoutDigest
from ledger.money import format_amount

if TYPE_CHECKING:
    from ledger.payables import Credit, Payment, PaymentResult

# The key of a digest in a job run's counts: "digest #<id>" (the admin's row).
COUNT_PREFIX = "digest #"

# The credits of a recorded payout, from the ledger: the user postings of the
# transactions in its range that pay items of its payers. A payer's lock is
# held from before its credits are posted to their commit, so no other
# payment of the same payers has a transaction inside that range.
_PAID = """
SELECT t.idempotency_key, a.user_id, a.user_kind, p.asset, p.amount
FROM ledger_ledgertransaction t
JOIN ledger_posting p ON p.transaction_id = t.id AND p.amount > 0
JOIN ledger_account a ON a.id = p.account_id AND a.kind = 'user'
WHERE t.id BETWEEN %(first)s AND %(last)s
  AND EXISTS (SELECT 1 FROM ledger_paiditem i
              WHERE i.transaction_id = t.id AND i.payer = ANY(%(payers)s))
ORDER BY t.idempotency_key COLLATE "C"
"""


def credit_line(key: str, user_id: str, account_kind: str, asset: str, amount: Decimal) -> bytes:
    """One credit's line of a digest."""
    return orjson.dumps([key, user_id, account_kind, asset, format_amount(amount)]) + b"\n"


def digest_of(lines: Iterable[bytes]) -> str:
    """sha256 (hex) of the lines, in the order given (the caller sorts by key)."""
    digest = hashlib.sha256()
    for line in lines:
        digest.update(line)
    return digest.hexdigest()


def record_payment(
    payment: Payment,
    credits: Sequence[Credit],
    *,
    items: int,
    total: Decimal,
    transactions: tuple[int, int],
    now: dt.datetime,
) -> PayoutDigest:
    """Record the digest of a payment just posted (in its transaction).
    ``transactions``: the first and last ledger transaction ids of its credits."""
    asset = payment.funding.asset
    # Python sorts str by code point, which is the byte order of UTF-8: the
    # order of COLLATE "C" in recompute's query.
    ordered = sorted(credits, key=lambda credit: credit.key)
    return PayoutDigest.objects.create(
        recorded_at=now,
        payers="/".join(sorted(p.name for p in payment.payers)),
        funding_account=payment.funding.code,
        asset=asset,
        cause=payment.cause,
        credits=len(credits),
        items=items,
        total=total,
        first_transaction_id=transactions[0],
        last_transaction_id=transactions[1],
        digest=digest_of(
            credit_line(c.key, c.user_id, payment.user_kind, asset, c.amount) for c in ordered
        ),
    )


def recompute(record: PayoutDigest) -> str:
    """The digest of a recorded payout, derived again from the ledger's
    postings (streamed: any number of credits in bounded memory). Equal to
    ``record.digest`` unless what it paid was changed since."""
    params = {
        "first": record.first_transaction_id,
        "last": record.last_transaction_id,
        "payers": record.payers.split("/"),
    }
    # A server-side cursor lives in a transaction.
    with transaction.atomic():
        raw = connection.connection
        assert raw is not None
        with raw.cursor(name=f"payout_digest_{record.pk}") as cursor:
            cursor.itersize = 10_000
            cursor.execute(_PAID, params)
            return digest_of(credit_line(*row) for row in cursor)


def digest_counts(results: Iterable[PaymentResult]) -> dict[str, Any]:
    """For a job's counts: each recorded digest of its payments, by payout."""
    return {
        f"{COUNT_PREFIX}{r.digest.pk}": r.digest.digest for r in results if r.digest is not None
    }


def digests_in(counts: dict[str, Any]) -> dict[str, Any]:
    """The digest entries of a job's counts (to carry them into another's)."""
    return {key: value for key, value in counts.items() if key.startswith(COUNT_PREFIX)}
