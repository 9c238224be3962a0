from typing import Any

from django.apps import AppConfig
from django.db.models.signals import post_migrate


def _sync_schedules(sender: AppConfig, **kwargs: Any) -> None:
    from jobs.schedules import sync_beat_schedules

    sync_beat_schedules()


class JobsConfig(AppConfig):
    name = "jobs"
    verbose_name = "Scheduled jobs"

    def ready(self) -> None:
        from django.utils.module_loading import autodiscover_modules

        # Every app declares its scheduled jobs in <app>/jobs.py.
        autodiscover_modules("jobs")
        post_migrate.connect(_sync_schedules, sender=self, dispatch_uid="jobs.sync_schedules")
