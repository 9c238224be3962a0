"""A log line holding a lone surrogate is still written, the surrogate escaped.

Text a caller sent can hold one (a value decoded with surrogate escapes); it is
not UTF-8, so neither orjson nor a UTF-8 stream takes it as it is.
"""

from __future__ import annotations

import io
import json
import logging
import sys
from collections.abc import Iterator

import pytest

from monitoring.logs import JsonFormatter


@pytest.fixture
def utf8_stream() -> Iterator[io.BytesIO]:
    """The configured console handler (settings.LOGGING) writing to a strict
    UTF-8 stream, as a process's stdout is."""
    handler = next(
        h
        for h in logging.getLogger().handlers
        if isinstance(h, logging.StreamHandler) and type(h) is logging.StreamHandler
    )
    raw = io.BytesIO()
    stream = io.TextIOWrapper(raw, encoding="utf-8", errors="strict", write_through=True)
    previous = handler.setStream(stream)
    yield raw
    handler.setStream(previous)
    stream.detach()


def _record(message: str, *args: object) -> logging.LogRecord:
    return logging.LogRecord("rewards.test", logging.WARNING, __file__, 1, message, args, None)


def test_a_lone_surrogate_in_a_message_is_escaped() -> None:
    text = JsonFormatter().format(_record("refused user %s of %s", "u\ud800x", "é"))
    text.encode("utf-8")  # writable to any UTF-8 stream
    line = json.loads(text)
    assert line["message"] == "refused user u\\ud800x of é"
    assert list(line) == ["time", "level", "logger", "message"]


def test_every_field_is_escaped() -> None:
    record = _record("low \udc80 high \udbff")
    record.request_id = "req-\ud83d"
    try:
        raise ValueError("bad \udfff")
    except ValueError:
        record.exc_info = sys.exc_info()
    line = json.loads(JsonFormatter().format(record))
    assert line["message"] == "low \\udc80 high \\udbff"
    assert line["request_id"] == "req-\\ud83d"
    assert line["exception"].endswith("ValueError: bad \\udfff")


def test_text_without_surrogates_is_written_as_it_is() -> None:
    line = json.loads(JsonFormatter().format(_record("paid %s 😀 \\ud800", "ü")))
    assert line["message"] == "paid ü 😀 \\ud800"


def test_the_configured_handler_writes_the_line(
    utf8_stream: io.BytesIO, capsys: pytest.CaptureFixture[str]
) -> None:
    logging.getLogger("rewards.test").warning("event %s refused", "\ud800\x00")
    [line] = utf8_stream.getvalue().decode("utf-8").splitlines()
    assert json.loads(line)["message"] == "event \\ud800\x00 refused"
    # A failed write would have been reported by logging on stderr.
    assert "Logging error" not in capsys.readouterr().err
