"""Reads of Futures Earn: terms in force, a user's state, snapshots and interest."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from earn import rules
from earn.models import (
    Activation,
    DailyInterest,
    EarnDistribution,
    EarnTerms,
    Snapshot,
    SnapshotRun,
)
from ledger.selectors import positions_as_of, wallet_as_of


def terms_for(day: dt.date) -> rules.Terms:
    """The terms in force on ``day`` (ops' effective-dated rows, else the defaults)."""
    row = EarnTerms.objects.filter(effective_from__lte=day).order_by("-effective_from").first()
    if row is None:
        return rules.DEFAULT_TERMS
    return rules.Terms(
        effective_from=row.effective_from,
        assets=tuple(row.assets),
        position_threshold=row.position_threshold,
        boosted_principal=row.boosted_principal,
        boosted_apr=row.boosted_apr,
        base_apr=row.base_apr,
        snapshot_times=rules.parse_times(row.snapshot_times),
    )


def latest_change(user_id: str, at: dt.datetime) -> Activation | None:
    return (
        Activation.objects.filter(user_id=user_id, occurred_at__lte=at)
        .order_by("-occurred_at", "-event_id")
        .first()
    )


def is_active(user_id: str, at: dt.datetime) -> bool:
    change = latest_change(user_id, at)
    return change is not None and change.active


def snapshot_from_history(
    user_id: str, at: dt.datetime, assets: tuple[str, ...]
) -> dict[str, tuple[Decimal, Decimal]]:
    """Per asset: (principal, position value) of one user as of ``at``, from
    the wallet and position state at or before ``at``; principal 0 when the
    user is not active at ``at``. The same rules the snapshot job applies in
    SQL, for one user (estimates, explanations, tests)."""
    positions = positions_as_of(user_id, at)
    value = rules.position_value(positions.positions if positions else [])
    active = is_active(user_id, at)
    result = {}
    for asset in assets:
        wallet = wallet_as_of(user_id, asset, at)
        principal = (
            rules.principal(
                wallet.available, wallet.locked_in_orders, wallet.margin_used, wallet.bonus
            )
            if wallet is not None and active
            else Decimal(0)
        )
        result[asset] = (principal, value)
    return result


def day_snapshots(user_id: str, day: dt.date, now: dt.datetime) -> list[dict[str, Any]]:
    """The day's snapshot instants with the user's values: taken ones as
    recorded (absent from a taken run: inactive, principal 0); instants not
    taken yet as they stand now (``estimated``)."""
    terms = terms_for(day)
    instants = rules.snapshot_instants(day, terms)
    taken = set(SnapshotRun.objects.filter(at__in=instants).values_list("at", flat=True))
    rows: dict[tuple[dt.datetime, str], tuple[Decimal, Decimal]] = {
        (at, asset): (principal, value)
        for at, asset, principal, value in Snapshot.objects.filter(
            user_id=user_id, at__in=instants
        ).values_list("at", "asset", "principal", "position_value")
    }
    result = []
    current: dict[str, tuple[Decimal, Decimal]] | None = None
    for at in instants:
        if at in taken:
            values = {
                asset: rows.get((at, asset), (Decimal(0), Decimal(0))) for asset in terms.assets
            }
            estimated = False
        else:
            if at <= now:
                values = snapshot_from_history(user_id, at, terms.assets)
            else:
                current = current or snapshot_from_history(user_id, now, terms.assets)
                values = current
            estimated = True
        for asset in terms.assets:
            principal, value = values[asset]
            result.append(
                {
                    "at": at,
                    "asset": asset,
                    "principal": principal,
                    "position_value": value,
                    "estimated": estimated,
                }
            )
    return result


def estimate(snapshots: list[dict[str, Any]], terms: rules.Terms) -> list[dict[str, Any]]:
    """The day's interest per asset from its (partly estimated) snapshots."""
    result = []
    for asset in terms.assets:
        mine = [s for s in snapshots if s["asset"] == asset]
        interest = rules.daily_interest(
            [s["principal"] for s in mine], [s["position_value"] for s in mine], terms
        )
        result.append({"asset": asset, **interest.__dict__})
    return result


def interest_history(user_id: str, limit: int = 200) -> list[dict[str, Any]]:
    """The user's daily interest, newest first, each with its snapshots."""
    rows = list(DailyInterest.objects.filter(user_id=user_id).order_by("-day", "asset")[:limit])
    if not rows:
        return []
    days = {row.day for row in rows}
    paid_days = set(EarnDistribution.objects.filter(day__in=days).values_list("day", flat=True))
    start = dt.datetime.combine(min(days), dt.time.min, tzinfo=dt.UTC)
    end = dt.datetime.combine(max(days) + dt.timedelta(days=1), dt.time.min, tzinfo=dt.UTC)
    snapshots: dict[tuple[dt.date, str], list[dict[str, Any]]] = {}
    for at, asset, principal, value in (
        Snapshot.objects.filter(user_id=user_id, at__gte=start, at__lt=end)
        .order_by("at")
        .values_list("at", "asset", "principal", "position_value")
    ):
        snapshots.setdefault((at.date(), asset), []).append(
            {"at": at, "principal": principal, "position_value": value}
        )
    return [
        {
            "day": row.day,
            "asset": row.asset,
            "snapshots": snapshots.get((row.day, row.asset), []),
            "principal": row.principal,
            "position_value": row.position_value,
            "boosted_portion": row.boosted_portion,
            "boosted_apr": row.boosted_apr,
            "base_portion": row.base_portion,
            "base_apr": row.base_apr,
            "interest": row.interest,
            "status": "paid" if row.day in paid_days else "accrued",
        }
        for row in rows
    ]
