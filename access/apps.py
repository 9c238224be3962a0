from typing import Any

from django.apps import AppConfig, apps
from django.db.models.signals import post_migrate, post_save


def _sync_groups(sender: AppConfig, **kwargs: Any) -> None:
    from django.contrib.auth.management import create_permissions

    from access.roles import sync_staff_groups

    # post_migrate reaches this app before the apps listed after it have their
    # permissions; create them all first (idempotent) so every role is complete.
    for app_config in apps.get_app_configs():
        create_permissions(app_config, verbosity=0, using=kwargs.get("using", "default"))
    sync_staff_groups()


class AccessConfig(AppConfig):
    name = "access"
    verbose_name = "Access: service tokens and staff roles"

    def ready(self) -> None:
        # Registers the bearer schemes with the OpenAPI generator.
        from access import openapi  # noqa: F401

        post_migrate.connect(_sync_groups, sender=self, dispatch_uid="access.sync_staff_groups")
        from django.contrib.admin.models import LogEntry

        from access.audit import record_admin_action

        post_save.connect(record_admin_action, sender=LogEntry, dispatch_uid="access.audit")
