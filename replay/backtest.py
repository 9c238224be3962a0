"""Backtest: run a draft program over a window of recorded history, in a scratch database.

``manage.py backtest`` (:func:`launch`) checks the draft, makes a scratch
database beside the live one and runs ``backtest_into`` in it
(:func:`run`), which reads the live database through a read-only connection
in one snapshot and never writes to it:

1. the live log's inbound facts that occurred before the window are copied
   (users, wallets, holdings, risk flags; fills before the window decide
   nothing a program of the window does, and are left out);
2. the draft, placed on the window by its program's forecast
   (``replay.forecasts``), is applied with ``apply_config``; its
   ``funding_accounts`` are not applied, they are the proposed budget;
3. the window is walked on a grid of ``step`` (default an hour): at each
   instant t the facts that occurred in [previous instant, t) are copied and
   folded, the program's jobs due at t run with the clock frozen at t (interval
   jobs once per step, or at their period if it is longer; daily jobs at their
   time), then the users act as the forecast assumes;
4. the program's figures are read from the scratch database and, with
   ``--live``, the live program's from the live one.

Facts are fed by ``occurred_at``, not by arrival: a fact is seen as if it had
arrived when it happened. History imported in bulk (whose ``received_at`` is
the import's) then backtests as it happened, and a late fact of the record
only arrives earlier than it did, never after a decision it took part in.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
import secrets
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import yaml
from django.db import connection, transaction

from jobs.registry import Daily, JobSpec, get_job
from jobs.runner import JobFailed, run_job
from ledger import projection
from ledger.configuration import ConfigError, apply_config
from ledger.event_store import take_append_lock
from replay import backtest_report, scratch
from replay.forecasts import Context, Program, Refused, Rows, Window, budget_of, forecast_for
from replay.rebuild import frozen_clock

DEFAULT_STEP = dt.timedelta(hours=1)
# Positions per transaction when copying the history before the window.
COPY_RANGE = 500_000
_EVENT_COLUMNS = "event_id, type, occurred_at, received_at, user_id, data, extra, body_hash, source"


@dataclass
class Counts:
    facts: int = 0
    job_runs: int = 0
    failures: list[str] = field(default_factory=list)


Progress = Callable[[dt.datetime, Counts], None]


def parse_seed(text: str | None) -> str:
    """The backtest's seed: 64 hex digits as given, any other text hashed into
    some, none a fresh random one (printed in the report, so a run can be repeated)."""
    if not text:
        return secrets.token_hex(32)
    if re.fullmatch(r"[0-9a-fA-F]{64}", text):
        return text.lower()
    return hashlib.sha256(text.encode()).hexdigest()


def parse_step(text: str) -> dt.timedelta:
    """``5m``, ``1h`` or a number of minutes."""
    match = re.fullmatch(r"\s*(\d+)\s*([mh]?)\s*", text)
    if not match or int(match.group(1)) <= 0:
        raise Refused(f"step {text!r}: write minutes (60), or 5m, 1h")
    minutes = int(match.group(1)) * (60 if match.group(2) == "h" else 1)
    return dt.timedelta(minutes=minutes)


def load_draft(text: str) -> dict[str, Any]:
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as problem:
        raise Refused(f"the draft is not valid YAML/JSON: {problem}") from None
    if not isinstance(document, dict):
        raise Refused("the draft's top level must be a mapping of sections")
    return document


def check(document: dict[str, Any], window: Window) -> None:
    """Refuse what cannot be backtested before any database is made."""
    if window.last_day < window.first_day:
        raise Refused("the window ends before it starts")
    forecast, section = forecast_for(document)
    budget_of(document)

    def no_source(sql: str, params: dict[str, Any]) -> list[tuple[Any, ...]]:
        raise AssertionError("placing a draft on the window reads no database")

    # A draft that cannot be placed on the window (no dates) is refused here,
    # where the admin's form and the command can say why.
    forecast.place(section, Context(window, "0" * 64, DEFAULT_STEP, no_source))


# --- in the scratch database -------------------------------------------------------


def _copy(source: psycopg.Connection[Any], where: str, params: dict[str, Any]) -> int:
    """Append the source's inbound facts matching ``where`` to this log, in
    time order, and fold them (as ``replay.rebuild.copy_facts`` does for a
    range of positions)."""
    with transaction.atomic():
        take_append_lock()
        raw = connection.connection
        assert raw is not None
        with (
            source.cursor().copy(
                f"COPY (SELECT {_EVENT_COLUMNS} FROM ledger_event WHERE origin = 'exchange'"  # noqa: S608
                f" AND {where} ORDER BY occurred_at, position) TO STDOUT (FORMAT BINARY)",
                params,
            ) as out,
            raw.cursor() as cursor,
        ):
            with cursor.copy(
                f"COPY ledger_event ({_EVENT_COLUMNS}) FROM STDIN (FORMAT BINARY)"
            ) as into:
                for block in out:
                    into.write(block)
            copied = max(cursor.rowcount, 0)
        projection.project_pending()
    return copied


def _copy_before(source: psycopg.Connection[Any], start: dt.datetime) -> int:
    # The last position holding such a fact (found through occurred_at's BRIN
    # index): history inserted in time order is not read past it.
    row = source.execute(
        "SELECT coalesce(max(position), 0) FROM ledger_event WHERE occurred_at < %(start)s",
        {"start": start},
    ).fetchone()
    head = int(row[0]) if row else 0
    copied = 0
    for first in range(0, head, COPY_RANGE):
        copied += _copy(
            source,
            "position > %(after)s AND position <= %(upto)s AND occurred_at < %(start)s"
            " AND type <> 'trade.filled'",
            {"after": first, "upto": first + COPY_RANGE, "start": start},
        )
    return copied


class _Beat:
    """Which of the program's jobs fire in (previous instant, t], as Beat would."""

    def __init__(self, program: Program) -> None:
        self.program = program
        self.specs = [get_job(name) for name in program.jobs]
        self.last: dict[str, dt.datetime] = {}

    def due(
        self, previous: dt.datetime | None, at: dt.datetime
    ) -> list[tuple[JobSpec, dict[str, Any]]]:
        runs = []
        for spec in self.specs:
            if not self.program.wants(spec.name, at):
                continue
            if isinstance(spec.schedule, Daily):
                for fire in _daily_fires(spec.schedule, previous, at):
                    runs.append((spec, spec.scheduled_key(fire)))
            elif spec.name not in self.last or at - self.last[spec.name] >= spec.schedule:
                self.last[spec.name] = at
                runs.append((spec, spec.scheduled_key(at)))
        return runs


