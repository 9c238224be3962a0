"""The database refuses money outside the posting path, whoever holds the
connection: a balance changes only with its postings (checked at COMMIT),
postings go only into a transaction made in the same database transaction,
accounts open empty, quarantined inputs are kept. Each attack is made on a
connection of its own, as the application role, against committed history."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

import psycopg
import pytest
from psycopg import errors

from ledger.bookkeeping import (
    UserCredit,
    fund_account,
    open_funding_account,
    post_user_credits,
)
from ledger.ingestion import discard_quarantined, ingest
from ledger.models import Account, LedgerTransaction, QuarantinedInput
from ledger.verification import verify_ledger
from tests import events

pytestmark = pytest.mark.django_db(transaction=True)

Connect = Callable[[str], psycopg.Connection[Any]]

FORGED_PAIR = """
    INSERT INTO ledger_posting (transaction_id, account_id, asset, amount, posted_at)
    SELECT {transaction}, account_id, asset, amount, posted_at FROM ledger_posting
    WHERE transaction_id = %(top_up)s
"""


@pytest.fixture
def funded() -> Account:
    """Committed history: an event, a quarantined input, a top-up and a credit."""
    ingest([events.fill("u_1"), {"type": "nonsense"}], source="test")
    account = open_funding_account(program="test", asset="USDT")
    fund_account(account=account, amount=Decimal("100"), idempotency_key="top-up", by="test")
    post_user_credits([UserCredit("c1", "test.credit", account, "u_1", Decimal("2"))])
    return account


def _top_up() -> int:
    return LedgerTransaction.objects.get(idempotency_key="funding:top-up").pk


def _balance(account: Account) -> Decimal:
    account.refresh_from_db()
    return account.balance


def test_a_balance_changed_without_its_postings_is_refused_at_commit(
    funded: Account, connect_as: Connect
) -> None:
    app = connect_as("app")
    app.execute("UPDATE ledger_account SET balance = balance + 1000000 WHERE id = %s", [funded.pk])
    with pytest.raises(errors.CheckViolation, match="balance moved by 1000000"):
        app.commit()
    assert _balance(funded) == Decimal("98")


def test_postings_are_never_added_to_an_earlier_transaction(
    funded: Account, connect_as: Connect
) -> None:
    app = connect_as("app")
    # A balanced pair into the old top-up, with the balance moved to match.
    app.execute("UPDATE ledger_account SET balance = balance + 100 WHERE id = %s", [funded.pk])
    with pytest.raises(errors.RestrictViolation, match="not created in this database transaction"):
        app.execute(FORGED_PAIR.format(transaction="transaction_id"), {"top_up": _top_up()})
    app.rollback()
    assert _balance(funded) == Decimal("98")
    assert verify_ledger() == []


def test_postings_without_their_balance_change_are_refused_at_commit(
    funded: Account, connect_as: Connect
) -> None:
    app = connect_as("app")
    app.execute(
        "INSERT INTO ledger_ledgertransaction (idempotency_key, kind, posted_at, cause, memo)"
        " VALUES ('forged', 'funding.top_up', now(), '{}', '')"
    )
    app.execute(
        FORGED_PAIR.format(transaction="currval('ledger_ledgertransaction_id_seq')"),
        {"top_up": _top_up()},
    )
    with pytest.raises(errors.CheckViolation, match="balance moved by 0 but its postings"):
        app.commit()
    assert not LedgerTransaction.objects.filter(idempotency_key="forged").exists()


def test_a_balance_moved_with_its_postings_in_a_new_transaction_is_accepted(
    funded: Account, connect_as: Connect
) -> None:
    """The posting path itself, written by hand: the database cannot tell it from
    the bookkeeping's, and has no reason to. The postings go in under a
    savepoint, as the bookkeeping's may."""
    app = connect_as("app")
    app.execute(
        "INSERT INTO ledger_ledgertransaction (idempotency_key, kind, posted_at, cause, memo)"
        " VALUES ('by-hand', 'funding.top_up', now(), '{}', '')"
    )
    with app.transaction():  # a savepoint
        app.execute(
            FORGED_PAIR.format(transaction="currval('ledger_ledgertransaction_id_seq')"),
            {"top_up": _top_up()},
        )
    app.execute(
        "UPDATE ledger_account a SET balance = a.balance + p.amount FROM ledger_posting p"
        " WHERE p.transaction_id = currval('ledger_ledgertransaction_id_seq')"
        " AND p.account_id = a.id"
    )
    app.commit()
    assert _balance(funded) == Decimal("198")
    assert verify_ledger() == []


