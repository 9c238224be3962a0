"""python manage.py consume_events  (a Redis Stream consumer in a consumer group)"""

from __future__ import annotations

import sys
from typing import Any

import redis
from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser

from config.shutdown import stop_on_signals
from ledger.stream import ConsumerStats, EventStreamConsumer, default_consumer_name


class Command(BaseCommand):
    help = (
        "Consume exchange events from the Redis Stream as one member of a consumer group. "
        "Run several for throughput: each entry is delivered to one of them, acknowledged "
        "after commit; duplicates are harmless."
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
            "--no-progress",
            action="store_true",
            help="no running counts on stderr (beside other processes' logs)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        stop = stop_on_signals()
        consumer = EventStreamConsumer(
            client=redis.Redis.from_url(settings.REDIS_URL),
            stream=options["stream"],
            group=options["group"],
            name=options["name"] or default_consumer_name(),
            batch_size=options["batch"],
            block_ms=options["block_ms"],
            reclaim_idle_ms=options["reclaim_idle_ms"],
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
    )
