from django.db import models


class QuarantineStatus(models.TextChoices):
    OPEN = "open", "Open"
    REPLAYED = "replayed", "Replayed (accepted)"
    DISCARDED = "discarded", "Discarded by ops"


class QuarantinedInput(models.Model):
    """An input that was refused, kept exactly as received with the reason.

    Nothing the exchange sends is ever dropped: a malformed event, a body that
    conflicts with an earlier one under the same ``event_id``, or a stream entry
    that could not be processed lands here. Ops correct ``raw`` in the admin and
    replay it through the same validation as every other door.

    ``received`` keeps the input's exact bytes, whatever they are (NUL bytes,
    invalid UTF-8), and never changes; ``raw`` is the same input as text a
    person can read and correct (anything PostgreSQL text cannot hold escaped
    as ``\\uXXXX``).
    """

    received_at = models.DateTimeField()
    source = models.CharField(max_length=16)
    raw = models.TextField()
    received = models.BinaryField(null=True, editable=False)
    event_id = models.CharField(max_length=128, blank=True, default="")
    event_type = models.CharField(max_length=64, blank=True, default="")
    reason = models.CharField(max_length=32)
    errors = models.JSONField(default=list)
    status = models.CharField(
        max_length=16, choices=QuarantineStatus.choices, default=QuarantineStatus.OPEN
    )
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolved_by = models.CharField(max_length=150, blank=True, default="")
    replay_result = models.CharField(max_length=255, blank=True, default="")

    class Meta:
        verbose_name = "quarantined input"
        indexes = [
            models.Index(fields=["status", "received_at"], name="quarantine_status_time"),
            models.Index(fields=["event_id"], name="quarantine_event_id"),
        ]

    def __str__(self) -> str:
        return f"{self.reason} {self.event_id or '(no id)'}"
