"""Tables of the loss-coverage vouchers (RULES.md section 2).

``VoucherProgram`` and ``VoucherTemplate`` are configuration. ``Voucher`` is a
grant (each one also recorded as a ``voucher.granted`` event) with its running
``remaining`` amount. ``Consumption`` is the record of ``consume_vouchers``'
decisions: which order used which voucher for how much, and when it was paid.
Until it is paid a match follows its order's fills: a match that changes is
*released* (``released_at``, the row kept as history) and a new row records
the new match; a paid match is final; a risk measure cancels unpaid ones
(``cancelled_at``). ``PaidDay`` records which days a payout has paid, which
closes their matching (``vouchers.matching``).
"""

from __future__ import annotations

from decimal import Decimal

from django.db import models

from ledger.models.fields import amount_field, exact_sum_field
from ledger.money import for_people


class VoucherProgram(models.Model):
    slug = models.SlugField(max_length=80)
    title = models.CharField(max_length=200)
    asset = models.CharField(max_length=16, default="USDT")
    funding_program = models.CharField(
        max_length=120,
        help_text="The ledger program that pays compensation, e.g. vouchers:welcome.",
    )
    created_at = models.DateTimeField()
    budget_alert = models.TextField(blank=True, default="", editable=False)
    budget_alert_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["slug"], name="voucherprogram_slug_unique")]

    def __str__(self) -> str:
        return self.slug


class VoucherTemplate(models.Model):
    program = models.ForeignKey(VoucherProgram, on_delete=models.PROTECT, related_name="templates")
    code = models.SlugField(max_length=80)
    face_value = amount_field(help_text="The most the voucher pays back.")
    validity_days = models.PositiveIntegerField(
        null=True, blank=True, help_text="Valid this many days from arrival..."
    )
    valid_until = models.DateTimeField(
        null=True, blank=True, help_text="... or until this instant."
    )
    min_closing_amount = amount_field(
        null=True, blank=True, help_text="The order's closing notional must reach this."
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["program", "code"], name="vouchertemplate_unique"),
            models.CheckConstraint(
                condition=models.Q(validity_days__isnull=False)
                | models.Q(valid_until__isnull=False),
                name="vouchertemplate_has_validity",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.program_id}/{self.code}: {for_people(self.face_value)}"


class Voucher(models.Model):
    template = models.ForeignKey(VoucherTemplate, on_delete=models.PROTECT, related_name="vouchers")
    program = models.ForeignKey(VoucherProgram, on_delete=models.PROTECT, related_name="vouchers")
    user_id = models.CharField(max_length=64)
    face_value = amount_field()
    remaining = amount_field()
    min_closing_amount = amount_field(null=True, blank=True)
    arrived_at = models.DateTimeField()
    expires_at = models.DateTimeField()
    grant_key = models.CharField(max_length=200, help_text="Idempotency key of the grant.")
    source = models.CharField(max_length=120)
    voided_at = models.DateTimeField(null=True, blank=True)
    expired_at = models.DateTimeField(
        null=True, blank=True, help_text="When expire_vouchers recorded it expired with money left."
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["grant_key"], name="voucher_grant_key"),
            models.CheckConstraint(
                condition=models.Q(remaining__gte=0), name="voucher_remaining_not_negative"
            ),
        ]
        indexes = [
            models.Index(fields=["user_id", "arrived_at", "id"], name="voucher_user_arrival")
        ]

    def __str__(self) -> str:
        return (
            f"#{self.pk} {self.user_id} {for_people(self.remaining)}/{for_people(self.face_value)}"
        )

    @property
    def used_up(self) -> bool:
        return self.remaining == Decimal(0)


class Consumption(models.Model):
    voucher = models.ForeignKey(Voucher, on_delete=models.PROTECT, related_name="consumptions")
    user_id = models.CharField(max_length=64)
    order_id = models.CharField(max_length=128)
    closed_at = models.DateTimeField(help_text="The order's first closing fill.")
    # Exact whatever its size (a closed order's PnL is an exact sum of
    # contract-valid amounts); what is paid, ``amount``, is at most a face value.
    loss = exact_sum_field(help_text="The order's loss when this match was made.")
    amount = amount_field(help_text="min(loss, the voucher's remaining)")
    matched_at = models.DateTimeField()
    payout_key = models.CharField(max_length=200, blank=True, default="")
    paid_at = models.DateTimeField(null=True, blank=True)
    cancelled_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text="When this match stopped owing anything: a risk measure, or its release.",
    )
    released_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text="When a later matching of the user's fills replaced this unpaid match"
        " (kept as history; it owes nothing).",
    )

    class Meta:
        constraints = [
            # One order uses at most one voucher at a time; released rows are history.
            models.UniqueConstraint(
                fields=["user_id", "order_id"],
                condition=models.Q(released_at__isnull=True),
                name="consumption_one_per_order",
            ),
            # A released match owes nothing and was never paid: a payout racing
            # the release fails instead of paying it.
            models.CheckConstraint(
                condition=models.Q(released_at__isnull=True)
                | models.Q(paid_at__isnull=True, cancelled_at__isnull=False),
                name="consumption_released_unpaid",
            ),
        ]
        indexes = [
            models.Index(
                fields=["closed_at"],
                name="consumption_unpaid",
                condition=models.Q(paid_at__isnull=True, cancelled_at__isnull=True),
            ),
            # The open matches of a user (released rows are cancelled too).
            models.Index(
                fields=["user_id", "voucher"],
                name="consumption_active",
                condition=models.Q(paid_at__isnull=True, cancelled_at__isnull=True),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.order_id} used {for_people(self.amount)} of voucher {self.voucher_id}"


class ConsumptionCursor(models.Model):
    """How far ``consume_vouchers`` has read the closed orders (their
    ``last_position``). Its own table: a rebuild of the read models must not
    move it."""

    name = models.CharField(max_length=40, primary_key=True)
    position = models.BigIntegerField(default=0)
    updated_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"{self.name} @ {self.position}"


class PaidDay(models.Model):
    """A day D whose compensation a payout of ``program`` has paid
    (``vouchers.matching.mark_day_paid``, in the payout's transaction). Paying D
    pays every match closed up to the end of D, so D and every day before it
    are closed: their matches no longer follow later fills, and only orders
    whose closed-order record changed after ``upto_position`` (late orders) are
    matched again. Append-only."""

    program = models.ForeignKey(VoucherProgram, on_delete=models.PROTECT, related_name="paid_days")
    day = models.DateField()
    paid_at = models.DateTimeField()
    upto_position = models.BigIntegerField(
        help_text="consume_vouchers had matched every closed-order change up to this log"
        " position when the day was paid."
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["program", "day"], name="paidday_once"),
        ]
        indexes = [models.Index(fields=["day"], name="paidday_day")]

    def __str__(self) -> str:
        return f"{self.program_id} paid {self.day} @ {self.upto_position}"
