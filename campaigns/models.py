"""Tables of the loss-coverage campaigns (RULES.md section 1).

``Campaign`` and ``Invitation`` are configuration, written by ops (admin,
``apply_config``, CSV). ``Participant``, ``DailyVolume``, ``DailySpin``,
``CoverageDraw`` and ``Reward`` are projections of the event log
(``campaigns/projections.py``): a rebuild reproduces them. ``SpinAllowance``
is the state of the ``refresh_spins`` job: what each participant may spin, as
of its last refresh.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from django.db import models

from ledger.models.fields import amount_field, exact_sum_field
from ledger.money import for_people


def default_card_table() -> list[dict[str, object]]:
    return [
        {"percent": "3", "weight": 60},
        {"percent": "5", "weight": 30},
        {"percent": "8", "weight": 10},
    ]


def default_prize_table() -> list[dict[str, object]]:
    return [
        {"amount": "1", "weight": 400},
        {"amount": "2", "weight": 250},
        {"amount": "5", "weight": 150},
        {"amount": "10", "weight": 100},
        {"amount": "20", "weight": 60},
        {"amount": "50", "weight": 30},
        {"amount": "100", "weight": 10},
    ]


def default_excluded_symbols() -> list[str]:
    return ["USDC_USDT"]


class Campaign(models.Model):
    slug = models.SlugField(max_length=80)
    title = models.CharField(max_length=200)
    description = models.TextField(blank=True, default="")
    starts_at = models.DateTimeField()
    ends_at = models.DateTimeField(
        help_text="Exclusive: fills at or after this instant do not count."
    )
    registration_opens_at = models.DateTimeField()
    registration_closes_at = models.DateTimeField()
    invitation_only = models.BooleanField(default=True)
    asset = models.CharField(max_length=16, default="USDT")
    volume_target = amount_field(
        default=Decimal("10000"), help_text="Valid futures volume for the coverage spin."
    )
    card_table = models.JSONField(
        default=default_card_table, help_text='[{"percent": "8", "weight": 10}, ...]'
    )
    losing_order_limit = models.PositiveIntegerField(default=100)
    cap_per_order = amount_field(default=Decimal("500"))
    daily_min_volume = amount_field(default=Decimal("10"))
    prize_table = models.JSONField(
        default=default_prize_table, help_text='[{"amount": "1", "weight": 400}, ...]'
    )
    lateness = models.DurationField(
        default=dt.timedelta(hours=1),
        help_text="Wait this long after the end for late events before the draw.",
    )
    bonus_validity_days = models.PositiveSmallIntegerField(default=14)
    issuance_deadline_days = models.PositiveSmallIntegerField(default=14)
    excluded_symbols = models.JSONField(default=default_excluded_symbols)
    funding_program = models.CharField(
        max_length=120,
        help_text="The ledger program whose funding account pays, e.g. campaign:winter-2026.",
    )
    # The draw's secret: shown only as its SHA-256 until the draw is done.
    seed = models.CharField(max_length=64, editable=False)
    seed_hash = models.CharField(max_length=64, editable=False)
    created_at = models.DateTimeField()
    # Job state.
    spins_position = models.BigIntegerField(default=0, editable=False)
    drawn_at = models.DateTimeField(null=True, blank=True, editable=False)
    spins_voided_at = models.DateTimeField(null=True, blank=True, editable=False)
    bonuses_issued_at = models.DateTimeField(null=True, blank=True, editable=False)
    # Daily prizes won so far: checked against the funding under the campaign's row lock.
    prizes_committed = amount_field(default=Decimal(0), editable=False)
    budget_alert = models.TextField(blank=True, default="", editable=False)
    budget_alert_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["slug"], name="campaign_slug_unique")]
        ordering = ("-starts_at",)

    def __str__(self) -> str:
        return self.slug

    @property
    def seed_revealed(self) -> bool:
        return self.drawn_at is not None


class Invitation(models.Model):
    campaign = models.ForeignKey(Campaign, on_delete=models.PROTECT, related_name="invitations")
    user_id = models.CharField(max_length=64)
    invited_at = models.DateTimeField()
    source = models.CharField(max_length=100, blank=True, default="")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["campaign", "user_id"], name="invitation_unique")
        ]

    def __str__(self) -> str:
        return f"{self.user_id} invited to {self.campaign_id}"


class Participant(models.Model):
    """A registered user (projection of ``campaign.registered``), and the card
    they drew (``campaign.card_drawn``)."""

    campaign = models.ForeignKey(Campaign, on_delete=models.PROTECT, related_name="participants")
    user_id = models.CharField(max_length=64)
    registered_at = models.DateTimeField()
    # Log position of the registration: only fills appended after it count.
    registered_position = models.BigIntegerField()
    card_percent = models.DecimalField(max_digits=5, decimal_places=2, null=True, blank=True)
    card_drawn_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["campaign", "user_id"], name="participant_unique")
        ]
        indexes = [models.Index(fields=["user_id"], name="participant_user")]

    def __str__(self) -> str:
        return f"{self.user_id} in {self.campaign_id}"


class DailyVolume(models.Model):
    """Valid futures volume of a participant per UTC day (projection of fills)."""

    campaign = models.ForeignKey(Campaign, on_delete=models.PROTECT)
    user_id = models.CharField(max_length=64)
    day = models.DateField()
    # A sum of fills' notionals: exact beyond NUMERIC(38, 18) (two fills of
    # 6e19 make 1.2e20), see ledger.models.fields.ExactSumField.
    volume = exact_sum_field()
    # The newest fill that changed this row: refresh_spins reads only rows past its checkpoint.
    last_position = models.BigIntegerField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["campaign", "user_id", "day"], name="dailyvolume_unique"
            )
        ]
        indexes = [models.Index(fields=["campaign", "last_position"], name="dailyvolume_changes")]

    def __str__(self) -> str:
        return f"{self.user_id} {self.day} {for_people(self.volume)}"


class SpinAllowance(models.Model):
    """What a participant may spin, as of the last ``refresh_spins``."""

    campaign = models.ForeignKey(Campaign, on_delete=models.PROTECT)
    user_id = models.CharField(max_length=64)
    valid_volume = exact_sum_field()  # a sum of daily volumes, exact as they are
    coverage_granted_at = models.DateTimeField(null=True, blank=True)
    daily_earned = models.PositiveIntegerField(default=0)
    refreshed_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["campaign", "user_id"], name="spinallowance_unique")
        ]

    def __str__(self) -> str:
        return f"{self.user_id}: {for_people(self.valid_volume)} volume, {self.daily_earned} daily"


class DailySpin(models.Model):
    """One daily sure-win spin and its prize (projection of ``campaign.daily_prize_won``)."""

    campaign = models.ForeignKey(Campaign, on_delete=models.PROTECT)
    user_id = models.CharField(max_length=64)
    number = models.PositiveIntegerField()
    amount = amount_field()
    spun_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["campaign", "user_id", "number"], name="dailyspin_unique"
            )
        ]

    def __str__(self) -> str:
        return f"{self.user_id} spin {self.number}: {for_people(self.amount)}"


class CoverageDraw(models.Model):
    """A participant's coverage draw (projection of ``campaign.coverage_drawn``)."""

    campaign = models.ForeignKey(Campaign, on_delete=models.PROTECT)
    user_id = models.CharField(max_length=64)
    percent = models.DecimalField(max_digits=5, decimal_places=2)
    losing_orders = models.PositiveIntegerField(
        help_text="n: losing orders counted, at most the limit."
    )
    covered = models.PositiveIntegerField(help_text="k: orders chosen.")
    candidates_digest = models.CharField(max_length=64)
    chosen = models.JSONField(help_text="[{order_id, loss, rebate}]")
    drawn_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["campaign", "user_id"], name="coveragedraw_unique")
        ]

    def __str__(self) -> str:
        return (
            f"{self.user_id}: {self.covered} of {self.losing_orders} at {for_people(self.percent)}%"
        )


