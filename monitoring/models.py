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
