from __future__ import annotations

import datetime as dt
import time

import pytest

from config import clock


def test_frozen_now_freezes_the_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FROZEN_NOW", "2026-11-20T18:00:00+08:00")
    assert clock.now() == dt.datetime(2026, 11, 20, 10, 0, tzinfo=dt.UTC)
    assert clock.today() == dt.date(2026, 11, 20)


def test_the_clock_is_aware_utc(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FROZEN_NOW", raising=False)
    assert clock.now().tzinfo is dt.UTC


def test_an_instant_without_offset_is_refused() -> None:
    with pytest.raises(ValueError, match="no UTC offset"):
        clock.parse_instant("2026-11-20T10:00:00")


def test_a_time_lapse_runs_the_clock_faster_from_its_origin(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    start = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)
    spec = clock.time_lapse(start, 1_000_000.0, 1440)
    # 60 real seconds after the origin at 1,440 times: one simulated day.
    assert clock.lapsed(spec, 1_000_060.0) == dt.datetime(2026, 12, 2, tzinfo=dt.UTC)
    assert clock.lapsed(spec, 1_000_000.5) == dt.datetime(2026, 12, 1, 0, 12, tzinfo=dt.UTC)
    monkeypatch.delenv("FROZEN_NOW", raising=False)
    monkeypatch.setenv("TIME_LAPSE", clock.time_lapse(start, time.time() - 60, 1440))
    # A day and (at most a few seconds of real time later) a few hours.
    assert dt.datetime(2026, 12, 2, tzinfo=dt.UTC) <= clock.now()
    assert clock.now() < dt.datetime(2026, 12, 2, 6, tzinfo=dt.UTC)
    with pytest.raises(ValueError, match="TIME_LAPSE"):
        clock.lapsed("2026-12-01T00:00:00Z", 0.0)
