from django.db import models
from django.db.models import Q

from ledger.money import AMOUNT_DECIMALS, AMOUNT_DIGITS, for_people


class AccountKind(models.TextChoices):
    FUNDING = "funding", "Funding (a program's budget)"
    USER = "user", "User"
    EXTERNAL = "external", "External (the exchange's treasury)"


class UserAccountKind(models.TextChoices):
    SPOT = "spot", "Spot"
    FUTURES_BONUS = "futures_bonus", "Futures bonus"


class Account(models.Model):
    """One ledger account in one asset.

    ``balance`` is kept for funding and external accounts: the sum of their
    postings, updated in the same transaction (``verify_ledger`` checks the two
    agree). It exists so that a CHECK constraint can make the database itself
    refuse any transaction that would take a funding account below zero: a
    concurrent debit waits on the row and then fails the check, so no race can
    overspend a budget. External accounts stand for the world outside the
    ledger (the treasury that funds programs) and may go negative.

    User accounts keep no balance (it stays 0): theirs is the sum of their
    postings (``selectors.balance_as_of``). Keeping it would add a row update
    per user to every payout batch for a number nothing guards.
    """

    code = models.CharField(max_length=200)
    kind = models.CharField(max_length=16, choices=AccountKind.choices)
    asset = models.CharField(max_length=16)
    # Funding accounts: the program that spends from it, e.g. "campaign:winter-2026".
    program = models.CharField(max_length=120, blank=True, default="")
    user_id = models.CharField(max_length=64, blank=True, default="")
    user_kind = models.CharField(
        max_length=16, choices=UserAccountKind.choices, blank=True, default=""
    )
    balance = models.DecimalField(
        max_digits=AMOUNT_DIGITS, decimal_places=AMOUNT_DECIMALS, default=0
    )
    created_at = models.DateTimeField()

    class Meta:
        permissions = [("fund_account", "Can fund a program's funding account")]
        constraints = [
            models.CheckConstraint(
                condition=~Q(kind="funding") | Q(balance__gte=0),
                name="funding_account_never_negative",
            ),
            models.UniqueConstraint(fields=["code"], name="account_code_unique"),
            models.CheckConstraint(
                condition=~Q(kind="user") | (~Q(user_id="") & ~Q(user_kind="")),
                name="user_account_names_user",
            ),
        ]
        indexes = [models.Index(fields=["user_id", "asset"], name="account_user_asset")]

    def __str__(self) -> str:
        return self.code


class LedgerTransaction(models.Model):
    """A movement of money: two or more postings summing to zero per asset.

    ``idempotency_key`` is derived from the cause (e.g.
    ``voucher-payout:2026-11-20:u_1:USDT``), so a job that is rerun, or crashes
    and is rerun, finds its transaction already there and pays nothing twice.
    """

    # Unique through a constraint, not unique=True: no extra LIKE index to keep
    # up on the hot insert path.
    idempotency_key = models.CharField(max_length=200)
    kind = models.CharField(max_length=64)
    posted_at = models.DateTimeField()
    # What caused it: event ids, job run, campaign, day ... for the auditor.
    cause = models.JSONField(default=dict)
    memo = models.CharField(max_length=255, blank=True, default="")

    class Meta:
        indexes = [models.Index(fields=["kind", "posted_at"], name="ledgertx_kind_time")]
        constraints = [
            models.UniqueConstraint(fields=["idempotency_key"], name="ledgertx_idempotency_key")
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.idempotency_key}"


class Posting(models.Model):
    """One leg of a transaction: a signed amount on one account (append-only)."""

    # References are checked once per INSERT statement by a trigger (migration
    # 0006), not row by row: a row-level foreign key locked the referenced
    # account and transaction for every posting of a payout run.
    transaction = models.ForeignKey(
        LedgerTransaction, on_delete=models.PROTECT, related_name="postings", db_constraint=False
    )
    # Indexed by posting_account_time below, whose first column serves lookups by account.
    account = models.ForeignKey(
        Account,
        on_delete=models.PROTECT,
        related_name="postings",
        db_index=False,
        db_constraint=False,
    )
    asset = models.CharField(max_length=16)
    amount = models.DecimalField(max_digits=AMOUNT_DIGITS, decimal_places=AMOUNT_DECIMALS)
    posted_at = models.DateTimeField()

    class Meta:
        indexes = [models.Index(fields=["account", "posted_at"], name="posting_account_time")]
        constraints = [models.CheckConstraint(condition=~Q(amount=0), name="posting_not_zero")]

    def __str__(self) -> str:
        return f"{self.account_id} {for_people(self.amount, self.asset)}"
