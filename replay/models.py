"""Backtests asked for in the admin: the draft, the window, and the report once run.

A backtest never writes to this database but here: its request and report
(the run itself is in a scratch database, replay.backtest)."""

from __future__ import annotations

from django.db import models


class BacktestStatus(models.TextChoices):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class Backtest(models.Model):
    draft = models.TextField(
        help_text="The draft program file, in the apply_config format (YAML or JSON):"
        " one campaign and its funding_accounts (the proposed budget)."
    )
    first_day = models.DateField(help_text="First UTC day of recorded history to run over.")
    last_day = models.DateField(help_text="Last UTC day, included.")
    live = models.CharField(
        max_length=80,
        blank=True,
        default="",
        help_text="A live campaign's slug, to show its figures over the same days beside the draft's.",
    )
    seed = models.CharField(
        max_length=64, blank=True, default="", help_text="The draws' seed; empty for a random one."
    )
    step_minutes = models.PositiveIntegerField(
        default=60, help_text="Minutes between job runs and spins in the backtest."
    )
    status = models.CharField(
        max_length=16, choices=BacktestStatus.choices, default=BacktestStatus.QUEUED
    )
    report = models.JSONField(null=True, blank=True)
    error = models.TextField(blank=True, default="")
    requested_by = models.CharField(max_length=150)
    requested_at = models.DateTimeField()
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ("-requested_at", "-id")
        constraints = [
            models.CheckConstraint(
                condition=models.Q(last_day__gte=models.F("first_day")),
                name="backtest_window_order",
            )
        ]

    def __str__(self) -> str:
        program = (self.report or {}).get("program", "draft")
        return f"backtest #{self.pk}: {program}, {self.first_day} to {self.last_day}"
