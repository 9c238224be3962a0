"""The database itself refuses UPDATE and DELETE of events, transactions and postings."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.db import DatabaseError, connection, transaction

from ledger.bookkeeping import Leg, open_funding_account, post_transaction, treasury_account
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
    with (
        pytest.raises(DatabaseError, match="append-only"),
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
