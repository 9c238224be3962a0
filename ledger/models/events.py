from django.contrib.postgres.indexes import BrinIndex
from django.db import models


class EventOrigin(models.TextChoices):
    EXCHANGE = "exchange", "Exchange (inbound fact)"
    REWARDS = "rewards", "Rewards (domain event)"


class Event(models.Model):
    """One fact, forever.

    Inbound facts of CONTRACT.md and this product's own domain events share one
    log with one global order (``position``), but not one id namespace: an id
    is unique per ``origin``, so an inbound event can never take the id of a
    decision this product records later. Appends are serialised under one
    advisory lock (see ``ledger.event_store``), so position order is commit
    order and a projector that has read up to position N never misses a row
    that commits later with a smaller position. A trigger refuses UPDATE and
    DELETE: corrections are new events.
    """

    position = models.BigAutoField(primary_key=True)
    # Unique per origin through a constraint, not unique=True: no extra LIKE
    # index to keep up on the hot insert path.
    event_id = models.CharField(max_length=128)
    type = models.CharField(max_length=64)
    # Inbound appends name no origin and get the database's default: only the
    # domain append writes ``rewards``, and a writer that forgets the column
    # lands in the namespace of untrusted input, never in the product's own.
    origin = models.CharField(
        max_length=16, choices=EventOrigin.choices, db_default=EventOrigin.EXCHANGE
    )
    occurred_at = models.DateTimeField()
    received_at = models.DateTimeField()
    user_id = models.CharField(max_length=64, blank=True, default="")
    data = models.JSONField()
    # Envelope fields beyond CONTRACT.md's five, kept rather than dropped.
    extra = models.JSONField(default=dict, blank=True)
    # sha256 of the canonical body: tells a harmless re-delivery from a conflict.
    body_hash = models.CharField(max_length=64)
    source = models.CharField(max_length=16)

    class Meta:
        constraints = [
            # event_id first: the inbound dedupe probes (event_id, 'exchange')
            # once per id, and a lookup by id alone still uses the index.
            models.UniqueConstraint(
                fields=["event_id", "origin"], name="event_id_unique_per_origin"
            ),
            models.CheckConstraint(
                condition=models.Q(origin__in=[EventOrigin.EXCHANGE, EventOrigin.REWARDS]),
                name="event_origin_known",
            ),
        ]
        # No index on type: projectors read position ranges (the primary key)
        # and filter by type; a (type, position) index was the largest one to
        # keep up on every append.
        indexes = [
            models.Index(fields=["user_id", "type"], name="event_user_type"),
            # Jobs that settle a day read events by occurred_at; events arrive in
            # roughly time order, so a BRIN index answers that for almost no
            # upkeep on appends.
            BrinIndex(fields=["occurred_at"], name="event_occurred_brin"),
        ]

    def __str__(self) -> str:
        return f"#{self.position} {self.type} {self.event_id}"


class ProjectionCheckpoint(models.Model):
    """The last event position a projector has folded into its read model."""

    projector = models.CharField(max_length=64, primary_key=True)
    position = models.BigIntegerField(default=0)
    updated_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"{self.projector} @ {self.position}"