def _daily_fires(
    schedule: Daily, previous: dt.datetime | None, at: dt.datetime
) -> list[dt.datetime]:
    since = previous or at - dt.timedelta(microseconds=1)
    fires = []
    day = since.date()
    while day <= at.date():
        fire = dt.datetime.combine(day, dt.time(schedule.hour, schedule.minute), tzinfo=dt.UTC)
        if since < fire <= at:
            fires.append(fire)
        day += dt.timedelta(days=1)
    return fires


def _django_rows(sql: str, params: dict[str, Any]) -> list[tuple[Any, ...]]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return list(cursor.fetchall())


def run(
    source_url: str,
    document: dict[str, Any],
    window: Window,
    *,
    seed: str,
    step: dt.timedelta = DEFAULT_STEP,
    live: str | None = None,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Backtest the draft in this (new, migrated) database; returns the report."""
    check(document, window)
    forecast, section = forecast_for(document)
    started = time.monotonic()
    counts = Counts()
    with psycopg.connect(source_url) as source:
        source.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")

        def source_rows(sql: str, params: dict[str, Any]) -> list[tuple[Any, ...]]:
            return list(source.execute(sql, params).fetchall())

        context = Context(window, seed, step, source_rows)
        placed = forecast.place(section, context)
        counts.facts += _copy_before(source, window.start)
        with frozen_clock(window.start):
            try:
                apply_config({forecast.section: placed}, by="backtest")
            except ConfigError as problem:
                raise Refused(str(problem)) from None
            program = forecast.programs(placed, context)[0]
        beat = _Beat(program)
        previous: dt.datetime | None = None
        at = window.start
        while True:
            copy_from, copy_to = previous or window.start, min(at, window.end)
            if copy_to > copy_from:
                counts.facts += _copy(
                    source,
                    "occurred_at >= %(since)s AND occurred_at < %(until)s",
                    {"since": copy_from, "until": copy_to},
                )
            with frozen_clock(at):
                for spec, key in beat.due(previous, at):
                    counts.job_runs += 1
                    try:
                        run_job(spec.name, trigger="backtest", **key)
                    except JobFailed as failure:
                        counts.failures.append(str(failure))
                program.act(at)
            if progress:
                progress(at, counts)
            if at >= program.finish():
                break
            previous, at = at, at + step
        draft = program.figures(_django_rows)
        compared = forecast.live(live, context) if live else None
        source.rollback()
    return backtest_report.build(
        forecast=forecast,
        draft=draft,
        live=compared,
        live_requested=live,
        budget=budget_of(document),
        budget_key=program.budget_key(),
        window=window,
        seed=seed,
        step=step,
        counts={"facts": counts.facts, "job_runs": counts.job_runs, "failures": counts.failures},
        seconds=time.monotonic() - started,
    )


# --- from the live database ----------------------------------------------------------


def launch(
    draft: str,
    window: Window,
    *,
    seed: str,
    step: dt.timedelta = DEFAULT_STEP,
    live: str | None = None,
    into: str | None = None,
    keep: bool = False,
) -> dict[str, Any]:
    """Check the draft, make the scratch database, backtest in it, return the
    report (and drop the database unless ``keep``). Never writes here."""
    check(load_draft(draft), window)
    source = scratch.current_database()
    into = into or f"{source}_backtest"
    with tempfile.TemporaryDirectory() as folder:
        draft_file, report_file = Path(folder, "draft.yaml"), Path(folder, "report.json")
        draft_file.write_text(draft)
        args = [
            "backtest_into",
            scratch.url_of(source),
            str(draft_file),
            "--from",
            window.first_day.isoformat(),
            "--to",
            window.last_day.isoformat(),
            "--seed",
            seed,
            "--step",
            str(int(step.total_seconds() // 60)),
            "--json",
            str(report_file),
            *(["--live", live] if live else []),
        ]
        scratch.create(into)
        try:
            code = scratch.manage(into, *args)
        finally:
            if not keep:
                scratch.drop(into)
        if code or not report_file.exists():
            raise RuntimeError(f"the backtest in {into} failed (exit {code}); its output says why")
        report: dict[str, Any] = json.loads(report_file.read_text())
    return report


__all__ = ["Rows", "launch", "parse_seed", "parse_step", "run"]
