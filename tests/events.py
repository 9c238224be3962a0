"""Builders of CONTRACT.md events for tests and benchmarks: valid by default,
every field overridable."""

from __future__ import annotations

import itertools
from typing import Any

_ids = itertools.count(1)


def _event_id(prefix: str) -> str:
    return f"{prefix}-{next(_ids):08d}"


def envelope(
    event_type: str,
    data: dict[str, Any],
    *,
    user_id: str = "u_1",
    occurred_at: str = "2026-11-20T10:00:00Z",
    event_id: str | None = None,
) -> dict[str, Any]:
    return {
        "event_id": event_id or _event_id(event_type.split(".")[0]),
        "type": event_type,
        "occurred_at": occurred_at,
        "user_id": user_id,
        "data": data,
    }


def registered(
    user_id: str = "u_1",
    *,
    account_type: str = "main",
    parent_user_id: str | None = None,
    referral_code: str | None = None,
    **kw: Any,
) -> dict[str, Any]:
    return envelope(
        "user.registered",
        {
            "account_type": account_type,
            "parent_user_id": parent_user_id,
            "referral_code": referral_code,
        },
        user_id=user_id,
        **kw,
    )


def fill(
    user_id: str = "u_1",
    *,
    order_id: str = "o_1",
    action: str = "close",
    realized_pnl: str = "-10",
    notional: str = "1000",
    symbol: str = "BTC_USDT",
    market: str = "usdt_m",
    side: str = "long",
    fee: str = "0.5",
    fee_rate: str = "0.0005",
    fee_asset: str = "USDT",
    origin: str = "manual",
    promo_funding: list[str] | None = None,
    quantity: str = "0.01",
    price: str = "100000",
    **kw: Any,
) -> dict[str, Any]:
    return envelope(
        "trade.filled",
        {
            "order_id": order_id,
            "symbol": symbol,
            "market": market,
            "action": action,
            "side": side,
            "quantity": quantity,
            "price": price,
            "notional": notional,
            "fee": fee,
            "fee_asset": fee_asset,
            "fee_rate": fee_rate,
            "realized_pnl": realized_pnl if action == "close" else "0",
            "origin": origin,
            "promo_funding": promo_funding or [],
        },
        user_id=user_id,
        **kw,
    )


def wallet(
    user_id: str = "u_1",
    *,
    asset: str = "USDT",
    available: str = "1000",
    locked_in_orders: str = "0",
    margin_used: str = "0",
    bonus: str = "0",
    **kw: Any,
) -> dict[str, Any]:
    return envelope(
        "futures_wallet.updated",
        {
            "asset": asset,
            "available": available,
            "locked_in_orders": locked_in_orders,
            "margin_used": margin_used,
            "bonus": bonus,
        },
        user_id=user_id,
        **kw,
    )


def positions(
    user_id: str = "u_1", *, items: list[dict[str, Any]] | None = None, **kw: Any
) -> dict[str, Any]:
    return envelope("futures_positions.updated", {"positions": items or []}, user_id=user_id, **kw)


def holding(
    user_id: str = "u_1", *, asset: str = "MX", amount: str = "100", **kw: Any
) -> dict[str, Any]:
    return envelope("holding.updated", {"asset": asset, "amount": amount}, user_id=user_id, **kw)


def risk(
    user_id: str = "u_1", *, measures: list[str] | None = None, reason: str = "abuse", **kw: Any
) -> dict[str, Any]:
    return envelope(
        "risk.flagged",
        {"reason": reason, "measures": measures or ["disqualify_campaigns"]},
        user_id=user_id,
        **kw,
    )
