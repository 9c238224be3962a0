"""python manage.py rebuild_projections"""

from __future__ import annotations

import sys
from typing import Any

from django.core.management.base import BaseCommand

from ledger import projection


class Command(BaseCommand):
    help = "Empty every read model and fold the whole event log into it again (one transaction)."

    def handle(self, *args: Any, **options: Any) -> None:
        def progress(name: str, position: int, head: int) -> None:
            sys.stderr.write(f"\r{name}: {position}/{head}")
            sys.stderr.flush()

        head = projection.rebuild(progress=progress)
        sys.stderr.write("\n")
        names = ", ".join(p.name for p in projection.projectors())
        self.stdout.write(
            f"rebuilt {len(projection.projectors())} projections ({names}) up to position {head}"
        )
