from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connection, transaction

from access.database_roles import DELETABLE, grant_application_role
from config import roles


class Command(BaseCommand):
    help = (
        "Create (or update) the database's owner role and application role, hand the"
        " database and everything in it to the owner and grant the application role"
        " what it may do (docs/operations.md, Database roles). Idempotent: run it once"
        " as a superuser, then after every migrate (as the owner or a superuser)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--owner", default=roles.OWNER_ROLE, help="the owner role's name")
        parser.add_argument("--app", default=roles.APP_ROLE, help="the application role's name")
        parser.add_argument("--owner-password", help="set the owner role's password")
        parser.add_argument("--app-password", help="set the application role's password")
        parser.add_argument(
            "--nologin",
            action="store_true",
            help="roles that cannot log in (grant them to login roles of your own)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        owner, app = options["owner"], options["app"]
        if owner == app:
            raise CommandError("the owner and the application role must be two roles")
        with connection.cursor() as cursor:
            cursor.execute("SELECT rolname FROM pg_roles WHERE rolname IN (%s, %s)", [owner, app])
            existing = {row[0] for row in cursor.fetchall()}
            wants_change = options["owner_password"] or options["app_password"]
            if roles.can_create_roles(cursor):
                for line in roles.ensure_roles(
                    cursor,
                    owner=owner,
                    app=app,
                    owner_password=options["owner_password"],
                    app_password=options["app_password"],
                    login=not options["nologin"],
                ):
                    self._say(options, line)
            elif existing != {owner, app} or wants_change:
                raise CommandError(
                    f"{connection.settings_dict['USER']} cannot create or alter roles:"
                    " run create_roles as a superuser first"
                )
            cursor.execute("SELECT current_user")
            user = cursor.fetchone()[0]
            if user == app:
                raise CommandError("the application role cannot grant itself anything")
        with transaction.atomic(), connection.cursor() as cursor:
            for name in roles.hand_over(cursor, owner=owner):
                self._say(options, f"owner of {name}: {owner}")
            granted = grant_application_role(cursor, owner=owner, app=app)
        self._say(
            options,
            f"{app}: SELECT, INSERT, UPDATE on the tables; read only:"
            f" {', '.join(granted['select'])};"
            f" DELETE on {len(granted['delete'])} tables, TRUNCATE on"
            f" {len(granted['truncate'])} read models",
        )
        if options["verbosity"] > 1:
            for table in granted["delete"]:
                reason = DELETABLE.get(table) or next(
                    (
                        why
                        for name, why in DELETABLE.items()
                        if name.endswith("_") and table.startswith(name)
                    ),
                    "read model",
                )
                self.stdout.write(f"  DELETE {table}: {reason}")

    def _say(self, options: dict[str, Any], line: str) -> None:
        if options["verbosity"] > 0:
            self.stdout.write(line)
