"""Tables of Futures Earn (RULES.md section 4).

``Activation`` is a projection of ``earn.activated`` / ``earn.deactivated``
(``earn/projections.py``); ``EarnTerms`` (effective-dated) is ops
configuration. ``SnapshotRun`` and ``Snapshot`` are what ``earn_snapshot``
took; ``Accrual`` and ``DailyInterest`` what ``accrue_earn_interest``
decided; ``EarnDistribution`` marks a day paid by ``distribute_earn_interest``.
"""

from __future__ import annotations

from django.db import models

from ledger.models.fields import amount_field, exact_sum_field
from ledger.money import for_people


def _default_assets() -> list[str]:
    return ["USDT", "USDC"]


def _default_times() -> list[str]:
    return ["00:00", "08:00", "16:00"]


class EarnTerms(models.Model):
    """The Earn terms from ``effective_from`` (a UTC day) until the next row."""

    effective_from = models.DateField(unique=True)
    assets = models.JSONField(default=_default_assets, help_text='e.g. ["USDT", "USDC"]')
    position_threshold = amount_field(help_text="Mean position value needed for the boosted APR.")
    boosted_principal = amount_field(help_text="Principal that earns the boosted APR.")
    boosted_apr = models.DecimalField(max_digits=8, decimal_places=6)
    base_apr = models.DecimalField(max_digits=8, decimal_places=6)
    snapshot_times = models.JSONField(
        default=_default_times, help_text='Three UTC times, e.g. ["00:00", "08:00", "16:00"]'
    )

    class Meta:
        ordering = ("-effective_from",)
        verbose_name_plural = "Earn terms"

    def __str__(self) -> str:
        return f"Earn terms from {self.effective_from}"


class Activation(models.Model):
    """One activation or deactivation; a user is active at T when their
    latest change at or before T is an activation."""

    event_id = models.CharField(max_length=128, unique=True)
    user_id = models.CharField(max_length=64)
    occurred_at = models.DateTimeField()
    active = models.BooleanField()

    class Meta:
        indexes = [models.Index(fields=["user_id", "-occurred_at"], name="earn_activation_user")]
        ordering = ("-occurred_at",)

    def __str__(self) -> str:
        verb = "activated" if self.active else "deactivated"
        return f"{self.user_id} {verb} at {self.occurred_at:%Y-%m-%d %H:%M:%S}"


class SnapshotRun(models.Model):
    """A snapshot instant that has been taken (once)."""

    at = models.DateTimeField(unique=True)
    taken_at = models.DateTimeField()
    users = models.PositiveIntegerField()

    class Meta:
        ordering = ("-at",)

    def __str__(self) -> str:
        return f"snapshot {self.at:%Y-%m-%d %H:%M} UTC"


class Snapshot(models.Model):
    """One active user's principal in one asset, and the account's net
    position value, as of ``at``."""

    at = models.DateTimeField()
    user_id = models.CharField(max_length=64)
    asset = models.CharField(max_length=16)
    # Sums and products of contract-valid amounts, kept exactly whatever their
    # size (ledger.models.fields.ExactSumField).
    principal = exact_sum_field()
    position_value = exact_sum_field()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user_id", "at", "asset"], name="earn_snapshot_unique")
        ]

    def __str__(self) -> str:
        return f"{self.user_id} {self.asset} at {self.at:%Y-%m-%d %H:%M}"


class Accrual(models.Model):
    """The accrual of one day: the terms it used and its totals."""

    day = models.DateField(unique=True)
    terms_from = models.DateField(help_text="effective_from of the terms used")
    accrued_at = models.DateTimeField()
    rows = models.PositiveIntegerField()
    totals = models.JSONField(help_text="Interest per asset.")

    class Meta:
        ordering = ("-day",)

    def __str__(self) -> str:
        return f"Earn interest of {self.day}"


class DailyInterest(models.Model):
    """A user's interest in one asset for one day, with every number behind it."""

    day = models.DateField()
    user_id = models.CharField(max_length=64)
    asset = models.CharField(max_length=16)
    snapshots = models.PositiveSmallIntegerField(help_text="Snapshots taken while active.")
    # P, V and the portions exactly, whatever their size; the interest is what
    # the ledger pays, so it must fit NUMERIC(38, 18) (a user's interest that
    # does not is recorded as a job exception instead of a row).
    principal = exact_sum_field(help_text="P: the lowest snapshot (0 if one is missing).")
    position_value = exact_sum_field(help_text="V: the mean of the day's position values.")
    boosted_portion = exact_sum_field()
    boosted_apr = models.DecimalField(max_digits=8, decimal_places=6)
    base_portion = exact_sum_field()
    base_apr = models.DecimalField(max_digits=8, decimal_places=6)
    interest = amount_field()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["user_id", "day", "asset"], name="earn_dailyinterest_unique"
            )
        ]
        indexes = [models.Index(fields=["day", "asset"], name="earn_dailyinterest_day")]
        verbose_name_plural = "daily interest"

    def __str__(self) -> str:
        return f"{self.day} {self.user_id} {for_people(self.interest, self.asset)}"


class EarnDistribution(models.Model):
    """Day D's interest credited (on D+1)."""

    day = models.DateField(unique=True)
    distributed_at = models.DateTimeField()
    credits = models.PositiveIntegerField()
    totals = models.JSONField(help_text="Credited per asset.")

    class Meta:
        ordering = ("-day",)

    def __str__(self) -> str:
        return f"Earn interest of {self.day} paid"
