"""python manage.py ingest_events FILE  (JSON Lines; '-' reads standard input)"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from ledger.ingestion import ingest

CHUNK = 5000


class Command(BaseCommand):
    help = (
        "Import exchange events from a JSON Lines file (one event per line, '-' for stdin), "
        "through the same validation and dedupe as every door. Ends with "
        "'accepted=N duplicate=N rejected=N'."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", help="path of a .jsonl file, or - for standard input")
        parser.add_argument("--chunk", type=int, default=CHUNK, help="events per transaction")
        parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")

    def handle(self, *args: Any, **options: Any) -> None:
        name = options["file"]
        chunk_size = max(1, min(options["chunk"], 50_000))
        if name == "-":
            stream: IO[bytes] = sys.stdin.buffer
            total = None
        else:
            path = Path(name)
            if not path.is_file():
                raise CommandError(f"no such file: {name}")
            stream = path.open("rb")
            total = path.stat().st_size
        totals = {"accepted": 0, "duplicate": 0, "rejected": 0}
        bar = tqdm(
            total=total,
            unit="B",
            unit_scale=True,
            desc="events",
            disable=options["no_progress"],
            file=sys.stderr,
        )
        try:
            for chunk, size in _chunks(stream, chunk_size):
                report = ingest(chunk, source="file")
                for key, value in report.summary().items():
                    totals[key] += value
                bar.update(size)
                bar.set_postfix(totals, refresh=False)
        finally:
            bar.close()
            if stream is not sys.stdin.buffer:
                stream.close()
        self.stdout.write(
            f"accepted={totals['accepted']} duplicate={totals['duplicate']}"
            f" rejected={totals['rejected']}"
        )


def _chunks(stream: IO[bytes], size: int) -> Iterator[tuple[list[bytes], int]]:
    chunk: list[bytes] = []
    consumed = 0
    for line in stream:
        consumed += len(line)
        line = line.strip()
        if not line:
            continue
        chunk.append(line)
        if len(chunk) >= size:
            yield chunk, consumed
            chunk, consumed = [], 0
    if chunk or consumed:
        yield chunk, consumed
