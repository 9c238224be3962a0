from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from access.services import create_service_token


class Command(BaseCommand):
    help = "Create a service token for one of the exchange's services. Printed once, stored hashed."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name", help="The service that will hold it, e.g. wallet")

    def handle(self, *args: Any, **options: Any) -> None:
        row, token = create_service_token(name=options["name"], created_by="manage.py")
        self.stderr.write(f"service token #{row.pk} for {row.name!r}; it is shown only now:")
        self.stdout.write(token)
