from __future__ import annotations

import datetime as dt

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
