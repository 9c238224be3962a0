"""Events per second through each ingestion door, against a bare COPY.

    .venv/bin/python -m bench.ingest_doors --events 200000 [--memory-events 1000000]

Each door starts from an empty event store and ingests the same generated
``trade.filled`` traffic (2% redelivered duplicates), timed from the first byte
sent to the last event committed *and projected* (the closed-orders read model
is up to date when a door reports done):

- REST: gunicorn (2 workers) on a local port, batches of 5,000, 2 client threads;
- file: ``manage.py ingest_events FILE`` as a subprocess;
- stream: events already in a Redis Stream, ``consume_events --until-idle``
  consumers in one group;
- COPY: the same rows COPYed by psycopg into a plain table with no index,
  the physical limit of this machine.

``--memory-events`` also imports a file of that many events and reports the
importer's peak resident memory (``ru_maxrss`` of the child process).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid

from bench import harness

harness.setup()

import redis  # noqa: E402
from django.conf import settings  # noqa: E402
from django.db import connection  # noqa: E402

from bench.workload import as_lines, trade_fills  # noqa: E402
from ledger.models import ClosedOrder, Event  # noqa: E402
from ledger.stream import publish_events  # noqa: E402

PYTHON = sys.executable
READ_MODELS = [
    "ledger_event",
    # The log's chain starts again with the log.
    "ledger_loglink",
    "ledger_closedorder",
    "ledger_exchangeuser",
    "ledger_futureswalletstate",
    "ledger_futurespositionsstate",
    "ledger_holdingstate",
    "ledger_projectioncheckpoint",
    "ledger_quarantinedinput",
]


def empty_store() -> None:
    with connection.cursor() as cursor:
        cursor.execute(f"TRUNCATE {', '.join(READ_MODELS)} RESTART IDENTITY")


def stored() -> tuple[int, int]:
    return Event.objects.count(), ClosedOrder.objects.count()


def door_copy(lines: list[bytes]) -> float:
    events = [json.loads(line) for line in lines]
    with connection.cursor() as cursor:
        cursor.execute("DROP TABLE IF EXISTS bench_copy")
        cursor.execute(
            "CREATE TABLE bench_copy (event_id text, type text, occurred_at timestamptz,"
            " user_id text, data jsonb)"
        )
    raw = connection.connection
    assert raw is not None
    started = time.perf_counter()
    with (
        raw.transaction(),
        raw.cursor() as cursor,
        cursor.copy(
            "COPY bench_copy (event_id, type, occurred_at, user_id, data) FROM STDIN"
        ) as copy,
    ):
        for event in events:
            copy.write_row(
                (
                    event["event_id"],
                    event["type"],
                    event["occurred_at"],
                    event["user_id"],
                    json.dumps(event["data"]),
                )
            )
    return time.perf_counter() - started


def door_file(lines: list[bytes]) -> tuple[float, int, str]:
    with tempfile.NamedTemporaryFile(suffix=".jsonl", delete=False) as handle:
        handle.writelines(lines)
    try:
        return harness.child_run(
            [PYTHON, "manage.py", "ingest_events", handle.name, "--no-progress"]
        )
    finally:
        os.unlink(handle.name)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def door_rest(lines: list[bytes], batch: int = 5000, clients: int = 2) -> float:
    from access.services import create_service_token

    _, token = create_service_token(name="bench")
    port = _free_port()
    server = subprocess.Popen(
        [
            PYTHON,
            "-m",
            "gunicorn",
            "config.wsgi",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            "2",
            "--timeout",
            "300",
            "--log-level",
            "warning",
        ],
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        bodies = [
            b'{"events":[' + b",".join(line.rstrip(b"\n") for line in lines[i : i + batch]) + b"]}"
            for i in range(0, len(lines), batch)
        ]
        queue = list(reversed(bodies))
        lock = threading.Lock()
        failures: list[str] = []

        def client() -> None:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
            while True:
                with lock:
                    if not queue:
                        return
                    body = queue.pop()
                conn.request(
                    "POST",
                    "/api/v1/events",
                    body=body,
                    headers={
                        "Authorization": f"Bearer {token}",
                        "Content-Type": "application/json",
                    },
                )
                response = conn.getresponse()
                payload = response.read()
                if response.status != 200:
                    failures.append(f"{response.status}: {payload[:300]!r}")

        started = time.perf_counter()
        threads = [threading.Thread(target=client) for _ in range(clients)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.perf_counter() - started
        if failures:
            raise RuntimeError(failures[0])
        return elapsed
    finally:
        server.terminate()
        server.wait()


def door_stream(lines: list[bytes], consumers: int) -> float:
    client = redis.Redis.from_url(settings.REDIS_URL)
    stream = f"bench.events.{uuid.uuid4().hex[:8]}"
    for i in range(0, len(lines), 10_000):
        publish_events(client, stream, [line.rstrip(b"\n") for line in lines[i : i + 10_000]])
    client.xgroup_create(stream, "bench", id="0")
    argv = [
        PYTHON,
        "manage.py",
        "consume_events",
        "--stream",
        stream,
        "--group",
        "bench",
        "--batch",
        "5000",
        "--block-ms",
        "200",
        "--until-idle",
    ]
    started = time.perf_counter()
    procs = [
        subprocess.Popen(
            [*argv, "--name", f"c{n}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        for n in range(consumers)
    ]
    for proc in procs:
        if proc.wait() != 0:
            raise RuntimeError("a consumer failed")
    elapsed = time.perf_counter() - started
    client.delete(stream)
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--consumers", type=int, default=2)
    parser.add_argument(
        "--memory-events",
        type=int,
        default=0,
        help="also import a file of this many events and report peak memory",
    )
    args = parser.parse_args()

    lines = list(as_lines(trade_fills(args.events)))
    unique = len({json.loads(line)["event_id"] for line in lines})
    print(
        f"ingest_doors: {len(lines)} trade.filled events ({unique} distinct, "
        f"{len(lines) - unique} redelivered), {os.cpu_count()} cores",
        flush=True,
    )

    copy_seconds = door_copy(lines)
    copy_rate = len(lines) / copy_seconds
    harness.row("bare COPY into a plain table", f"{copy_rate:>10,.0f} ev/s  ({copy_seconds:.2f} s)")

    results: dict[str, float] = {}
    empty_store()
    results["REST batch door (5,000/request)"] = door_rest(lines)
    expected = stored()
    for label, run in [
        ("file door (ingest_events)", lambda: door_file(lines)[0]),
        (f"stream door ({args.consumers} consumers)", lambda: door_stream(lines, args.consumers)),
    ]:
        empty_store()
        results[label] = run()
        if stored() != expected:
            raise RuntimeError(f"{label}: stored {stored()} but the REST door stored {expected}")
    for label, seconds in results.items():
        rate = len(lines) / seconds
        harness.row(
            label, f"{rate:>10,.0f} ev/s  ({seconds:.2f} s, {rate / copy_rate:.0%} of COPY)"
        )
    harness.row("stored events / closed orders (each door)", f"{expected[0]:,} / {expected[1]:,}")

    if args.memory_events:
        empty_store()
        with tempfile.NamedTemporaryFile(suffix=".jsonl", delete=False) as big:
            for line in as_lines(trade_fills(args.memory_events, seed=11)):
                big.write(line)
        try:
            seconds, peak_mb, out = harness.child_run(
                [PYTHON, "manage.py", "ingest_events", big.name, "--no-progress"]
            )
        finally:
            os.unlink(big.name)
        rate = args.memory_events / seconds
        harness.row(
            f"file of {args.memory_events:,} events", f"{rate:>10,.0f} ev/s  ({seconds:.1f} s)"
        )
        harness.row("  peak memory of the importer", f"{peak_mb} MB")
        harness.row("  importer said", out.strip().splitlines()[-1])


if __name__ == "__main__":
    main()
