"""Double-entry bookkeeping: the only code that writes transactions and postings.

Two entry points:

- :func:`post_transaction` for one movement with explicit legs (funding a
  program, a correction that reverses an earlier transaction);
- :func:`post_user_credits` for the jobs' hot path: any number of credits to
  users from one or a few funding accounts, staged with COPY and posted with a
  few set-based statements, in one database transaction.

Both are idempotent by ``idempotency_key``; both let the database refuse
overspending (the CHECK on funding balances, see ``Account``), so a refusal is
all-or-nothing and never silent: :class:`InsufficientFunds` names the account.
Every credit to a user also writes its payout instruction (the outbox).
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from itertools import islice
from typing import Any

import orjson
from django.db import IntegrityError, connection, transaction

from access.errors import DomainError
from config import clock
from ledger.models import Account, AccountKind, LedgerTransaction, UserAccountKind
from ledger.money import for_people, round_payout

TREASURY_PROGRAM = "treasury"


class InsufficientFunds(DomainError):
    """A funding account cannot cover what was asked of it; nothing was posted."""

    code = "insufficient_funds"

    def __init__(self, account_code: str, needed: Decimal, available: Decimal) -> None:
        self.account_code = account_code
        self.needed = needed
        self.available = available
        super().__init__(
            f"funding account {account_code} holds {for_people(available)} but"
            f" {for_people(needed)} was needed;"
            " nothing was posted"
        )


class UnbalancedTransaction(ValueError):
    """Postings of a transaction do not sum to zero in some asset."""


# --- accounts -----------------------------------------------------------------


def funding_account_code(program: str, asset: str) -> str:
    return f"funding:{program}:{asset}"


def user_account_code(user_id: str, kind: str, asset: str) -> str:
    return f"user:{user_id}:{kind}:{asset}"


def treasury_account_code(asset: str) -> str:
    return f"external:{TREASURY_PROGRAM}:{asset}"


def _account(code: str, **fields: Any) -> Account:
    account, _ = Account.objects.get_or_create(
        code=code, defaults={**fields, "created_at": clock.now()}
    )
    return account


def open_funding_account(*, program: str, asset: str) -> Account:
    """The funding account of a program in one asset (created on first use)."""
    return _account(
        funding_account_code(program, asset),
        kind=AccountKind.FUNDING,
        asset=asset,
        program=program,
    )


def treasury_account(asset: str) -> Account:
    """The exchange's treasury: the outside world that funds programs."""
    return _account(
        treasury_account_code(asset),
        kind=AccountKind.EXTERNAL,
        asset=asset,
        program=TREASURY_PROGRAM,
    )


def user_account(*, user_id: str, kind: str, asset: str) -> Account:
    return _account(
        user_account_code(user_id, kind, asset),
        kind=AccountKind.USER,
        asset=asset,
        user_id=user_id,
        user_kind=kind,
    )


# --- one transaction ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Leg:
    account: Account
    amount: Decimal
    # For user credits: when the credit stops being usable (Futures bonuses).
    expires_at: dt.datetime | None = None


@dataclass(slots=True)
class Posted:
    transaction: LedgerTransaction
    created: bool


