"""Tables of the monitoring app: running tallies that metrics read at scrape time."""

from __future__ import annotations

from django.db import models


class IngestCount(models.Model):
    """How many inputs a door turned into one outcome, per event type.

    Kept by ingestion in the same transaction as the events and quarantine rows
    it counts (see ``monitoring.tallies``), so the numbers are exact across
    every web process and stream consumer, and reading them costs one scan of a
    table of a few dozen rows instead of a count over the event log.
    """

    source = models.CharField(max_length=16, help_text="The door: rest, stream, file, replay ...")
    # Only the contract's types are kept as they came; anything else a
    # malformed input claimed is counted under "" so the table stays small.
    event_type = models.CharField(max_length=64, blank=True, default="")
    outcome = models.CharField(max_length=16, help_text="accepted, duplicate or rejected.")
    reason = models.CharField(
        max_length=32, blank=True, default="", help_text="Why it was rejected (quarantine reason)."
    )
    count = models.BigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["source", "event_type", "outcome", "reason"], name="ingestcount_key"
            )
        ]

    def __str__(self) -> str:
        return f"{self.source} {self.event_type or '(unknown)'} {self.outcome} {self.count}"


class OutageCount(models.Model):
    """What processes did because a dependency (Redis, PostgreSQL) did not
    answer: rate-limit checks let through, stream batches and scheduled jobs
    retried. Kept in PostgreSQL, not Redis, so a Redis outage is counted by
    the store that outlives it; each process adds what it did every few
    seconds (``monitoring.outages``)."""

    component = models.CharField(
        max_length=80, help_text="rate_limit, consumer, or job:<name> (a scheduled job)."
    )
    dependency = models.CharField(max_length=16, help_text="redis or database.")
    count = models.BigIntegerField(default=0)
    last_at = models.DateTimeField(null=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["component", "dependency"], name="outagecount_key")
        ]

    def __str__(self) -> str:
        return f"{self.component} {self.dependency} {self.count}"


class ConsumerHeartbeat(models.Model):
    """The last word of each stream consumer process: consuming, waiting for a
    dependency (which, since when, how many retries), or stopped. Written every
    few seconds while the database answers; a row not written for a while is a
    consumer that died or hangs. ``/readyz``, ``/metrics`` and the dashboard
    read it."""

    name = models.CharField(max_length=200, help_text="The consumer's name in its group.")
    stream = models.CharField(max_length=200)
    group = models.CharField(max_length=200)
    host = models.CharField(max_length=255, help_text="host:pid of the process.")
    started_at = models.DateTimeField()
    seen_at = models.DateTimeField()
    state = models.CharField(max_length=16, help_text="consuming, waiting or stopped.")
    waiting_for = models.CharField(max_length=16, blank=True, default="")
    waiting_since = models.DateTimeField(null=True)
    attempts = models.IntegerField(default=0, help_text="Retries of the current wait.")
    reason = models.TextField(blank=True, default="")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["name"], name="consumerheartbeat_name")]

    def __str__(self) -> str:
        return f"{self.name} {self.state}"
