"""The database itself refuses UPDATE and DELETE of events, transactions and
postings, and checks what postings and payout instructions refer to."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.db import DatabaseError, connection, transaction

from ledger.bookkeeping import (
    Leg,
    UserCredit,
    open_funding_account,
    post_transaction,
    post_user_credits,
    treasury_account,
)
from ledger.ingestion import ingest
from tests import events

pytestmark = pytest.mark.django_db


@pytest.fixture
def one_of_each() -> None:
    ingest([events.fill("u_1")], source="test")
    account = open_funding_account(program="test", asset="USDT")
    post_transaction(
        idempotency_key="k1",
        kind="funding.top_up",
        legs=[Leg(treasury_account("USDT"), Decimal("-5")), Leg(account, Decimal("5"))],
        cause={},
    )


@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE ledger_event SET user_id = 'someone_else'",
        "DELETE FROM ledger_event",
        "UPDATE ledger_ledgertransaction SET kind = 'other'",
        "DELETE FROM ledger_ledgertransaction",
        "UPDATE ledger_posting SET amount = amount * 2",
        "DELETE FROM ledger_posting",
    ],
)
def test_update_and_delete_are_refused(one_of_each: None, sql: str) -> None:
    # DELETE is not even granted to the application role (access.database_roles).
    with (
        pytest.raises(DatabaseError, match=r"append-only|permission denied"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute(sql)


def test_an_unbalanced_posting_is_refused(one_of_each: None) -> None:
    with (
        pytest.raises(DatabaseError, match="unbalanced"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute(
            "INSERT INTO ledger_posting (transaction_id, account_id, asset, amount, posted_at)"
            " SELECT transaction_id, account_id, asset, 1, posted_at FROM ledger_posting LIMIT 1"
        )


@pytest.fixture
def one_credit(one_of_each: None) -> None:
    account = open_funding_account(program="test", asset="USDT")
    post_user_credits(
        [UserCredit("c1", "test.credit", account, "u_1", Decimal("2"), cause={"why": "test"})]
    )


@pytest.mark.parametrize(
    ("sql", "error"),
    [
        # A balanced pair naming a transaction that does not exist.
        (
            "INSERT INTO ledger_posting (transaction_id, account_id, asset, amount, posted_at)"
            " SELECT 999999, account_id, asset, amount, posted_at FROM ledger_posting",
            "transaction 999999, which does not exist",
        ),
        # A balanced pair naming an account that does not exist.
        (
            "INSERT INTO ledger_posting (transaction_id, account_id, asset, amount, posted_at)"
            " SELECT transaction_id, 999999, asset, amount, posted_at FROM ledger_posting"
            " WHERE transaction_id = (SELECT min(transaction_id) FROM ledger_posting)",
            "account 999999 in USDT, which does not exist",
        ),
        # A payout instruction pointing at the funding leg instead of the user's.
        (
            "INSERT INTO ledger_payoutinstruction (transaction_id, posting_id, idempotency_key,"
            " user_id, account_kind, asset, amount, kind, created_at, acked_by)"
            " SELECT p.transaction_id, p.id, 'forged', 'u_1', 'spot', 'USDT', 2, 'x', now(), ''"
            " FROM ledger_posting p WHERE p.amount = -2",
            "does not match a user posting",
        ),
        ("UPDATE ledger_payoutinstruction SET amount = 3", "only its delivery fields"),
        ("UPDATE ledger_payoutinstruction SET user_id = 'u_2'", "only its delivery fields"),
        ("DELETE FROM ledger_payoutinstruction", r"append-only|permission denied"),
        ("DELETE FROM ledger_account", r"append-only|permission denied"),
    ],
)
def test_references_and_payouts_are_guarded_by_the_database(
    one_credit: None, sql: str, error: str
) -> None:
    with (
        pytest.raises(DatabaseError, match=error),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute(sql)


def test_delivery_fields_of_a_payout_may_change(one_credit: None) -> None:
    with connection.cursor() as cursor:
        cursor.execute("UPDATE ledger_payoutinstruction SET published_at = now(), acked_by = 'w'")
        assert cursor.rowcount == 1