def post_transaction(
    *,
    idempotency_key: str,
    kind: str,
    legs: Sequence[Leg],
    cause: dict[str, Any],
    memo: str = "",
) -> Posted:
    """Post one balanced transaction, or find the one already posted under this key."""
    if len(legs) < 2:
        raise UnbalancedTransaction("a transaction needs at least two postings")
    totals: dict[str, Decimal] = defaultdict(Decimal)
    for leg in legs:
        if leg.amount == 0:
            raise UnbalancedTransaction("a posting of zero moves nothing")
        totals[leg.account.asset] += leg.amount
    unbalanced = {asset: total for asset, total in totals.items() if total != 0}
    if unbalanced:
        raise UnbalancedTransaction(f"postings do not sum to zero: {unbalanced}")

    now = clock.now()
    with transaction.atomic():
        tx, created = LedgerTransaction.objects.get_or_create(
            idempotency_key=idempotency_key,
            defaults={"kind": kind, "posted_at": now, "cause": cause, "memo": memo},
        )
        if not created:
            return Posted(tx, created=False)
        deltas = _sum_by_account(legs)
        with connection.cursor() as cursor:
            _lock_accounts(cursor, deltas)
            _apply_balances(deltas, cursor=cursor)
            posting_ids = _next_posting_ids(cursor, len(legs))
        _copy_postings(
            posting_ids,
            [tx.pk] * len(legs),
            [leg.account.pk for leg in legs],
            [leg.account.asset for leg in legs],
            [leg.amount for leg in legs],
            now,
        )
        _insert_payouts(
            [
                _PayoutRow(
                    transaction_id=tx.pk,
                    posting_id=posting_id,
                    idempotency_key=payout_key(
                        idempotency_key, leg.account.user_kind, leg.account.asset
                    ),
                    user_id=leg.account.user_id,
                    account_kind=leg.account.user_kind,
                    asset=leg.account.asset,
                    amount=leg.amount,
                    kind=kind,
                    expires_at=leg.expires_at,
                )
                for leg, posting_id in zip(legs, posting_ids, strict=True)
                if leg.account.kind == AccountKind.USER and leg.amount > 0
            ],
            now,
        )
    return Posted(tx, created=True)


def _sum_by_account(legs: Sequence[Leg]) -> dict[int, Decimal]:
    """Balance changes of the accounts whose balance is kept (not user accounts)."""
    totals: dict[int, Decimal] = defaultdict(Decimal)
    for leg in legs:
        if leg.account.kind != AccountKind.USER:
            totals[leg.account.pk] += leg.amount
    return totals


def _next_posting_ids(cursor: Any, count: int) -> list[int]:
    # Ids drawn up front let postings go in with COPY and still be referenced
    # by their payout instructions.
    cursor.execute(
        "SELECT nextval(pg_get_serial_sequence('ledger_posting', 'id'))"
        " FROM generate_series(1, %s)",
        [count],
    )
    return [row[0] for row in cursor.fetchall()]


# --- many user credits -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class UserCredit:
    """A credit to a user's account from a funding account."""

    idempotency_key: str
    kind: str
    funding_account: Account
    user_id: str
    amount: Decimal
    user_kind: str = UserAccountKind.SPOT
    cause: dict[str, Any] = field(default_factory=dict)
    expires_at: dt.datetime | None = None
    memo: str = ""


@dataclass(slots=True)
class CreditReport:
    posted: int = 0
    duplicates: int = 0
    amount_by_asset: dict[str, Decimal] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class _PayoutRow:
    transaction_id: int
    posting_id: int
    idempotency_key: str
    user_id: str
    account_kind: str
    asset: str
    amount: Decimal
    kind: str
    expires_at: dt.datetime | None


_STAGING = """
CREATE TEMP TABLE IF NOT EXISTS ledger_credit_staging (
    ord bigint, idempotency_key text, kind text, funding_account_id bigint, asset text,
    user_id text, user_kind text, user_code text, payout_key text, amount numeric,
    cause text, expires_at timestamptz, memo text
) ON COMMIT DELETE ROWS;
CREATE TEMP TABLE IF NOT EXISTS ledger_credit_fresh (
    tx_id bigint, idempotency_key text, kind text, funding_account_id bigint, asset text,
    user_id text, user_kind text, user_code text, payout_key text, amount numeric,
    expires_at timestamptz
) ON COMMIT DELETE ROWS;
-- Emptied at commit; emptied here too in case an earlier call of this transaction used them.
DELETE FROM ledger_credit_staging;
DELETE FROM ledger_credit_fresh;
"""
# Above this many staged credits the planner gets statistics on them (temp
# tables are never analysed by autovacuum): hash joins instead of a guess.
_ANALYZE_FROM = 2_000


