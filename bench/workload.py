"""Realistic exchange traffic for the benchmarks: many users, orders of
several fills (opening then closing), a share of losing closes, and
at-least-once delivery (a share of events delivered twice)."""

from __future__ import annotations

import datetime as dt
import json
import random
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

START = dt.datetime(2026, 11, 20, tzinfo=dt.UTC)
SYMBOLS = [
    ("BTC_USDT", "usdt_m"),
    ("ETH_USDT", "usdt_m"),
    ("BTC_USD", "coin_m"),
    ("ETH_USDC", "usdc_m"),
    ("SOL_USDT", "usdt_m"),
]
ORIGINS = ["manual", "manual", "manual", "api", "copy", "grid", "bot"]


def trade_fills(
    count: int,
    *,
    seed: int = 7,
    duplicate_share: float = 0.02,
    users: int | None = None,
    start: dt.datetime = START,
    seconds_per_order: float = 3,
    id_prefix: str = "trd",
) -> Iterator[dict[str, Any]]:
    """``count`` trade.filled events, duplicates included (same id, same body),
    one order every ``seconds_per_order`` from ``start``."""
    rng = random.Random(seed)
    users = users or max(100, count // 50)
    emitted = 0
    order = 0
    recent: list[dict[str, Any]] = []
    while emitted < count:
        order += 1
        user = f"u_{rng.randrange(users):06d}"
        symbol, market = rng.choice(SYMBOLS)
        origin = rng.choice(ORIGINS)
        side = rng.choice(["long", "short"])
        price = Decimal(rng.randrange(1_000, 90_000))
        opens, closes = rng.randint(1, 2), rng.randint(1, 3)
        losing = rng.random() < 0.45
        clock = start + dt.timedelta(seconds=order * seconds_per_order + rng.random())
        for leg in range(opens + closes):
            if emitted >= count:
                break
            closing = leg >= opens
            quantity = Decimal(rng.randrange(1, 500)) / 100
            notional = (quantity * price).quantize(Decimal("0.01"))
            fee = (notional * Decimal("0.0002")).quantize(Decimal("0.00000001"))
            pnl = Decimal(0)
            if closing:
                size = (notional * Decimal(rng.randrange(1, 300)) / 10_000).quantize(
                    Decimal("0.0001")
                )
                pnl = -size if losing else size
            event = {
                "event_id": f"{id_prefix}-{order:09d}-{leg}",
                "type": "trade.filled",
                "occurred_at": (clock + dt.timedelta(milliseconds=leg * 250))
                .isoformat()
                .replace("+00:00", "Z"),
                "user_id": user,
                "data": {
                    "order_id": f"o-{order:09d}",
                    "symbol": symbol,
                    "market": market,
                    "action": "close" if closing else "open",
                    "side": side,
                    "quantity": str(quantity),
                    "price": str(price),
                    "notional": str(notional),
                    "fee": str(fee),
                    "fee_asset": "USDT",
                    "fee_rate": "0.0002",
                    "realized_pnl": str(pnl),
                    "origin": origin,
                    "promo_funding": ["bonus"] if rng.random() < 0.05 else [],
                },
            }
            yield event
            emitted += 1
            recent.append(event)
            if len(recent) > 1000:
                recent = recent[-500:]
            if emitted < count and rng.random() < duplicate_share:
                yield rng.choice(recent)  # redelivered: same id, same body
                emitted += 1


def as_lines(events: Iterator[dict[str, Any]]) -> Iterator[bytes]:
    for event in events:
        yield json.dumps(event, separators=(",", ":")).encode() + b"\n"