class RewardKind(models.TextChoices):
    COVERAGE_REBATE = "coverage_rebate"
    DAILY_PRIZE = "daily_prize"


class Reward(models.Model):
    """A reward earned (a chosen order's rebate, a daily prize). Its status is
    derived: issued when the ledger holds its idempotency key, void when the user
    was disqualified before that, pending otherwise (``campaigns.selectors``).

    Its id is a 64-bit hash of its idempotency key, set by the projection: a
    rebuild of the read models gives every reward the id it had, so the ledger's
    paid items (which name rewards by id) keep naming the same rewards. Two keys
    of one hash would collide on the primary key and fail loudly, never pay a
    reward as another's."""

    campaign = models.ForeignKey(Campaign, on_delete=models.PROTECT)
    user_id = models.CharField(max_length=64)
    kind = models.CharField(max_length=20, choices=RewardKind.choices)
    reference = models.CharField(
        max_length=128, help_text="The order id, or the daily spin number."
    )
    amount = amount_field()
    earned_at = models.DateTimeField()
    idempotency_key = models.CharField(max_length=200)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["idempotency_key"], name="reward_idempotency_key")
        ]
        indexes = [models.Index(fields=["campaign", "user_id"], name="reward_campaign_user")]

    def __str__(self) -> str:
        return f"{self.kind} {for_people(self.amount)} to {self.user_id}"
