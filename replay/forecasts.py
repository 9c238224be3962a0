"""What a backtest forecasts, per program: the registry the programs fill.

A program app says in ``<app>/backtesting.py`` how a draft of the
``apply_config`` section it owns is run over recorded history
(:func:`register`): how the draft is placed on the window, what its users
are assumed to do that history cannot hold (a draft campaign has no
registrations), which of its jobs decide, and which figures it reports, read
by the same SQL from the scratch database and from the live one. The replay
app never imports a program's models: it finds these modules the first time
it needs them.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Protocol

# Runs a query (``%(name)s`` parameters) on one database and returns its rows:
# the scratch database through Django, the live one through its own read-only
# connection. A program's figures are the same SQL on either.
Rows = Callable[[str, dict[str, Any]], list[tuple[Any, ...]]]


class Refused(ValueError):
    """The draft, or the request, cannot be backtested; the message says why."""


@dataclass(frozen=True)
class Window:
    """The UTC days ``first_day`` to ``last_day``, both included."""

    first_day: dt.date
    last_day: dt.date

    @property
    def start(self) -> dt.datetime:
        return dt.datetime.combine(self.first_day, dt.time.min, tzinfo=dt.UTC)

    @property
    def end(self) -> dt.datetime:
        """Exclusive: the start of the day after the last."""
        return self.start + dt.timedelta(days=len(self.days))

    @property
    def days(self) -> list[dt.date]:
        count = (self.last_day - self.first_day).days + 1
        return [self.first_day + dt.timedelta(days=n) for n in range(count)]


@dataclass
class Series:
    """A figure per UTC day of the window (charted, and in the JSON)."""

    key: str
    title: str
    unit: str
    values: list[Decimal]


@dataclass
class Figures:
    """What one program did over the window, in the draft or live."""

    name: str
    # (label, value as people read it), in the order of the report.
    figures: list[tuple[str, str]]
    # Cost per UTC day of the window, per asset.
    cost: dict[str, list[Decimal]]
    series: list[Series] = field(default_factory=list)


@dataclass(frozen=True)
class Context:
    window: Window
    seed: str
    # Interval jobs run on this grid (and the user behaviour with them).
    step: dt.timedelta
    # The live database, read-only, in one snapshot.
    source: Rows


class Program(Protocol):
    """One program of the draft, applied in the scratch database."""

    name: str
    # The jobs that decide for this program, run as Beat would over the window.
    jobs: tuple[str, ...]

    def finish(self) -> dt.datetime:
        """The last instant its jobs must run at (a campaign's draw is after its end)."""
        ...

    def wants(self, job: str, at: dt.datetime) -> bool:
        """Whether Beat's run of ``job`` at ``at`` can decide anything for this
        program (a draw before the end cannot): the others are not run."""
        ...

    def act(self, at: dt.datetime) -> None:
        """The users' assumed behaviour at a grid instant, after that instant's jobs."""
        ...

    def figures(self, rows: Rows) -> Figures:
        """The draft's figures, read from the scratch database."""
        ...

    def budget_key(self) -> tuple[str, str]:
        """(funding program, asset) whose proposed top-ups are its budget."""
        ...


@dataclass(frozen=True)
class Forecast:
    section: str
    # Said in every report: the forecast's assumptions about what users do.
    assumptions: tuple[str, ...]
    # The draft's section, placed on the window (its dates moved), before it is applied.
    place: Callable[[Any, Context], Any]
    # After ``apply_config``: the program(s) of the applied section.
    programs: Callable[[Any, Context], list[Program]]
    # The live program named by ``--live``, read from the live database; None if there is none.
    live: Callable[[str, Context], Figures | None]


_FORECASTS: dict[str, Forecast] = {}
_discovered = False


def register(forecast: Forecast) -> None:
    _FORECASTS[forecast.section] = forecast


def forecasts() -> dict[str, Forecast]:
    global _discovered
    if not _discovered:
        from django.utils.module_loading import autodiscover_modules

        autodiscover_modules("backtesting")
        _discovered = True
    return dict(_FORECASTS)


def per_day(window: Window, found: list[tuple[Any, ...]]) -> list[Decimal]:
    """(day, value) rows as a value per day of the window (other days left out)."""
    index = {day: i for i, day in enumerate(window.days)}
    values = [Decimal(0)] * len(index)
    for day, value in found:
        if day in index:
            values[index[day]] += Decimal(value or 0)
    return values


def per_asset(window: Window, found: list[tuple[Any, ...]]) -> dict[str, list[Decimal]]:
    """(day, asset, amount) rows as amounts per asset and day of the window."""
    assets: dict[str, list[tuple[Any, ...]]] = {}
    for day, asset, amount in found:
        assets.setdefault(asset, []).append((day, amount))
    return {asset: per_day(window, values) for asset, values in assets.items()}


# What a pool holds in the scratch database when a forecast funds it: more
# than any forecast pays, so that every payment of the draft is made.
UNLIMITED = Decimal(10) ** 15


def fund_without_limit(program: str, assets: list[str]) -> None:
    """Fund ``program``'s pool in each asset without limit, in the scratch
    database, for a program whose jobs pay as they decide (the draft's own
    top-ups are its budget, compared with the cost in the report)."""
    from ledger.bookkeeping import fund_account, open_funding_account

    for asset in assets:
        fund_account(
            account=open_funding_account(program=program, asset=asset),
            amount=UNLIMITED,
            idempotency_key=f"backtest-{program}-{asset}",
            by="backtest",
            note="a forecast's pool: without limit",
        )


def budget_of(document: dict[str, Any]) -> dict[tuple[str, str], Decimal]:
    """The draft's ``funding_accounts`` top-ups, summed per (program, asset): the
    proposed budget. They are not applied in the scratch database (the forecast
    shows what the program would cost, whatever it is funded with)."""
    from ledger.configuration import ConfigError, decimal_field

    budget: dict[tuple[str, str], Decimal] = {}
    section = document.get("funding_accounts") or []
    if not isinstance(section, list):
        raise Refused("funding_accounts: must be a list")
    for index, entry in enumerate(section):
        if not isinstance(entry, dict) or "program" not in entry or "asset" not in entry:
            raise Refused(f"funding_accounts[{index}]: program and asset are required")
        key = (str(entry["program"]), str(entry["asset"]).upper())
        for number, top_up in enumerate(entry.get("top_ups") or []):
            where = f"funding_accounts[{index}].top_ups[{number}].amount"
            try:
                amount = decimal_field(top_up.get("amount"), where, positive=True)
            except ConfigError as problem:
                raise Refused(str(problem)) from None
            budget[key] = budget.get(key, Decimal(0)) + amount
    return budget


def forecast_for(document: dict[str, Any]) -> tuple[Forecast, Any]:
    """The one program section of the draft, and its forecast; refused otherwise."""
    known = forecasts()
    sections = [name for name in document if name != "funding_accounts"]
    if len(sections) != 1:
        raise Refused(
            "a draft for a backtest holds one program section (and its funding_accounts);"
            f" this one holds {', '.join(sections) or 'none'}"
        )
    name = sections[0]
    if name not in known:
        raise Refused(
            f"backtest does not forecast the section {name!r} yet; it forecasts"
            f" {', '.join(sorted(known))} (see docs/runbook.md, Backtest)"
        )
    return known[name], document[name]