def post_user_credits(credits: Iterable[UserCredit]) -> CreditReport:
    """Post many user credits at once: each its own transaction and idempotency key.

    The credits are streamed (COPY) into a temporary staging table and posted
    with a few set-based statements, so any number of them takes bounded
    memory here. All-or-nothing: if any funding account would go below zero,
    nothing is posted and :class:`InsufficientFunds` is raised. Keys already
    posted (a rerun), or repeated in the input, are skipped and counted as
    duplicates.
    """
    report = CreditReport()
    now = clock.now()
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(_STAGING)
        staged = _stage(credits)
        if not staged:
            return report
        if staged >= _ANALYZE_FROM:
            cursor.execute("ANALYZE ledger_credit_staging")
        params = {"now": now}
        cursor.execute(
            """
            INSERT INTO ledger_account (code, kind, asset, program, user_id, user_kind, balance,
                created_at)
            SELECT DISTINCT s.user_code, 'user', s.asset, '', s.user_id, s.user_kind, 0, %(now)s
            FROM ledger_credit_staging s
            WHERE NOT EXISTS (SELECT 1 FROM ledger_account a WHERE a.code = s.user_code)
            ORDER BY s.user_code
            ON CONFLICT (code) DO NOTHING
            """,
            params,
        )
        if cursor.rowcount >= _ANALYZE_FROM:
            # So many new accounts that the statistics are stale: the join below
            # would otherwise be planned as if the table were nearly empty.
            cursor.execute("ANALYZE ledger_account")
        # Keys in sorted order: two runs sharing keys insert them in the same
        # order, so they queue on each other instead of deadlocking.
        cursor.execute(
            """
            WITH firsts AS (
                SELECT DISTINCT ON (idempotency_key) * FROM ledger_credit_staging
                ORDER BY idempotency_key, ord
            ),
            created AS (
                INSERT INTO ledger_ledgertransaction (idempotency_key, kind, posted_at, cause, memo)
                SELECT idempotency_key, kind, %(now)s, cause::jsonb, memo FROM firsts
                ORDER BY idempotency_key
                ON CONFLICT (idempotency_key) DO NOTHING
                RETURNING id, idempotency_key
            )
            INSERT INTO ledger_credit_fresh
            SELECT c.id, f.idempotency_key, f.kind, f.funding_account_id, f.asset, f.user_id,
                f.user_kind, f.user_code, f.payout_key, f.amount, f.expires_at
            FROM created c JOIN firsts f ON f.idempotency_key = c.idempotency_key
            """,
            params,
        )
        posted = cursor.rowcount
        report.duplicates = staged - posted
        if not posted:
            return report
        if posted >= _ANALYZE_FROM:
            cursor.execute("ANALYZE ledger_credit_fresh")
        cursor.execute(
            "SELECT funding_account_id, asset, sum(amount) FROM ledger_credit_fresh"
            " GROUP BY funding_account_id, asset"
        )
        # Only funding balances are kept (see Account): one row to lock and
        # update per funding account, however many users the batch pays.
        deltas: dict[int, Decimal] = {}
        for account_id, asset, total in cursor.fetchall():
            deltas[account_id] = -total
            report.amount_by_asset[asset] = report.amount_by_asset.get(asset, Decimal(0)) + total
        _lock_accounts(cursor, deltas)
        _apply_balances(deltas, cursor=cursor)
        # Both legs of every transaction in one statement (the balance check
        # is per statement), and the user leg's payout instruction with it.
        cursor.execute(
            """
            WITH legs AS (
                INSERT INTO ledger_posting (transaction_id, account_id, asset, amount, posted_at)
                SELECT f.tx_id, f.funding_account_id, f.asset, -f.amount, %(now)s
                FROM ledger_credit_fresh f
                UNION ALL
                SELECT f.tx_id, a.id, f.asset, f.amount, %(now)s
                FROM ledger_credit_fresh f JOIN ledger_account a ON a.code = f.user_code
                RETURNING id, transaction_id, amount
            )
            INSERT INTO ledger_payoutinstruction (transaction_id, posting_id, idempotency_key,
                user_id, account_kind, asset, amount, kind, expires_at, created_at, acked_by)
            SELECT f.tx_id, l.id, f.payout_key, f.user_id, f.user_kind, f.asset, f.amount, f.kind,
                f.expires_at, %(now)s, ''
            FROM legs l JOIN ledger_credit_fresh f ON f.tx_id = l.transaction_id
            WHERE l.amount > 0
            """,
            params,
        )
        report.posted = posted
    return report