ACCOUNT_CHANGES = [
    (
        "INSERT INTO ledger_account (code, kind, asset, program, user_id, user_kind,"
        " balance, created_at) VALUES ('funding:x:USDT', 'funding', 'USDT', 'x', '', '',"
        " 5, now())",
        "cannot open with a balance",
    ),
    ("UPDATE ledger_account SET kind = 'external' WHERE kind = 'funding'", "only its balance"),
    ("UPDATE ledger_account SET asset = 'BTC' WHERE kind = 'funding'", "only its balance"),
    ("UPDATE ledger_account SET balance = 5 WHERE kind = 'user'", "keeps no balance"),
]


def test_accounts_open_empty_and_only_their_balance_changes(
    funded: Account, connect_as: Connect
) -> None:
    app = connect_as("app")
    for sql, error in ACCOUNT_CHANGES:
        with pytest.raises(psycopg.Error, match=error):
            app.execute(sql)
        app.rollback()


def test_a_temporary_table_does_not_stand_in_for_the_ledger(
    funded: Account, connect_as: Connect
) -> None:
    """The application role may make temporary tables, which are found before the
    real ones by name; the checks name their schema."""
    app = connect_as("app")
    app.execute("CREATE TEMP TABLE ledger_ledgertransaction (id bigint)")
    app.execute("INSERT INTO ledger_ledgertransaction VALUES (%s)", [_top_up()])
    with pytest.raises(errors.RestrictViolation, match="not created in this database transaction"):
        app.execute(FORGED_PAIR.format(transaction="transaction_id"), {"top_up": _top_up()})


def test_quarantined_inputs_are_kept(funded: Account, connect_as: Connect) -> None:
    entry = QuarantinedInput.objects.get()
    app = connect_as("app")
    app.autocommit = True
    with pytest.raises(errors.InsufficientPrivilege):
        app.execute("DELETE FROM ledger_quarantinedinput")
    with pytest.raises(errors.RestrictViolation, match="only its correction and resolution"):
        app.execute("UPDATE ledger_quarantinedinput SET reason = 'conflict'")
    # Open: ops correct the raw text.
    app.execute('UPDATE ledger_quarantinedinput SET raw = \'{"type": "still nonsense"}\'')
    discard_quarantined(entry, by="ops")
    with pytest.raises(errors.RestrictViolation, match="discarded: a resolved entry"):
        app.execute("UPDATE ledger_quarantinedinput SET status = 'open'")
    owner = connect_as("owner")
    with pytest.raises(errors.RestrictViolation, match="kept for good"):
        owner.execute("DELETE FROM ledger_quarantinedinput")
    entry.refresh_from_db()
    assert (entry.status, entry.raw) == ("discarded", '{"type": "still nonsense"}')


HISTORY_CHANGES = [
    ("UPDATE ledger_event SET user_id = 'u_2'", "append-only"),
    ("DELETE FROM ledger_event", "append-only"),
    ("UPDATE ledger_ledgertransaction SET kind = 'other'", "append-only"),
    ("DELETE FROM ledger_posting", "append-only"),
    ("UPDATE ledger_posting SET amount = amount * 2", "append-only"),
    ("UPDATE ledger_payoutinstruction SET amount = 3", "only its delivery fields"),
    ("DELETE FROM ledger_account", "append-only"),
    ("UPDATE ledger_account SET balance = balance + 1 WHERE kind = 'funding'", "moved by 1"),
]


def test_the_triggers_refuse_the_owner_too(funded: Account, connect_as: Connect) -> None:
    """The owner may TRUNCATE, or drop a trigger (migrations are its job), but a
    plain change of history is refused to it as to anyone."""
    owner = connect_as("owner")
    for sql, error in HISTORY_CHANGES:
        with pytest.raises(psycopg.Error, match=error):
            owner.execute(sql)
            owner.commit()
        owner.rollback()
    assert _balance(funded) == Decimal("98")
