from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from jobs.schedules import sync_beat_schedules


class Command(BaseCommand):
    help = "Load the jobs' schedules declared in code into Beat's database scheduler (also run by migrate)."

    def handle(self, *args: Any, **options: Any) -> None:
        counts = sync_beat_schedules()
        self.stdout.write(" ".join(f"{key}={value}" for key, value in counts.items()))
