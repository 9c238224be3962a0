"""Tables of the referral program (RULES.md section 3).

``ReferralCode`` and ``Relation`` are projections of ``user.registered``
(``referrals/projections.py``). ``ProgramTerms`` (effective-dated) and
``CommunityPartner`` are ops configuration. ``Commission`` is the record of
``settle_referrals``: per day, settlement run, program, referrer, referee and
asset, what the referee's fills earned. ``distribute_referral_commissions``
never rewrites those rows: it records a ``Distribution`` per day and a
``CommissionPayout`` per referrer and asset, and a commission is paid when a
payout of its referrer and asset covers it (``selectors.with_state``).
"""

from __future__ import annotations

import datetime as dt

from django.db import models

from ledger.models.fields import amount_field, exact_sum_field
from ledger.money import for_people


class Program(models.TextChoices):
    FUTURES = "futures"
    SPOT = "spot"


class ReferralCode(models.Model):
    user_id = models.CharField(max_length=64, primary_key=True)
    code = models.CharField(max_length=16)
    # Log position of the user's registration: a code works for registrations after it.
    position = models.BigIntegerField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["code"], name="referralcode_unique")]

    def __str__(self) -> str:
        return f"{self.code} ({self.user_id})"


class Relation(models.Model):
    """A referee's registration with a code: a relation, or a refused attempt."""

    referee_id = models.CharField(max_length=64, primary_key=True)
    referrer_id = models.CharField(max_length=64, blank=True, default="")
    code = models.CharField(max_length=64)
    registered_at = models.DateTimeField()
    event_id = models.CharField(max_length=128)
    refusal = models.CharField(
        max_length=20, blank=True, default="", help_text="self_referral, same_owner or unknown_code"
    )

    class Meta:
        indexes = [models.Index(fields=["referrer_id", "registered_at"], name="relation_referrer")]

    def __str__(self) -> str:
        return f"{self.referrer_id or '?'} -> {self.referee_id}{' (' + self.refusal + ')' if self.refusal else ''}"


class ProgramTerms(models.Model):
    """The rules of one program from ``effective_from`` on (until the next row)."""

    program = models.CharField(max_length=10, choices=Program.choices)
    effective_from = models.DateTimeField()
    validity_days = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text="Relations last this long from registration; empty: no end.",
    )
    tiers = models.JSONField(
        help_text='[{"min_mx": "0", "rate": "0.10"}, {"min_mx": "10000", "rate": "0.20"}, ...]'
    )
    partner_rate = models.DecimalField(max_digits=6, decimal_places=4, null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["program", "effective_from"], name="programterms_unique"
            )
        ]
        ordering = ("program", "-effective_from")
        verbose_name_plural = "program terms"

    def __str__(self) -> str:
        return f"{self.program} from {self.effective_from:%Y-%m-%d}"


class CommunityPartner(models.Model):
    """An ops flag on a referrer: the partner rate applies while it is active."""

    user_id = models.CharField(max_length=64)
    since = models.DateTimeField()
    until = models.DateTimeField(null=True, blank=True)
    note = models.CharField(max_length=200, blank=True, default="")

    class Meta:
        indexes = [models.Index(fields=["user_id"], name="partner_user")]
        constraints = [
            # set_partner serialises changes per user; the database makes sure
            # no writer, however it got there, opens a second flag.
            models.UniqueConstraint(
                fields=["user_id"],
                condition=models.Q(until__isnull=True),
                name="partner_one_open_flag",
            )
        ]

    def __str__(self) -> str:
        return f"{self.user_id} partner since {self.since:%Y-%m-%d}"

    @classmethod
    def in_force(cls, user_id: str, at: dt.datetime) -> models.QuerySet[CommunityPartner]:
        """The user's flags in force at ``at`` (``until`` is the last instant)."""
        return cls.objects.filter(user_id=user_id, since__lte=at).exclude(until__lt=at)

    @classmethod
    def going_on(cls, user_id: str, now: dt.datetime) -> models.QuerySet[CommunityPartner]:
        """The user's flags in force now and after: a flag ended now is over."""
        return cls.objects.filter(user_id=user_id, since__lte=now).exclude(until__lte=now)


class CommissionStatus(models.TextChoices):
    """What a commission row stores: settled, or invalid (an invalid rebate).
    "paid" is derived from the payouts that cover the row, never stored."""

    SETTLED = "settled"
    INVALID = "invalid", "invalid rebate"


