"""Paying what programs owe: each payable item paid at most once, by construction.

A program owes money for rows of its own (a voucher consumption, a campaign
reward, a referral commission, a day of Earn interest). It registers the kind
of row as a :class:`Payer` and, to pay, hands :func:`pay_items` a query naming
its candidate items and the words of a refusal. Everything else happens here,
once, for every program:

1. a lock per payer (a transaction-level advisory lock) is taken *before* any
   item is read, so two payers of the same items queue instead of both
   reading them unpaid (two payout days run together, a catch-up beside Beat);
2. the candidates are read under that lock, less the items ``PaidItem``
   already holds;
3. one credit per user: the sum of their items, rounded down once;
4. the funding account is reserved for the total, or this payment alone is
   refused with the program's message and an alert, nothing paid;
5. the credits are posted and each item is tied to its credit by a
   ``PaidItem`` row in the same database transaction. The row is unique per
   (payer, item): whatever a buggy or hostile second payer does, the database
   refuses to pay an item twice;
6. a digest of the credits is recorded with them (``ledger.digests``).

A user's items whose credit key is already taken (a rerun of the same day)
wait for the next key. A user whose credit would not fit the ledger's numbers,
or alone exceeds all the funding account holds, is reported as an exception
(their items stay owed) and everyone else is paid.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal, localcontext
from typing import Any

from django.db import connection, transaction

from config import clock
from jobs.exceptions import record_exception
from ledger import digests
from ledger.bookkeeping import (
    InsufficientFunds,
    UserCredit,
    post_user_credits,
    reserve_funding,
)
from ledger.models import Account, PayoutDigest, UserAccountKind
from ledger.money import EXACT, fits_amount, for_people, format_amount, round_payout

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Payer:
    """A kind of payable item: the rows of ``table`` (by ``id``) that a program
    owes money for, paid by credits of ``credit_kind``."""

    name: str
    table: str
    credit_kind: str
    description: str = ""


_PAYERS: dict[str, Payer] = {}


def register_payer(payer: Payer) -> Payer:
    """Declare a kind of payable item (at import of the program's module)."""
    existing = _PAYERS.get(payer.name)
    if existing is not None and existing != payer:
        raise ValueError(f"payer {payer.name!r} is declared twice")
    _PAYERS[payer.name] = payer
    return payer


def all_payers() -> list[Payer]:
    return sorted(_PAYERS.values(), key=lambda p: p.name)


@dataclass(frozen=True)
class Payment:
    """What a program asks :func:`pay_items` to pay, in one funding account.

    ``items_sql`` selects the candidate items as rows of (payer name, item id,
    user id, amount owed, credit key); it may name items already paid (they
    are left out here) but must only name items of ``payers``. Items sharing a
    user and a credit key are paid by one credit (the key derives from their
    cause: ``voucher:<program>:<user>:<day>``, a campaign reward's own key).
    ``refusal`` words a budget refusal from (needed, available)."""

    payers: tuple[Payer, ...]
    funding: Account
    items_sql: str
    params: dict[str, Any]
    refusal: Callable[[Decimal, Decimal], str]
    cause: dict[str, Any] = field(default_factory=dict)
    user_kind: str = UserAccountKind.SPOT
    expires_at: dt.datetime | None = None
    memo: str = ""
    # Whether a credit that alone exceeds the whole pool is held back so the
    # others are paid (see _within_pool); off where the program's rules say
    # all or nothing (a campaign's budget, RULES.md section 1).
    hold_back_outliers: bool = True


@dataclass(frozen=True, slots=True)
class Credit:
    user_id: str
    key: str
    kind: str
    owed: Decimal  # the sum of the credit's items
    amount: Decimal  # ``owed`` rounded down once: what was credited
    items: int
    owed_by_payer: dict[str, Decimal]


@dataclass
class PaymentResult:
    asset: str
    credits: list[Credit] = field(default_factory=list)
    items: int = 0
    amount: Decimal = Decimal(0)
    # Set when the funding could not cover the payment: nothing was paid.
    refused: str = ""
    # Users left for a later payment: their key is taken (a rerun of the day).
    waiting: int = 0
    # (user, reason): users not paid because of their own data; the rest were.
    exceptions: list[tuple[str, str]] = field(default_factory=list)
    # What was paid, as one hash (ledger.digests); None when nothing was.
    digest: PayoutDigest | None = None

    def counts(self, prefix: str = "") -> dict[str, Any]:
        counts: dict[str, Any] = {
            f"{prefix}credits": len(self.credits),
            f"{prefix}items": self.items,
            f"{prefix}amount": format_amount(self.amount),
        }
        if self.refused:
            counts[f"{prefix}refused"] = self.refused
        if self.waiting:
            counts[f"{prefix}waiting"] = self.waiting
        if self.exceptions:
            counts[f"{prefix}exceptions"] = len(self.exceptions)
        if self.digest is not None:
            counts[f"{prefix}digest"] = self.digest.digest
        return counts


# Above this many items the planner gets statistics on them (temp tables are
# never analysed by autovacuum).
_ANALYZE_FROM = 2_000

_DUE = """
CREATE TEMP TABLE IF NOT EXISTS ledger_payable_due (
    payer text, item_id bigint, user_id text, amount numeric, credit_key text
) ON COMMIT DELETE ROWS;
DELETE FROM ledger_payable_due;
"""


def pay_items(payment: Payment) -> PaymentResult:
    """Pay every unpaid item ``payment`` names: one credit per credit key, each
    item tied to its credit. All or nothing for this funding account: a budget
    refusal pays nothing here and is returned (and logged, and recorded as a
    job exception of the asset, in the caller's words) rather than raised, so a
    caller paying several assets pays the others. Users held back are recorded
    as job exceptions too. Call it inside a job (``jobs.exceptions``). Runs in
    its own transaction, or in a savepoint of the caller's (whose commit then
    publishes the payment)."""
    asset = payment.funding.asset
    result = PaymentResult(asset=asset)
    names = sorted(p.name for p in payment.payers)
    now = clock.now()
    phases = _Phases()
    try:
        with transaction.atomic(), connection.cursor() as cursor:
            # The payer's lock before anything is read: a second payer of the
            # same items waits here, then reads them paid.
            for name in names:
                cursor.execute(
                    "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", [f"payout:{name}"]
                )
            cursor.execute(_DUE)
            cursor.execute(
                "INSERT INTO ledger_payable_due (payer, item_id, user_id, amount, credit_key)"  # noqa: S608 - the program's constant query
                f" SELECT i.* FROM ({payment.items_sql})"
                " AS i(payer, item_id, user_id, amount, credit_key)"
                " WHERE NOT EXISTS (SELECT 1 FROM ledger_paiditem p"
                "                   WHERE p.payer = i.payer AND p.item_id = i.item_id)",
                payment.params,
            )
            due = cursor.rowcount
            phases.done("chosen")
            if not due:
                return result
            if due >= _ANALYZE_FROM:
                cursor.execute("ANALYZE ledger_payable_due")
            cursor.execute("SELECT DISTINCT payer FROM ledger_payable_due")
            strangers = {row[0] for row in cursor.fetchall()} - set(names)
            if strangers:
                raise ValueError(f"items of {sorted(strangers)} offered with payers {names}")
            credits = _credits(cursor, payment, result)
            credits = _without_taken_keys(cursor, credits, result)
            phases.done("summed")
            # The funding row is locked from here to the commit.
            pool = reserve_funding(payment.funding, Decimal(0))
            if payment.hold_back_outliers:
                credits = _within_pool(credits, pool, result)
            if not credits:
                return result
            with localcontext(EXACT):
                total = sum((c.amount for c in credits), Decimal(0))
            locked = reserve_funding(pool, total)
            report = post_user_credits(
                UserCredit(
                    idempotency_key=c.key,
                    kind=c.kind,
                    funding_account=locked,
                    user_id=c.user_id,
                    amount=c.amount,
                    user_kind=payment.user_kind,
                    cause={**payment.cause, "items": c.items},
                    expires_at=payment.expires_at,
                    memo=payment.memo,
                )
                for c in credits
            )
            phases.done("posted")
            if report.posted != len(credits):
                # Under the payer's lock with every key checked: cannot happen
                # unless something pays outside this path. Pay nothing.
                raise RuntimeError(
                    f"{len(credits) - report.posted} credit keys were taken meanwhile; nothing paid"
                )
            # ledger_credit_fresh holds this call's credits with their
            # transaction ids (see post_user_credits).
            cursor.execute(
                """
                INSERT INTO ledger_paiditem (payer, item_id, amount, transaction_id, user_id, paid_at)
                SELECT d.payer, d.item_id, d.amount, f.tx_id, d.user_id, %s
                FROM ledger_payable_due d JOIN ledger_credit_fresh f
                  ON f.idempotency_key = d.credit_key
                """,
                [now],
            )
            result.items = cursor.rowcount
            if result.items != sum(c.items for c in credits):
                raise RuntimeError("paid items do not match the credits posted; nothing paid")
            phases.done("tied")
            cursor.execute("SELECT min(tx_id), max(tx_id) FROM ledger_credit_fresh")
            first, last = cursor.fetchone()
            result.digest = digests.record_payment(
                payment,
                credits,
                items=result.items,
                total=total,
                transactions=(first, last),
                now=now,
            )
            phases.done("digested")
            result.credits = credits
            result.amount = total
            logger.info(
                "paid %s items of %s in %s credits from %s (%s)",
                result.items,
                "/".join(names),
                len(credits),
                payment.funding.code,
                phases,
            )
    except InsufficientFunds as short:
        result.refused = payment.refusal(short.needed, short.available)
        logger.error("payment refused: %s", result.refused)
        record_exception(scope=f"asset {asset}", reason=result.refused, detail=payment.funding.code)
    for user_id, reason in result.exceptions:
        record_exception(
            user_id=user_id, scope=f"asset {asset}", reason=reason, detail=payment.funding.code
        )
    return result


class _Phases:
    """How long each step of a payment took, for its log line."""

    def __init__(self) -> None:
        self.last = time.monotonic()
        self.seconds: dict[str, float] = {}

    def done(self, phase: str) -> None:
        now = time.monotonic()
        self.seconds[phase] = now - self.last
        self.last = now

    def __str__(self) -> str:
        return ", ".join(f"{phase} {seconds:.2f} s" for phase, seconds in self.seconds.items())


def _credits(cursor: Any, payment: Payment, result: PaymentResult) -> list[Credit]:
    """One credit per (user, key): the sum of its items (in SQL, exactly),
    rounded down once."""
    kinds = {p.name: p.credit_kind for p in payment.payers}
    by_payer: dict[str, dict[str, Decimal]] = {}
    if len(kinds) > 1:
        # What each kind of item adds to each credit (a referral payout records it).
        cursor.execute(
            "SELECT credit_key, payer, sum(amount) FROM ledger_payable_due GROUP BY 1, 2"
        )
        for key, payer, owed in cursor.fetchall():
            by_payer.setdefault(key, {})[payer] = owed
    cursor.execute(
        "SELECT user_id, credit_key, min(payer), max(payer), sum(amount), count(*)"
        " FROM ledger_payable_due GROUP BY user_id, credit_key ORDER BY user_id, credit_key"
    )
    credits = []
    for user_id, key, first, last, owed, items in cursor.fetchall():
        if kinds[first] != kinds[last]:
            raise ValueError(f"credit {key} would pay items of two kinds of credit")
        amount = round_payout(owed)
        if not fits_amount(amount):
            result.exceptions.append(
                (
                    user_id,
                    f"a credit of {for_people(amount, payment.funding.asset)} exceeds what"
                    " the ledger can hold; not paid, the items stay owed",
                )
            )
            continue
        if amount <= 0:
            # Less than the asset's smallest unit: the items stay owed and are
            # summed with the user's next ones.
            continue
        credits.append(
            Credit(
                user_id, key, kinds[first], owed, amount, items, by_payer.get(key, {first: owed})
            )
        )
    return credits


def _within_pool(credits: list[Credit], pool: Account, result: PaymentResult) -> list[Credit]:
    """One user's claim never blocks everyone: when credits that each alone
    exceed all the funding account holds are what stands between the others
    and their payment, they are left out as those users' exceptions (their
    items stay owed, for ops to look at) and the others are paid. Otherwise
    the payment stays all or nothing (an underfunded pool refuses it whole)."""
    outliers = [c for c in credits if c.amount > pool.balance]
    rest = [c for c in credits if c.amount <= pool.balance]
    with localcontext(EXACT):
        rest_total = sum((c.amount for c in rest), Decimal(0))
    if not outliers or not rest or rest_total > pool.balance:
        return credits
    for credit in outliers:
        result.exceptions.append(
            (
                credit.user_id,
                f"a credit of {for_people(credit.amount, pool.asset)} alone exceeds all"
                f" that {pool.code} holds ({for_people(pool.balance)}); not paid, the items"
                " stay owed",
            )
        )
    return rest


def _without_taken_keys(cursor: Any, credits: list[Credit], result: PaymentResult) -> list[Credit]:
    """Credits whose key is free. A taken key means this key (say, this day)
    already paid the user: their newer items wait for the next key."""
    cursor.execute(
        "SELECT idempotency_key FROM ledger_ledgertransaction WHERE idempotency_key = ANY(%s)",
        [[c.key for c in credits]],
    )
    taken = {row[0] for row in cursor.fetchall()}
    result.waiting = len(taken)
    return [c for c in credits if c.key not in taken] if taken else credits


def paid_item_ids(payer: Payer, item_ids: list[int]) -> set[int]:
    """Which of these items are paid."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT item_id FROM ledger_paiditem WHERE payer = %s AND item_id = ANY(%s)",
            [payer.name, item_ids],
        )
        return {row[0] for row in cursor.fetchall()}