def _stage(credits: Iterable[UserCredit], chunk: int = 10_000) -> int:
    """COPY the credits into the staging table, checking each; returns how many.

    Taken from the iterable a chunk at a time, outside the COPY: a caller's
    generator may itself read the database on this connection."""
    raw = connection.connection
    assert raw is not None
    count = 0
    pending = iter(credits)
    while rows := [_staging_row(count + n + 1, c) for n, c in enumerate(islice(pending, chunk))]:
        with (
            raw.cursor() as cursor,
            cursor.copy(
                "COPY ledger_credit_staging (ord, idempotency_key, kind, funding_account_id, asset,"
                " user_id, user_kind, user_code, payout_key, amount, cause, expires_at, memo)"
                " FROM STDIN"
            ) as copy,
        ):
            for row in rows:
                copy.write_row(row)
        count += len(rows)
    return count


def _staging_row(ord_: int, credit: UserCredit) -> tuple[Any, ...]:
    if credit.amount <= 0:
        raise ValueError(f"credit {credit.idempotency_key}: amount must be > 0")
    if credit.amount != round_payout(credit.amount):
        raise ValueError(
            f"credit {credit.idempotency_key}: {credit.amount} is not rounded down to"
            " the asset's precision; round the final amount once with round_payout"
        )
    source = credit.funding_account
    if source.kind != AccountKind.FUNDING:
        raise ValueError(f"credit {credit.idempotency_key}: source is not a funding account")
    return (
        ord_,
        credit.idempotency_key,
        credit.kind,
        source.pk,
        source.asset,
        credit.user_id,
        credit.user_kind,
        user_account_code(credit.user_id, credit.user_kind, source.asset),
        payout_key(credit.idempotency_key, credit.user_kind, source.asset),
        credit.amount,
        _cause_json(credit.cause),
        credit.expires_at,
        credit.memo,
    )


def payout_key(idempotency_key: str, user_kind: str, asset: str) -> str:
    """The key of a credit's payout instruction (what the wallet service dedupes on)."""
    return f"{idempotency_key}:{user_kind}:{asset}"


def reserve_funding(account: Account, needed: Decimal) -> Account:
    """Lock a funding account until the transaction ends and check it covers
    ``needed`` in full: a payout run pays everything or nothing. Raises
    :class:`InsufficientFunds` before anything is posted."""
    locked = Account.objects.select_for_update().get(pk=account.pk)
    if needed > locked.balance:
        raise InsufficientFunds(locked.code, needed, locked.balance)
    return locked


def _cause_json(cause: dict[str, Any]) -> str:
    return orjson.dumps(cause, default=str).decode()


def _lock_accounts(cursor: Any, deltas: dict[int, Decimal]) -> None:
    # Row locks in id order: concurrent batches over the same accounts queue,
    # never deadlock; the funding account's CHECK is then evaluated on the
    # balance every earlier batch left.
    cursor.execute(
        "SELECT id FROM ledger_account WHERE id = ANY(%s) ORDER BY id FOR UPDATE",
        [sorted(deltas)],
    )


