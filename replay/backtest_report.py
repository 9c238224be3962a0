"""The backtest's report: a JSON document, its terminal table and its charts.

Everything is derived from the JSON (amounts as exact decimal strings), so
the admin draws a stored report exactly as the terminal printed it.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from ledger.money import for_people, format_amount
from replay.forecasts import Figures, Window

if TYPE_CHECKING:
    from replay.forecasts import Forecast

NOTICE = (
    "FORECAST: what the draft would have done over recorded history, under the"
    " assumptions below; not a record of what happened"
)


def _figures(figures: Figures) -> dict[str, Any]:
    return {
        "name": figures.name,
        "figures": [list(pair) for pair in figures.figures],
        "cost_per_day": {a: [format_amount(v) for v in vs] for a, vs in figures.cost.items()},
        "total": {a: format_amount(sum(vs, Decimal(0))) for a, vs in figures.cost.items()},
        "series": [
            {
                "key": s.key,
                "title": s.title,
                "unit": s.unit,
                "values": [format_amount(v) for v in s.values],
            }
            for s in figures.series
        ],
    }


def _runs_out(days: list[dt.date], cost: list[Decimal], budget: Decimal) -> str | None:
    """The first day whose cumulative cost exceeds the budget (rewards can never
    exceed the funding: from that day on, payments would be refused)."""
    spent = Decimal(0)
    for day, value in zip(days, cost, strict=True):
        spent += value
        if spent > budget:
            return day.isoformat()
    return None


def build(
    *,
    forecast: Forecast,
    draft: Figures,
    live: Figures | None,
    live_requested: str | None,
    budget: dict[tuple[str, str], Decimal],
    budget_key: tuple[str, str],
    window: Window,
    seed: str,
    step: dt.timedelta,
    counts: dict[str, Any],
    seconds: float,
) -> dict[str, Any]:
    program = budget_key[0]
    proposed = {asset: amount for (p, asset), amount in budget.items() if p == program}
    report = {
        "forecast": True,
        "notice": NOTICE,
        "assumptions": list(forecast.assumptions),
        "section": forecast.section,
        "program": draft.name,
        "window": {"from": window.first_day.isoformat(), "to": window.last_day.isoformat()},
        "days": [day.isoformat() for day in window.days],
        "seed": seed,
        "step_minutes": int(step.total_seconds() // 60),
        "facts_copied": counts["facts"],
        "job_runs": counts["job_runs"],
        "job_failures": counts["failures"],
        "seconds": round(seconds, 1),
        "funding_program": program,
        "budget": {asset: format_amount(amount) for asset, amount in proposed.items()},
        "runs_out": {
            asset: _runs_out(window.days, values, proposed[asset])
            for asset, values in draft.cost.items()
            if asset in proposed
        },
        "draft": _figures(draft),
        "live_requested": live_requested,
        "live": _figures(live) if live else None,
    }
    return report


def _amounts(values: list[str]) -> list[Decimal]:
    return [Decimal(v) for v in values]


def _running(values: list[Decimal]) -> list[Decimal]:
    total, out = Decimal(0), []
    for value in values:
        total += value
        out.append(total)
    return out


def text(report: dict[str, Any]) -> str:
    draft, live = report["draft"], report["live"]
    lines = [
        report["notice"],
        f"backtest of {report['program']} over {report['window']['from']} to"
        f" {report['window']['to']} ({len(report['days'])} days), seed {report['seed']},"
        f" step {report['step_minutes']} min: {report['facts_copied']:,} facts,"
        f" {report['job_runs']:,} job runs in {report['seconds']} s",
        *(f"  assumes: {a}" for a in report["assumptions"]),
    ]
    if report["live_requested"] and live is None:
        lines.append(
            f"  live: no {report['section']} program {report['live_requested']!r} to compare"
        )
    lines.append("")
    live_values = dict(map(tuple, live["figures"])) if live else {}
    header = f"{'':<34} {'draft':>28}" + (f" {'live ' + live['name']:>34}" if live else "")
    lines.append(header)
    for label, value in draft["figures"]:
        row = f"{label:<34} {value:>28}"
        if live:
            row += f" {live_values.get(label, '-'):>34}"
        lines.append(row)
    for asset, values in draft["cost_per_day"].items():
        cost = _amounts(values)
        live_cost = _amounts(live["cost_per_day"].get(asset, [])) if live else []
        budget = report["budget"].get(asset)
        lines += [
            "",
            f"{'day':<12} {'cost ' + asset:>20} {'to date':>20} {'budget':>16}"
            + (f" {'live cost':>20}" if live else ""),
        ]
        for n, (day, value, to_date) in enumerate(
            zip(report["days"], cost, _running(cost), strict=True)
        ):
            row = (
                f"{day:<12} {for_people(value):>20} {for_people(to_date):>20}"
                f" {for_people(Decimal(budget)) if budget else '-':>16}"
            )
            if live:
                row += f" {for_people(live_cost[n]) if n < len(live_cost) else '-':>20}"
            lines.append(row)
        total = for_people(Decimal(draft["total"][asset]), asset)
        if budget is None:
            verdict = "no budget proposed in the draft's funding_accounts"
        elif report["runs_out"].get(asset):
            verdict = f"the budget of {for_people(Decimal(budget), asset)} runs out on {report['runs_out'][asset]}"
        else:
            verdict = f"within the budget of {for_people(Decimal(budget), asset)}"
        lines.append(f"total {total}: {verdict}")
        if live:
            lines.append(f"live total {for_people(Decimal(live['total'].get(asset, '0')), asset)}")
    for failure in report["job_failures"][:5]:
        lines.append(f"job failed: {failure}")
    return "\n".join(lines)


def charts(report: dict[str, Any]) -> dict[str, Any]:
    """The payload the dashboard's script draws (support/static/support/dashboard.js)."""
    draft, live = report["draft"], report["live"]
    size = len(report["days"])
    out = []
    for asset, values in draft["cost_per_day"].items():
        cost = _amounts(values)
        live_cost = _amounts(live["cost_per_day"].get(asset, ["0"] * size)) if live else None
        per_day = [{"label": "draft", "data": values}]
        to_date = [
            {"label": "draft: cost to date", "data": [format_amount(v) for v in _running(cost)]}
        ]
        if report["budget"].get(asset):
            to_date.append({"label": "proposed budget", "data": [report["budget"][asset]] * size})
        if live_cost is not None:
            per_day.append(
                {"label": f"live {live['name']}", "data": [format_amount(v) for v in live_cost]}
            )
            to_date.append(
                {
                    "label": "live: cost to date",
                    "data": [format_amount(v) for v in _running(live_cost)],
                }
            )
        out.append(_chart(f"cost-{asset}", "Cost per day", asset, "bar", per_day))
        out.append(
            _chart(f"budget-{asset}", "Cost to date against the budget", asset, "line", to_date)
        )
    live_series = {s["key"]: s for s in live["series"]} if live else {}
    for series in draft["series"]:
        datasets = [{"label": "draft", "data": series["values"]}]
        if series["key"] in live_series:
            datasets.append(
                {"label": f"live {live['name']}", "data": live_series[series["key"]]["values"]}
            )
        out.append(_chart(series["key"], series["title"], series["unit"], "bar", datasets))
    return {"days": report["days"], "charts": out}


def _chart(
    key: str, title: str, unit: str, kind: str, datasets: list[dict[str, Any]]
) -> dict[str, Any]:
    return {
        "key": key,
        "title": title,
        "unit": unit,
        "kind": kind,
        "stacked": False,
        "datasets": datasets,
    }
