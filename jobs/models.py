"""The record of every job run: who asked, for which key, what it did."""

from __future__ import annotations

from django.db import models


class JobRunStatus(models.TextChoices):
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SKIPPED = "skipped", "skipped (another run held the lock)"


class JobRun(models.Model):
    job = models.CharField(max_length=100, db_index=True)
    key = models.CharField(
        max_length=40, help_text="The business day (YYYY-MM-DD) or instant (RFC 3339) it ran for."
    )
    trigger = models.CharField(max_length=20, help_text="beat, command or admin.")
    status = models.CharField(max_length=20, choices=JobRunStatus.choices)
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)
    counts = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True)
    host = models.CharField(max_length=200, blank=True, help_text="host:pid of the runner.")

    class Meta:
        ordering = ("-started_at", "-id")
        indexes = [models.Index(fields=["job", "key"])]

    def __str__(self) -> str:
        return f"{self.job} [{self.key}] {self.status}"

    @property
    def duration(self) -> float | None:
        if self.finished_at is None:
            return None
        return (self.finished_at - self.started_at).total_seconds()
