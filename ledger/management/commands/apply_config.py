"""python manage.py apply_config FILE"""

from __future__ import annotations

import getpass
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from ledger.configuration import ConfigError, apply_config, load


class Command(BaseCommand):
    help = (
        "Create or update programs from a YAML or JSON file, idempotently (docs/configuration.md)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file")
        parser.add_argument("--by", default=None, help="who applies it (default: OS user)")

    def handle(self, *args: Any, **options: Any) -> None:
        path = Path(options["file"])
        if not path.is_file():
            raise CommandError(f"no such file: {path}")
        try:
            lines = apply_config(load(path), by=options["by"] or f"config:{getpass.getuser()}")
        except ConfigError as exc:
            raise CommandError(str(exc)) from exc
        for line in lines:
            self.stdout.write(line)
        self.stdout.write(f"applied {path}")
