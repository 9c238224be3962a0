"""python manage.py verify_ledger"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from ledger.verification import all_checks, verify_ledger


class Command(BaseCommand):
    help = "Check every ledger invariant; exit non-zero on any breach."

    def handle(self, *args: Any, **options: Any) -> None:
        breaches = verify_ledger()
        failed = {breach.check for breach in breaches}
        for name, (rule, _) in all_checks().items():
            self.stdout.write(f"{'FAIL' if name in failed else 'ok  '} {name}: {rule}")
        for breach in breaches:
            for row in breach.rows:
                self.stdout.write(f"     {breach.check}: {row}")
        if breaches:
            raise CommandError(f"{len(breaches)} ledger invariant(s) breached")
        self.stdout.write("ledger sound")
