"""python manage.py verify_log [--expect HASH@POSITION ...]"""

from __future__ import annotations

import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from ledger.chain import parse_kept
from ledger.chain_verification import verify_log


class Command(BaseCommand):
    help = (
        "Recompute the event log's hash chain from its first link and name the first position"
        " where it breaks (an event changed, deleted or inserted, a link changed, an event no"
        " link covers); exit non-zero on a break. --expect checks that heads kept earlier"
        " (chain_head's HASH@POSITION) are still links of this chain."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--expect",
            action="append",
            default=[],
            metavar="HASH@POSITION",
            help="a chain head kept earlier (chain_head); may be given several times",
        )
        parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            expect = dict(parse_kept(text) for text in options["expect"])
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        bar = tqdm(
            unit=" positions",
            unit_scale=True,
            desc="verified",
            disable=options["no_progress"],
            file=sys.stderr,
        )

        def progress(position: int, head: int) -> None:
            bar.total = head
            bar.update(position - bar.n)

        try:
            result = verify_log(expect=expect, progress=progress)
        finally:
            bar.close()
        if result.breach is not None:
            breach = result.breach
            self.stdout.write(f"BROKEN at position {breach.position}: {breach.message}")
            self.stdout.write(
                f"(verified before it: {result.links:,} links, {result.events:,} events)"
            )
            raise CommandError(f"the log's chain breaks at position {breach.position}")
        for position, digest in result.confirmed:
            self.stdout.write(f"kept head {digest}@{position}: found in the chain")
        if result.head is None:
            self.stdout.write("OK: the log is empty, no link recorded")
            return
        self.stdout.write(
            f"OK: {result.links:,} links, {result.events:,} events, positions 1-"
            f"{result.head.position}; head {result.head.line()}"
        )
