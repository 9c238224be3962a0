"""python manage.py ingest_events FILE  (JSON Lines; '-' reads standard input)"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import IO, Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import InterfaceError, OperationalError, close_old_connections, reset_queries
from tqdm import tqdm

from ledger import wire
from ledger.ingestion import REJECTED, IngestReport, PreparedBatch, commit, prepare

logger = logging.getLogger(__name__)

CHUNK = 5000
# A database that goes away is waited for this long (doubling pauses) before
# the import stops; a rerun of the same file then finds the stored lines as
# duplicates.
RETRY_PAUSES = (1, 2, 4, 8, 16, 32)
# Rejected lines printed without -v: enough to see what is wrong with a file,
# not a screen of one fault repeated a million times.
SHOWN_REJECTIONS = 20
# Exit status when the import stopped on an outage (EX_TEMPFAIL: try again).
EXIT_TEMPFAIL = 75


class Command(BaseCommand):
    help = (
        "Import exchange events from a JSON Lines file (one event per line, '-' for stdin), "
        "through the same validation and dedupe as every door. Every line is accounted for: "
        "it ends with 'accepted=N duplicate=N rejected=N'; rejected lines are quarantined "
        f"and listed as 'line N: field: message' (the first {SHOWN_REJECTIONS}; -v lists them "
        "all, --report writes them as JSON Lines)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", help="path of a .jsonl file, or - for standard input")
        parser.add_argument("--chunk", type=int, default=CHUNK, help="events per transaction")
        parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
        parser.add_argument(
            "--report",
            metavar="PATH",
            help="write one JSON object per rejected line: line, event_id, reason, errors,"
            " quarantine_id",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        name = options["file"]
        chunk_size = max(1, min(options["chunk"], 50_000))
        verbose = options["verbosity"] >= 2
        if name == "-":
            stream: IO[bytes] = sys.stdin.buffer
            total = None
        else:
            path = Path(name)
            if not path.is_file():
                raise CommandError(f"no such file: {name}")
            stream = path.open("rb")
            total = path.stat().st_size
        report_file = Path(options["report"]).open("w") if options["report"] else None  # noqa: SIM115 - closed in the finally below
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
        previous: tuple[Future[PreparedBatch], list[int], int] | None = None
        last_line = 0
        shown = 0

        def commit_previous() -> None:
            nonlocal last_line, shown
            assert previous is not None
            future, lines, size = previous
            report = _commit_waiting_out_outages(future.result(), lines, self.stderr)
            # With DEBUG on, Django keeps every SQL text; a long import must not.
            reset_queries()
            for key, value in report.summary().items():
                totals[key] += value
            for outcome in report.outcomes:
                if outcome.status != REJECTED:
                    continue
                line = lines[outcome.index]
                if verbose or shown < SHOWN_REJECTIONS:
                    shown += 1
                    for error in outcome.errors:
                        self.stdout.write(f"line {line}: {error.field}: {error.message}")
                if report_file is not None:
                    report_file.write(json.dumps({"line": line, **_rejection(outcome)}) + "\n")
            if lines:
                last_line = lines[-1]
            bar.update(size)
            bar.set_postfix(totals, refresh=False)

        try:
            for chunk, lines, size in _chunks(stream, chunk_size):
                upcoming = preparer.submit(prepare, chunk)
                if previous is not None:
                    commit_previous()
                previous = (upcoming, lines, size)
            if previous is not None:
                commit_previous()
        except _Outage as outage:
            self.stdout.write(_summary(totals))
            raise CommandError(
                f"stopped after line {last_line}: the database is unavailable ({outage}); "
                "lines up to there are stored, and a rerun of the same file counts them "
                "as duplicates",
                returncode=EXIT_TEMPFAIL,
            ) from None
        finally:
            preparer.shutdown(wait=True, cancel_futures=True)
            bar.close()
            if stream is not sys.stdin.buffer:
                stream.close()
            if report_file is not None:
                report_file.close()
        if totals["rejected"] > shown:
            self.stderr.write(
                f"{totals['rejected'] - shown} more rejected lines are in quarantine (the admin);"
                " -v lists them all, --report PATH writes them to a file"
            )
        self.stdout.write(_summary(totals))


class _Outage(Exception):
    pass


def _commit_waiting_out_outages(
    batch: PreparedBatch, lines: list[int], stderr: Any
) -> IngestReport:
    for pause in (*RETRY_PAUSES, None):
        try:
            return commit(batch, source="file")
        except (OperationalError, InterfaceError) as exc:
            close_old_connections()
            if pause is None:
                raise _Outage(wire.printable(str(exc))) from exc
            first = lines[0] if lines else 0
            logger.warning(
                "database unavailable at line %d, retrying in %d s: %s", first, pause, exc
            )
            stderr.write(f"database unavailable at line {first}; retrying in {pause} s")
            time.sleep(pause)
    raise AssertionError("unreachable")


def _rejection(outcome: Any) -> dict[str, Any]:
    return {
        "event_id": outcome.event_id,
        "reason": outcome.reason,
        "errors": [error.as_dict() for error in outcome.errors],
        "quarantine_id": outcome.quarantine_id,
    }


def _summary(totals: dict[str, int]) -> str:
    return (
        f"accepted={totals['accepted']} duplicate={totals['duplicate']}"
        f" rejected={totals['rejected']}"
    )


def _chunks(stream: IO[bytes], size: int) -> Iterator[tuple[list[bytes], list[int], int]]:
    """Non-blank lines in chunks, with their line numbers (from 1) and the
    bytes consumed. A line longer than the wire's read limit is cut there
    (the decoder refuses it) and the rest of it skipped."""
    chunk: list[bytes] = []
    numbers: list[int] = []
    consumed = 0
    number = 0
    limit = wire.MAX_TEXT_BYTES
    while True:
        line = stream.readline(limit + 1)
        if not line:
            break
        number += 1
        consumed += len(line)
        if len(line) > limit and not line.endswith(b"\n"):
            while True:
                rest = stream.readline(limit)
                consumed += len(rest)
                if not rest or rest.endswith(b"\n"):
                    break
        line = line.strip()
        if not line:
            continue
        chunk.append(line)
        numbers.append(number)
        if len(chunk) >= size:
            yield chunk, numbers, consumed
            chunk, numbers, consumed = [], [], 0
    if chunk or consumed:
        yield chunk, numbers, consumed
