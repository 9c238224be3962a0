"""Which ledger transaction paid which payable item.

A payable item is a row some program owes money for: a voucher consumption, a
campaign reward, a referral commission, a day of Earn interest. ``PaidItem``
ties it to the credit that paid it, written in the same database transaction
as the credit (``ledger.payables.pay_items``). The unique constraint is what
makes "paid at most once" a property of the database rather than of the
jobs: a second payer, whatever its day key or schedule, cannot insert the
same (payer, item) again, so its whole transaction, credit included, fails.
Append-only, like the postings it points at.
"""

from __future__ import annotations

from django.db import models

from ledger.models.fields import amount_field, exact_sum_field


class PaidItem(models.Model):
    payer = models.CharField(
        max_length=40, help_text="The kind of item, e.g. voucher.consumption (ledger.payables)."
    )
    item_id = models.BigIntegerField(help_text="The item's id in its program's table.")
    # Exactly as the program owes it (a commission is a fee times a rate: more
    # than 18 decimals); the credit is the sum of its items rounded down once.
    amount = exact_sum_field(help_text="What the item was owed, before the credit's rounding.")
    # Checked per INSERT statement by a trigger (migration 0007), like postings'
    # references: a row-level foreign key would lock the transaction per item.
    transaction_id = models.BigIntegerField(help_text="The ledger transaction of the credit.")
    user_id = models.CharField(max_length=64)
    paid_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["payer", "item_id"], name="paiditem_once"),
        ]
        indexes = [models.Index(fields=["transaction_id"], name="paiditem_transaction")]

    def __str__(self) -> str:
        return f"{self.payer} #{self.item_id} paid by transaction {self.transaction_id}"


class PayoutDigest(models.Model):
    """What one payout paid, as one hash (``ledger.digests``).

    Recorded by ``pay_items`` in the database transaction of its credits, for
    every payment that paid something: sha256 over its credits sorted by
    idempotency key (key, user, account kind, asset, amount). The credits are
    the ledger transactions from ``first_transaction_id`` to
    ``last_transaction_id`` that pay items of ``payers`` (the payers' lock
    keeps any other payment of theirs out of that range), so the digest can be
    recomputed from the postings at any time and compared: by an auditor, or
    by a replay of the log into another database. Append-only.
    """

    recorded_at = models.DateTimeField()
    payers = models.CharField(max_length=200, help_text="The kinds of item paid, '/'-separated.")
    funding_account = models.CharField(max_length=200, help_text="The account's code.")
    asset = models.CharField(max_length=16)
    # The payment's cause as the program gave it (day, program, campaign, asset).
    cause = models.JSONField(default=dict)
    credits = models.IntegerField()
    items = models.IntegerField()
    total = amount_field(help_text="The sum of the credits.")
    first_transaction_id = models.BigIntegerField()
    last_transaction_id = models.BigIntegerField()
    digest = models.CharField(max_length=64)

    def __str__(self) -> str:
        return f"payout {self.pk} from {self.funding_account}: {self.digest[:12]}"