def _apply_balances(deltas: dict[int, Decimal], cursor: Any | None = None) -> None:
    ids = sorted(deltas)
    sql = """
        UPDATE ledger_account a SET balance = a.balance + d.delta
        FROM unnest(%s::bigint[], %s::numeric[]) AS d(id, delta) WHERE a.id = d.id
    """
    params: list[Any] = [ids, [deltas[i] for i in ids]]
    try:
        with transaction.atomic():
            if cursor is None:
                with connection.cursor() as own:
                    own.execute(sql, params)
            else:
                cursor.execute(sql, params)
    except IntegrityError as exc:
        if "funding_account_never_negative" not in str(exc):
            raise
        _raise_insufficient(deltas)


def _raise_insufficient(deltas: dict[int, Decimal]) -> None:
    for account in Account.objects.filter(pk__in=list(deltas), kind=AccountKind.FUNDING):
        if account.balance + deltas[account.pk] < 0:
            raise InsufficientFunds(account.code, -deltas[account.pk], account.balance)
    raise InsufficientFunds("(unknown)", Decimal(0), Decimal(0))


def _copy_postings(
    ids: list[int],
    tx_ids: list[int],
    account_ids: list[int],
    assets: list[str],
    amounts: list[Decimal],
    posted_at: dt.datetime,
) -> None:
    raw = connection.connection
    assert raw is not None
    with (
        raw.cursor() as cursor,
        cursor.copy(
            "COPY ledger_posting (id, transaction_id, account_id, asset, amount, posted_at) FROM STDIN"
        ) as copy,
    ):
        for row in zip(ids, tx_ids, account_ids, assets, amounts, strict=True):
            copy.write_row((*row, posted_at))


def _insert_payouts(rows: list[_PayoutRow], now: dt.datetime) -> None:
    if not rows:
        return
    raw = connection.connection
    assert raw is not None
    with (
        raw.cursor() as cursor,
        cursor.copy(
            "COPY ledger_payoutinstruction (transaction_id, posting_id, idempotency_key, user_id,"
            " account_kind, asset, amount, kind, expires_at, created_at, acked_by) FROM STDIN"
        ) as copy,
    ):
        for row in rows:
            copy.write_row(
                (
                    row.transaction_id,
                    row.posting_id,
                    row.idempotency_key,
                    row.user_id,
                    row.account_kind,
                    row.asset,
                    row.amount,
                    row.kind,
                    row.expires_at,
                    now,
                    "",
                )
            )


# --- funding -----------------------------------------------------------------------


def fund_account(
    *, account: Account, amount: Decimal, idempotency_key: str, by: str, note: str = ""
) -> Posted:
    """Move money from the treasury into a program's funding account (ops action).

    Recorded twice on purpose: as a ledger transaction (the money) and as a
    ``ledger.account_funded`` domain event (who did it, when and why).
    """
    from ledger.event_store import DomainEvent, append_domain_event

    if account.kind != AccountKind.FUNDING:
        raise ValueError(f"{account.code} is not a funding account")
    if amount <= 0:
        raise ValueError("a top-up must be > 0")
    # One instant for the transaction and its event (replay performs the
    # top-up again at the event's instant and must post the same rows).
    with clock.pinned(clock.now()), transaction.atomic():
        posted = post_transaction(
            idempotency_key=f"funding:{idempotency_key}",
            kind="funding.top_up",
            legs=[Leg(treasury_account(account.asset), -amount), Leg(account, amount)],
            cause={"by": by, "note": note, "top_up": idempotency_key},
            memo=note[:255],
        )
        if posted.created:
            append_domain_event(
                DomainEvent(
                    event_id=f"ledger.account_funded:{idempotency_key}",
                    type="ledger.account_funded",
                    occurred_at=clock.now(),
                    data={
                        "account": account.code,
                        "asset": account.asset,
                        "amount": str(amount),
                        "by": by,
                        "note": note,
                        "transaction_id": posted.transaction.pk,
                    },
                )
            )
    return posted
