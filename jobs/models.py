"""The record of every job run: who asked, for which key, what it did, and
which users (or assets) it had to leave out."""

from __future__ import annotations

from django.db import models
from django.db.models import Q


class JobRunStatus(models.TextChoices):
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    PARTIAL = "partial", "succeeded with exceptions"
    FAILED = "failed"
    SKIPPED = "skipped", "skipped (another run held the lock)"
    ABANDONED = "abandoned", "abandoned (its runner is gone)"


# Outcomes of a run that did its work: "partial" did it for everyone but the
# users (or assets) it recorded as exceptions.
DONE_STATUSES = (JobRunStatus.SUCCEEDED, JobRunStatus.PARTIAL)


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
    # The runner's database session, which holds the run's advisory lock: a
    # running run whose session has ended was abandoned (jobs.runner).
    backend_pid = models.IntegerField(
        null=True, blank=True, help_text="PostgreSQL backend pid of the runner's session."
    )
    backend_start = models.DateTimeField(
        null=True, blank=True, help_text="When that session started (tells a reused pid apart)."
    )
    # The last event of the log committed when the run started: what the run
    # could see. Replay runs the job again after exactly these events.
    log_position = models.BigIntegerField(
        null=True, blank=True, help_text="The log's last position when the run started."
    )

    class Meta:
        ordering = ("-started_at", "-id")
        indexes = [
            models.Index(fields=["job", "key"]),
            # The abandoned-run sweep at the start of every run reads only these.
            models.Index(fields=["id"], condition=Q(status="running"), name="jobrun_running"),
        ]

    def __str__(self) -> str:
        return f"{self.job} [{self.key}] {self.status}"

    @property
    def duration(self) -> float | None:
        if self.finished_at is None:
            return None
        return (self.finished_at - self.started_at).total_seconds()


class JobException(models.Model):
    """A user (or an asset) a job left out because of their data, while it did
    its work for everyone else (jobs.exceptions). ``run`` is empty when the job
    function was called directly rather than through ``run_job``."""

    run = models.ForeignKey(
        JobRun, null=True, blank=True, on_delete=models.PROTECT, related_name="exceptions"
    )
    job = models.CharField(max_length=100)
    user_id = models.CharField(max_length=64, blank=True, help_text="Empty for a whole asset.")
    scope = models.CharField(max_length=100, help_text='What was left out: "user", "asset USDC".')
    reason = models.TextField(help_text="Why, in one line (the database's error message).")
    detail = models.TextField(blank=True)
    created_at = models.DateTimeField()

    class Meta:
        ordering = ("-created_at", "-id")
        indexes = [
            models.Index(fields=["created_at"], name="jobexception_time"),
            models.Index(fields=["user_id"], name="jobexception_user"),
        ]

    def __str__(self) -> str:
        who = self.user_id or "-"
        return f"{self.job}: {who} ({self.scope}) {self.reason[:60]}"
