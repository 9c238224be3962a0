"""Celery Beat's scheduler: django-celery-beat's, made to outlive the database.

django-celery-beat reads the schedules from PostgreSQL. It survives some
database errors (it logs each, with its traceback, when it checks for changes
and when it saves run times: several a second), but not all: the full reread
it does every five minutes, and the first read at start, raise, and Beat
exits. Here each tick first asks the database for ``SELECT 1``; while it does
not answer (``monitoring.outages.outage_of``) Beat goes on with the schedules
it has, saves nothing (run times are saved once it answers), logs the outage
once a minute and drops its connection; a read that failed is done again at
the next tick, and the first read that succeeds logs the end of the outage.
A trigger Beat cannot send because the broker does not answer is logged by
Celery and sent again at the job's next time; ``task_publish_retry_policy``
(settings) makes Beat wait out a short broker outage first.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from django.db import close_old_connections, connection
from django_celery_beat.schedulers import DatabaseScheduler as BaseDatabaseScheduler

from monitoring import outages

logger = logging.getLogger(__name__)

RETRY_SECONDS = 5.0
# While an outage lasts it is logged again this often.
LOG_EVERY_SECONDS = 60.0


class DatabaseScheduler(BaseDatabaseScheduler):
    _down_since: float | None = None
    _logged_at = 0.0

    def all_as_schedule(self) -> dict[str, Any]:
        try:
            schedule: dict[str, Any] = super().all_as_schedule()
        except Exception as exc:
            if outages.outage_of(exc) is None:
                raise
            self._outage(exc)
            return self._schedule or {}
        if self._down_since is not None:
            logger.warning(
                "beat: the database answers again after %.0f s; schedules read again",
                time.monotonic() - self._down_since,
            )
            self._down_since = None
        return schedule

    def schedule_changed(self) -> bool:
        if not self._database_answers():
            return False
        return bool(super().schedule_changed())

    def sync(self) -> None:
        # While the database is down run times wait in memory (saved once it answers).
        if self._down_since is None or self._database_answers():
            super().sync()

    def _database_answers(self) -> bool:
        try:
            close_old_connections()
            with connection.cursor() as cursor:
                cursor.execute("SELECT 1")
        except Exception as exc:
            if outages.outage_of(exc) is None:
                raise
            self._outage(exc)
            return False
        return True

    def tick(self, *args: Any, **kwargs: Any) -> float:
        try:
            return float(super().tick(*args, **kwargs))
        except Exception as exc:
            if outages.outage_of(exc) is None:
                raise
            self._outage(exc)
            return RETRY_SECONDS

    def _outage(self, exc: BaseException) -> None:
        # Read the schedules again at the next tick: that read says when it is over.
        self._initial_read = True
        now = time.monotonic()
        if self._down_since is None:
            self._down_since = now
        if now - self._logged_at >= LOG_EVERY_SECONDS or self._logged_at < self._down_since:
            self._logged_at = now
            logger.warning(
                "beat: %s (down for %.0f s); going on with the schedules in hand, trying"
                " again every %.0f s",
                outages.describe(exc),
                now - self._down_since,
                RETRY_SECONDS,
            )
        outages.discard_database_connection()
