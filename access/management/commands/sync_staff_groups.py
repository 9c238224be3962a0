from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from access.roles import sync_staff_groups


class Command(BaseCommand):
    help = "Create or update the staff groups viewer, operator and finance (also run by migrate)."

    def handle(self, *args: Any, **options: Any) -> None:
        for name, count in sync_staff_groups().items():
            self.stdout.write(f"{name}: {count} permissions")
