from typing import Any

from django.apps import AppConfig
from django.db.models.signals import post_migrate


def _sync_groups(sender: AppConfig, **kwargs: Any) -> None:
    from access.roles import sync_staff_groups

    sync_staff_groups()


class AccessConfig(AppConfig):
    name = "access"
    verbose_name = "Access: service tokens and staff roles"

    def ready(self) -> None:
        # After the last app migrates, every permission exists; sync the roles then.
        post_migrate.connect(_sync_groups, sender=self, dispatch_uid="access.sync_staff_groups")
