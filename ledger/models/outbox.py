from django.db import models
from django.db.models import Q

from ledger.money import AMOUNT_DECIMALS, AMOUNT_DIGITS, for_people


class PayoutInstruction(models.Model):
    """The transactional outbox: every credit to a user, for the wallet service.

    Written in the same database transaction as the posting it mirrors, so a
    credit exists if and only if its instruction does. The wallet service reads
    pending instructions (REST, or the payout Redis Stream that the relay
    publishes to) and acknowledges each once applied; it applies each
    ``idempotency_key`` at most once.
    """

    # Not indexed: instructions are found by id, user or posting, never by transaction.
    # Checked per INSERT statement by a trigger (ledger migration 0006): the
    # posting exists and belongs to this transaction.
    transaction = models.ForeignKey(
        "ledger.LedgerTransaction",
        on_delete=models.PROTECT,
        related_name="payouts",
        db_index=False,
        db_constraint=False,
    )
    posting = models.OneToOneField(
        "ledger.Posting", on_delete=models.PROTECT, related_name="payout", db_constraint=False
    )
    # Unique through a constraint, not unique=True: no extra LIKE index to keep
    # up on the hot insert path.
    idempotency_key = models.CharField(max_length=220)
    user_id = models.CharField(max_length=64)
    account_kind = models.CharField(max_length=16)
    asset = models.CharField(max_length=16)
    amount = models.DecimalField(max_digits=AMOUNT_DIGITS, decimal_places=AMOUNT_DECIMALS)
    kind = models.CharField(max_length=64)
    # Futures bonuses expire (e.g. 14 days after issuance); spot credits do not.
    expires_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField()
    published_at = models.DateTimeField(null=True, blank=True)
    acked_at = models.DateTimeField(null=True, blank=True)
    acked_by = models.CharField(max_length=100, blank=True, default="")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["idempotency_key"], name="payout_idempotency_key")
        ]
        indexes = [
            models.Index(fields=["id"], condition=Q(acked_at__isnull=True), name="payout_pending"),
            models.Index(
                fields=["id"], condition=Q(published_at__isnull=True), name="payout_unpublished"
            ),
            models.Index(fields=["user_id", "created_at"], name="payout_user_time"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {for_people(self.amount, self.asset)} -> {self.user_id}"
