"""Double-entry: balanced, idempotent, never below zero, every credit in the outbox."""

from __future__ import annotations

import datetime as dt
import threading
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection, connections, transaction

from ledger.bookkeeping import (
    InsufficientFunds,
    Leg,
    UnbalancedTransaction,
    UserCredit,
    fund_account,
    open_funding_account,
    post_transaction,
    post_user_credits,
    user_account,
)
from ledger.models import Account, Event, LedgerTransaction, PayoutInstruction, Posting
from ledger.selectors import balance_as_of
from ledger.verification import verify_ledger


@pytest.fixture
def funded(db: None) -> Account:
    account = open_funding_account(program="campaign:test", asset="USDT")
    fund_account(account=account, amount=Decimal("1000"), idempotency_key="seed", by="finance")
    account.refresh_from_db()
    return account


def test_funding_is_a_balanced_transaction_and_an_event(funded: Account) -> None:
    assert funded.balance == Decimal("1000")
    tx = LedgerTransaction.objects.get(idempotency_key="funding:seed")
    assert sorted(p.amount for p in tx.postings.all()) == [Decimal("-1000"), Decimal("1000")]
    event = Event.objects.get(type="ledger.account_funded")
    assert event.data["by"] == "finance" and event.data["amount"] == "1000"
    again = fund_account(account=funded, amount=Decimal("1000"), idempotency_key="seed", by="x")
    assert again.created is False
    funded.refresh_from_db()
    assert funded.balance == Decimal("1000")
    assert verify_ledger() == []


def test_unbalanced_legs_are_refused(funded: Account) -> None:
    alice = user_account(user_id="alice", kind="spot", asset="USDT")
    with pytest.raises(UnbalancedTransaction):
        post_transaction(
            idempotency_key="bad",
            kind="test",
            legs=[Leg(funded, Decimal("-10")), Leg(alice, Decimal("9"))],
            cause={},
        )
    assert not LedgerTransaction.objects.filter(idempotency_key="bad").exists()


def test_user_credits_post_pay_out_and_are_idempotent(funded: Account) -> None:
    credits = [
        UserCredit(
            idempotency_key=f"reward:{user}",
            kind="bookkeeping.test_credit",
            funding_account=funded,
            user_id=user,
            amount=amount,
            user_kind="futures_bonus",
            cause={"campaign": "test"},
        )
        for user, amount in [
            ("alice", Decimal("12.5")),
            ("bob", Decimal("100")),
            ("carol", Decimal("0.00000001")),
        ]
    ]
    report = post_user_credits(credits + credits[:1])
    assert (report.posted, report.duplicates) == (3, 1)
    assert report.amount_by_asset == {"USDT": Decimal("112.50000001")}
    funded.refresh_from_db()
    assert funded.balance == Decimal("887.49999999")
    rerun = post_user_credits(credits)
    assert (rerun.posted, rerun.duplicates) == (0, 3)
    payouts = {p.user_id: p for p in PayoutInstruction.objects.all()}
    assert payouts["alice"].amount == Decimal("12.5")
    assert payouts["alice"].account_kind == "futures_bonus"
    assert payouts["alice"].idempotency_key == "reward:alice:futures_bonus:USDT"
    bob = Account.objects.get(code="user:bob:futures_bonus:USDT")
    assert balance_as_of(bob, dt.datetime(2100, 1, 1, tzinfo=dt.UTC)) == Decimal("100")
    assert verify_ledger() == []


def test_a_batch_that_would_overdraw_posts_nothing(funded: Account) -> None:
    credits = [
        UserCredit(
            idempotency_key=f"big:{i}",
            kind="test",
            funding_account=funded,
            user_id=f"u{i}",
            amount=Decimal("300"),
        )
        for i in range(4)
    ]
    with pytest.raises(InsufficientFunds) as refused:
        post_user_credits(credits)
    assert refused.value.account_code == "funding:campaign:test:USDT"
    assert refused.value.needed == Decimal("1200")
    assert refused.value.available == Decimal("1000")
    assert "nothing was posted" in str(refused.value)
    funded.refresh_from_db()
    assert funded.balance == Decimal("1000")
    assert not LedgerTransaction.objects.filter(idempotency_key__startswith="big:").exists()
    assert PayoutInstruction.objects.count() == 0


def test_amounts_must_be_rounded_down_once_by_the_caller(funded: Account) -> None:
    with pytest.raises(ValueError, match="round_payout"):
        post_user_credits(
            [
                UserCredit(
                    idempotency_key="r",
                    kind="t",
                    funding_account=funded,
                    user_id="u",
                    amount=Decimal("1.123456789"),
                )
            ]
        )


@pytest.mark.django_db(transaction=True)
def test_twenty_parallel_debits_against_ten_covered_give_ten_refusals() -> None:
    account = open_funding_account(program="campaign:race", asset="USDT")
    fund_account(account=account, amount=Decimal("100"), idempotency_key="race", by="t")
    results: list[str] = []
    lock = threading.Lock()
    start = threading.Barrier(20)

    def debit(number: int) -> None:
        try:
            start.wait()
            post_user_credits(
                [
                    UserCredit(
                        idempotency_key=f"race:{number}",
                        kind="test",
                        funding_account=account,
                        user_id=f"u{number}",
                        amount=Decimal("10"),
                    )
                ]
            )
            outcome = "paid"
        except InsufficientFunds:
            outcome = "refused"
        finally:
            connections.close_all()
        with lock:
            results.append(outcome)

    threads = [threading.Thread(target=debit, args=(n,)) for n in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == ["paid"] * 10 + ["refused"] * 10
    account.refresh_from_db()
    assert account.balance == Decimal("0")
    assert PayoutInstruction.objects.count() == 10
    assert verify_ledger() == []


def test_verify_ledger_reports_a_breach(funded: Account) -> None:
    call_command("verify_ledger")
    # A balance that no longer matches its postings, seen before the commit that
    # the database would refuse (tests/ledger/test_money_only_through_postings.py).
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(
                "UPDATE ledger_account SET balance = balance + 1 WHERE id = %s", [funded.pk]
            )
        assert [b.check for b in verify_ledger()] == ["balances_match_postings"]
        with pytest.raises(CommandError, match="breached"):
            call_command("verify_ledger")
        transaction.set_rollback(True)


def test_reversal_is_a_new_transaction(funded: Account) -> None:
    alice = user_account(user_id="alice", kind="spot", asset="USDT")
    post_transaction(
        idempotency_key="pay",
        kind="test",
        legs=[Leg(funded, Decimal("-5")), Leg(alice, Decimal("5"))],
        cause={},
    )
    post_transaction(
        idempotency_key="pay:reversal",
        kind="reversal",
        legs=[Leg(funded, Decimal("5")), Leg(alice, Decimal("-5"))],
        cause={"reverses": "pay"},
    )
    funded.refresh_from_db()
    later = dt.datetime(2100, 1, 1, tzinfo=dt.UTC)
    assert (funded.balance, balance_as_of(alice, later)) == (Decimal("1000"), Decimal("0"))
    assert Posting.objects.filter(account=alice).count() == 2
    assert verify_ledger() == []
