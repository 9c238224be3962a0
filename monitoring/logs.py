"""Logs as JSON lines, each naming the request or the job it belongs to.

Every process (web, Celery worker, stream consumer, commands) writes one JSON
object per line: ``time`` (UTC, RFC 3339 with milliseconds), ``level``,
``logger``, ``message``, ``request_id`` inside an HTTP request, ``job_id``
inside a job run, and ``exception`` when a traceback was logged. A log
collector can index them without parsing free text, and an operator can pull
every line of one request or one job run with a single filter.

The ids live in context variables, set by :class:`RequestIdMiddleware` (see
``monitoring.middleware``) and by ``jobs.runner.run_job``; the
:class:`ContextFilter` on the handler copies them onto each record, so a line
logged by any library during that request or run carries them too.

This module is loaded by ``LOGGING`` before the apps are ready: it imports
nothing of Django or of the project.
"""

from __future__ import annotations

import contextvars
import datetime as dt
import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import orjson

request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)
job_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("job_id", default=None)


@contextmanager
def job_context(value: str) -> Iterator[None]:
    """Mark every log line written inside the block as belonging to job run ``value``."""
    token = job_id.set(value)
    try:
        yield
    finally:
        job_id.reset(token)


class ContextFilter(logging.Filter):
    """Copies the current request id and job id onto each record (never drops one)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id.get()
        record.job_id = job_id.get()
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line, keys in a fixed order, no third-party formatter."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": _timestamp(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key in ("request_id", "job_id"):
            value = getattr(record, key, None)
            if value is not None:
                line[key] = value
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            line["exception"] = record.exc_text
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        # default=str: a message argument that JSON cannot hold is written as its text.
        try:
            return orjson.dumps(line, default=str).decode()
        except orjson.JSONEncodeError:
            # A lone surrogate (text a caller sent, decoded with surrogate
            # escapes) is not UTF-8: orjson refuses it, and so would the
            # stream. The line is still written, each one shown as ``\udXXX``.
            return orjson.dumps(_escaped(line), default=str).decode()


_SURROGATE = re.compile("[\ud800-\udfff]")


def _escaped(line: dict[str, Any]) -> dict[str, Any]:
    return {
        key: _SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", value)
        if isinstance(value, str)
        else value
        for key, value in line.items()
    }


def _timestamp(created: float) -> str:
    moment = dt.datetime.fromtimestamp(created, tz=dt.UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
