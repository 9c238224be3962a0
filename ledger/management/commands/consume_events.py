"""python manage.py consume_events  (a Redis Stream consumer in a consumer group)"""

from __future__ import annotations

import sys
from typing import Any

import redis
from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser
from django.db import connection

from config.shutdown import stop_on_signals
from ledger.stream import ConsumerStats, EventStreamConsumer, default_consumer_name
from monitoring.outages import Backoff

# A consumer that cannot connect gives up the attempt after this long and waits
# its backoff: a server that hangs must not hold it longer than one that refuses.
CONNECT_TIMEOUT_SECONDS = 5


class Command(BaseCommand):
    help = (
        "Consume exchange events from the Redis Stream as one member of a consumer group. "
        "Run several for throughput: each entry is delivered to one of them, acknowledged "
        "after commit; duplicates are harmless. When Redis or PostgreSQL does not answer it "
        "waits with backoff and retries the same work; it exits only on SIGTERM or SIGINT."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--stream", default=settings.EVENT_STREAM)
        parser.add_argument("--group", default=settings.EVENT_CONSUMER_GROUP)
        parser.add_argument("--name", default=None, help="consumer name (default host-pid)")
        parser.add_argument("--batch", type=int, default=1000, help="entries per transaction")
        parser.add_argument("--block-ms", type=int, default=1000)
        parser.add_argument("--reclaim-idle-ms", type=int, default=settings.EVENT_RECLAIM_IDLE_MS)
        parser.add_argument(
            "--until-idle", action="store_true", help="exit once the stream has nothing left"
        )
        parser.add_argument(
            "--retry-min-seconds",
            type=float,
            default=Backoff.first,
            help="first wait after Redis or the database did not answer (doubles each retry)",
        )
        parser.add_argument(
            "--retry-max-seconds", type=float, default=Backoff.cap, help="longest wait"
        )
        parser.add_argument(
            "--no-progress",
            action="store_true",
            help="no running counts on stderr (beside other processes' logs)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        stop = stop_on_signals()
        name = options["name"] or default_consumer_name()
        # Its database session names it in pg_stat_activity; a connection attempt
        # to a server that does not answer ends, and is retried like a refusal.
        db_options = connection.settings_dict["OPTIONS"]
        db_options.setdefault("application_name", f"consume_events {name}"[:63])
        db_options.setdefault("connect_timeout", CONNECT_TIMEOUT_SECONDS)
        connection.close()  # any session opened before (checks) reconnects with them
        consumer = EventStreamConsumer(
            client=redis.Redis.from_url(
                settings.REDIS_URL,
                socket_connect_timeout=CONNECT_TIMEOUT_SECONDS,
                # Longer than a blocking read waits, so only a Redis that hangs hits it.
                socket_timeout=options["block_ms"] / 1000 + 10,
            ),
            stream=options["stream"],
            group=options["group"],
            name=name,
            batch_size=options["batch"],
            block_ms=options["block_ms"],
            reclaim_idle_ms=options["reclaim_idle_ms"],
            backoff=Backoff(options["retry_min_seconds"], options["retry_max_seconds"]),
        )
        self.stderr.write(
            f"consuming {consumer.stream} as {consumer.name} in group {consumer.group}"
        )
        on_batch = None if options["no_progress"] else self._progress
        stats = consumer.run(stop=stop, idle_exit=options["until_idle"], on_batch=on_batch)
        if on_batch is not None:
            sys.stderr.write("\n")
        self.stdout.write(_summary(stats))

    def _progress(self, stats: ConsumerStats) -> None:
        sys.stderr.write("\r" + _summary(stats))
        sys.stderr.flush()


def _summary(stats: ConsumerStats) -> str:
    return (
        f"accepted={stats.accepted} duplicate={stats.duplicate} rejected={stats.rejected}"
        f" unprocessable={stats.quarantined_unprocessable} reclaimed={stats.reclaimed}"
        f" retries={stats.retries} outages={stats.outages} parked={stats.parked}"
    )
