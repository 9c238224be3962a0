"""Read models every program needs, folded from the event log.

They are projections: ``rebuild_projections`` empties and refills them from
the log and must reproduce them exactly. Folds are order-independent (sums,
earliest-wins, history rows keyed by event), so any delivery order of the same
facts gives the same read models.
"""

from decimal import Decimal

from django.db import models

from ledger.models.fields import exact_sum_field
from ledger.money import AMOUNT_DECIMALS, AMOUNT_DIGITS, for_people


class ExchangeUser(models.Model):
    """The user directory, from ``user.registered`` (earliest fact wins)."""

    user_id = models.CharField(max_length=64, primary_key=True)
    account_type = models.CharField(max_length=16)
    parent_user_id = models.CharField(max_length=64, blank=True, default="")
    referral_code = models.CharField(max_length=64, blank=True, default="")
    registered_at = models.DateTimeField()
    event_id = models.CharField(max_length=128)

    class Meta:
        indexes = [models.Index(fields=["parent_user_id"], name="exchangeuser_parent")]

    def __str__(self) -> str:
        return f"{self.user_id} ({self.account_type})"


class FuturesWalletState(models.Model):
    """Each reported state of one futures wallet; the state as of T is the row
    with the latest ``occurred_at`` <= T (ties: highest ``event_id``)."""

    user_id = models.CharField(max_length=64)
    asset = models.CharField(max_length=16)
    occurred_at = models.DateTimeField()
    event_id = models.CharField(max_length=128, unique=True)
    available = models.DecimalField(max_digits=AMOUNT_DIGITS, decimal_places=AMOUNT_DECIMALS)
    locked_in_orders = models.DecimalField(max_digits=AMOUNT_DIGITS, decimal_places=AMOUNT_DECIMALS)
    margin_used = models.DecimalField(max_digits=AMOUNT_DIGITS, decimal_places=AMOUNT_DECIMALS)
    bonus = models.DecimalField(max_digits=AMOUNT_DIGITS, decimal_places=AMOUNT_DECIMALS)

    class Meta:
        indexes = [
            models.Index(
                fields=["user_id", "asset", "-occurred_at", "-event_id"], name="wallet_as_of"
            )
        ]

    def __str__(self) -> str:
        return f"{self.user_id} {self.asset} wallet at {self.occurred_at:%Y-%m-%d %H:%M:%S}"


class FuturesPositionsState(models.Model):
    """Each reported list of open futures positions of a user (latest wins)."""

    user_id = models.CharField(max_length=64)
    occurred_at = models.DateTimeField()
    event_id = models.CharField(max_length=128, unique=True)
    positions = models.JSONField()

    class Meta:
        indexes = [
            models.Index(fields=["user_id", "-occurred_at", "-event_id"], name="positions_as_of")
        ]

    def __str__(self) -> str:
        return f"{self.user_id} positions at {self.occurred_at:%Y-%m-%d %H:%M:%S}"


class HoldingState(models.Model):
    """Each reported holding of a token (e.g. MX); the holding as of T is the
    latest report at or before T."""

    user_id = models.CharField(max_length=64)
    asset = models.CharField(max_length=16)
    occurred_at = models.DateTimeField()
    event_id = models.CharField(max_length=128, unique=True)
    amount = models.DecimalField(max_digits=AMOUNT_DIGITS, decimal_places=AMOUNT_DECIMALS)

    class Meta:
        indexes = [
            models.Index(
                fields=["user_id", "asset", "-occurred_at", "-event_id"], name="holding_as_of"
            )
        ]

    def __str__(self) -> str:
        return f"{self.user_id} {for_people(self.amount, self.asset)} at {self.occurred_at:%Y-%m-%d %H:%M:%S}"


class ClosedOrder(models.Model):
    """One order's closing fills, summed (RULES.md section 0).

    The order lost if ``realized_pnl`` < 0; its loss is the absolute value (fees
    are never part of it); its time is the first closing fill's ``occurred_at``
    (ties by ``event_id``). Market, symbol and origin come from that first
    closing fill; ``promo_funding`` is the union over all closing fills, so an
    order that used a promotional instrument on any fill counts as funded.
    """

    user_id = models.CharField(max_length=64)
    order_id = models.CharField(max_length=128)
    first_close_at = models.DateTimeField()
    first_close_event_id = models.CharField(max_length=128)
    last_close_at = models.DateTimeField()
    # Sums over the order's fills: exact beyond NUMERIC(38, 18) (two fills of
    # 6e19 make 1.2e20), see ledger.models.fields.ExactSumField.
    realized_pnl = exact_sum_field()
    closing_notional = exact_sum_field()
    closing_fills = models.IntegerField()
    market = models.CharField(max_length=16)
    symbol = models.CharField(max_length=64)
    origin = models.CharField(max_length=16)
    promo_funding = models.JSONField(default=list)
    # Log position of the newest closing fill folded in: programs that react to
    # closed orders read "changed since position N" (e.g. voucher consumption).
    last_position = models.BigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user_id", "order_id"], name="closedorder_user_order")
        ]
        indexes = [
            models.Index(fields=["user_id", "first_close_at"], name="closedorder_user_time"),
            models.Index(fields=["first_close_at"], name="closedorder_time"),
            models.Index(fields=["last_position"], name="closedorder_changes"),
        ]

    def __str__(self) -> str:
        return f"{self.user_id} order {self.order_id} pnl {self.realized_pnl}"

    @property
    def lost(self) -> bool:
        return self.realized_pnl < 0

    @property
    def loss(self) -> Decimal:
        # copy_negate: unary minus would round to the context's 28 digits.
        return self.realized_pnl.copy_negate() if self.realized_pnl < 0 else Decimal(0)


class RiskMeasure(models.Model):
    """One measure of a ``risk.flagged`` finding (e.g. ``disqualify_campaigns``),
    in force from ``occurred_at``. Programs ask: is this user under measure M?"""

    user_id = models.CharField(max_length=64)
    measure = models.CharField(max_length=32)
    occurred_at = models.DateTimeField()
    event_id = models.CharField(max_length=128)
    reason = models.TextField(blank=True, default="")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["event_id", "measure"], name="riskmeasure_event")
        ]
        indexes = [models.Index(fields=["user_id", "measure"], name="riskmeasure_user")]

    def __str__(self) -> str:
        return f"{self.user_id}: {self.measure} from {self.occurred_at:%Y-%m-%d %H:%M}"
