"""python manage.py ingest_events FILE  (JSON Lines; '-' reads standard input)"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import IO, Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import reset_queries
from tqdm import tqdm

from ledger.ingestion import PreparedBatch, commit, prepare

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
        # Two stages: a helper thread parses and validates chunk N+1 while this
        # thread commits chunk N (the database wait releases the GIL). Commits
        # stay on this thread's connection, in file order, one at a time.
        preparer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ingest-prepare")
        # Each database round trip of the commit ends waiting for the GIL, which
        # the busy helper yields only every switch interval (5 ms by default).
        sys.setswitchinterval(0.0005)
        previous: tuple[Future[PreparedBatch], int] | None = None

        def commit_previous() -> None:
            assert previous is not None
            future, size = previous
            report = commit(future.result(), source="file")
            # With DEBUG on, Django keeps every SQL text; a long import must not.
            reset_queries()
            for key, value in report.summary().items():
                totals[key] += value
            bar.update(size)
            bar.set_postfix(totals, refresh=False)

        try:
            for chunk, size in _chunks(stream, chunk_size):
                upcoming = preparer.submit(prepare, chunk)
                if previous is not None:
                    commit_previous()
                previous = (upcoming, size)
            if previous is not None:
                commit_previous()
        finally:
            preparer.shutdown(wait=True, cancel_futures=True)
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