class Commission(models.Model):
    day = models.DateField()
    run = models.PositiveIntegerField(
        help_text="1 for the day's settlement; 2, 3 ... for late fills."
    )
    program = models.CharField(max_length=10, choices=Program.choices)
    referrer_id = models.CharField(max_length=64)
    referee_id = models.CharField(max_length=64)
    asset = models.CharField(max_length=16)
    fills = models.PositiveIntegerField()
    # Sums of a day's fees and their commission, kept exactly whatever their
    # size (contract-valid fees have up to 20 integer digits each): one
    # referee's huge fills never fail the settlement for everyone.
    fees = exact_sum_field()
    rate = models.DecimalField(max_digits=6, decimal_places=4)
    amount = exact_sum_field()
    status = models.CharField(max_length=10, choices=CommissionStatus.choices)
    # The status the settlement gave (fills before and after an invalidation are
    # separate rows); ``status`` moves on from it only to invalid, when the
    # relation is invalidated before a payout covers the row.
    settled_as = models.CharField(max_length=10, choices=CommissionStatus.choices)
    invalid_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        # No unique constraint over the key columns: runs cover disjoint log
        # ranges and each run groups by the key, so a row cannot repeat; the
        # index it needed cost a third of the settlement's time.
        indexes = [
            models.Index(fields=["referrer_id", "day"], name="commission_referrer_day"),
            models.Index(fields=["status", "day"], name="commission_status_day"),
        ]

    def __str__(self) -> str:
        return f"{self.day} {self.program} {self.referrer_id} {for_people(self.amount, self.asset)} ({self.status})"


class Settlement(models.Model):
    """One settlement run of a day: the log positions it covered."""

    day = models.DateField()
    run = models.PositiveIntegerField()
    upto_position = models.BigIntegerField()
    settled_at = models.DateTimeField()
    commissions = models.PositiveIntegerField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["day", "run"], name="settlement_unique")]
        ordering = ("-day", "-run")

    def __str__(self) -> str:
        return f"{self.day} run {self.run} up to #{self.upto_position}"


class Distribution(models.Model):
    """One distribution: it paid every unpaid settled commission with ``day`` on
    or before its day and ``id`` up to ``upto_commission_id`` (less an asset
    whose pool refused). Distributions go forward only; ``unpaid_from`` bounds
    what the next one reads. Which commission was paid by which credit is in
    ``ledger.PaidItem``."""

    day = models.DateField(unique=True)
    upto_commission_id = models.BigIntegerField()
    unpaid_from = models.BigIntegerField(
        default=0,
        help_text="Every settled commission below this id was paid or invalidated when the"
        " distribution ended: the next one reads from here.",
    )
    distributed_at = models.DateTimeField()
    referrers = models.PositiveIntegerField(help_text="Payout rows recorded (referrer and asset).")
    invalidated = models.PositiveIntegerField(help_text="Commissions turned into invalid rebates.")

    class Meta:
        ordering = ("-day",)

    def __str__(self) -> str:
        return f"distribution of {self.day} (commissions up to #{self.upto_commission_id})"


class CommissionPayout(models.Model):
    """What one referrer received in one asset from one distribution.

    ``commissions`` is the sum of the newly covered rows; with the remainder
    carried in from the pair's previous payout it is rounded down once to
    ``amount`` (credited under ``payout_key``), and what rounding left is
    carried out to the next payout, so nothing is lost to rounding."""

    day = models.DateField(help_text="The distribution's day.")
    referrer_id = models.CharField(max_length=64)
    asset = models.CharField(max_length=16)
    upto_commission_id = models.BigIntegerField()
    # Exact: sums of commissions (fees times rates, more than 18 decimals) and
    # what rounding left of them; ``amount`` is what was credited.
    commissions = exact_sum_field()
    carried_in = exact_sum_field()
    amount = amount_field()
    carried_out = exact_sum_field()
    payout_key = models.CharField(
        max_length=200, blank=True, default="", help_text="Empty when the amount rounds to 0."
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["referrer_id", "asset", "day"], name="commissionpayout_unique"
            )
        ]
        ordering = ("-day", "referrer_id", "asset")

    def __str__(self) -> str:
        return f"{self.day} {self.referrer_id} {for_people(self.amount, self.asset)}"
