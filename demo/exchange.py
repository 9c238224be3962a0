"""A simulated exchange: the events of CONTRACT.md for the demo users, as the
exchange's trading and wallet systems would publish them.

Users open and close futures positions on BTC and ETH at prices that wander;
about half the closes lose money (so vouchers are consumed and campaign losing
orders pile up); every fill is followed by the user's wallet and position
state; referrers report their MX holding. Deterministic for a seed.
"""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass
from decimal import ROUND_DOWN, Decimal
from typing import Any

from demo import world

FEE_RATE = Decimal("0.0005")
CENT = Decimal("0.01")
QUANTITY_STEP = Decimal("0.001")


@dataclass
class Position:
    symbol: str
    side: str
    quantity: Decimal
    entry: Decimal
    order_id: str


class SimulatedExchange:
    def __init__(self, prefix: str, seed: int = 7) -> None:
        self.prefix = prefix  # keeps the event ids of two runs of the exchange apart
        self.rng = random.Random(seed)  # noqa: S311 - market noise, not secrets
        self.prices = {"BTC_USDT": Decimal(90000), "ETH_USDT": Decimal(3000)}
        self.positions: dict[str, Position] = {}
        self.balances = {user: Decimal(20000) for user in world.user_ids()}
        self.sequence = 0

    def _id(self, kind: str) -> str:
        self.sequence += 1
        return f"{self.prefix}-{kind}-{self.sequence}"

    def _event(self, kind: str, user: str, at: dt.datetime, data: dict[str, Any]) -> dict[str, Any]:
        return {
            "event_id": self._id(kind.split(".")[0]),
            "type": kind,
            "occurred_at": at.isoformat().replace("+00:00", "Z"),
            "user_id": user,
            "data": data,
        }

    def registration(self, user: str, at: dt.datetime, code: str | None) -> dict[str, Any]:
        data: dict[str, Any] = {"account_type": "main"}
        if code:
            data["referral_code"] = code
        return self._event("user.registered", user, at, data)

    def opening_state(self, user: str, at: dt.datetime) -> list[dict[str, Any]]:
        """The wallet (and, for referrers, the MX holding) a user starts with."""
        events = [self._wallet(user, at), self._positions(user, at)]
        if world.referrer_of(user) is None:
            mx = self.rng.choice(["5000", "20000", "150000"])
            if user == world.SHOWCASE_USER:
                mx = world.SHOWCASE_MX
            events.append(self._event("holding.updated", user, at, {"asset": "MX", "amount": mx}))
        return events

    def tick(self, at: dt.datetime, trades: int) -> list[dict[str, Any]]:
        """``trades`` fills by random users at ``at``, each with the state it leaves."""
        for symbol, price in self.prices.items():
            drift = Decimal(self.rng.randint(-40, 40)) / 10_000  # up to 0.4% a tick
            self.prices[symbol] = (price * (1 + drift)).quantize(CENT)
        events: list[dict[str, Any]] = []
        users = world.user_ids()
        for _ in range(trades):
            # A few heavy traders, so that some users pile up enough losing
            # orders for the coverage draw to rebate some.
            weights = [
                6 if n < world.HEAVY_TRADERS and u != world.SHOWCASE_USER else 1
                for n, u in enumerate(users)
            ]
            user = self.rng.choices(users, weights=weights)[0]
            if user in self.positions:
                events.append(self._close(user, at))
            else:
                events.append(self._open(user, at))
            events += [self._wallet(user, at), self._positions(user, at)]
        return events

    def _open(self, user: str, at: dt.datetime) -> dict[str, Any]:
        symbol = self.rng.choice(list(self.prices))
        price = self.prices[symbol]
        notional = Decimal(self.rng.randint(500, 6000))
        quantity = (notional / price).quantize(QUANTITY_STEP, rounding=ROUND_DOWN) or QUANTITY_STEP
        position = Position(
            symbol, self.rng.choice(["long", "short"]), quantity, price, self._id("order")
        )
        self.positions[user] = position
        return self._fill(user, at, position, "open", price, Decimal(0))

    def _close(self, user: str, at: dt.datetime) -> dict[str, Any]:
        position = self.positions.pop(user)
        price = self.prices[position.symbol]
        # Prices wander little between two ticks: a nudge makes about half the closes lose.
        price = (price * (1 + Decimal(self.rng.randint(-300, 250)) / 10_000)).quantize(CENT)
        sign = 1 if position.side == "long" else -1
        pnl = (sign * (price - position.entry) * position.quantity).quantize(CENT)
        self.balances[user] += pnl
        return self._fill(user, at, position, "close", price, pnl)

    def _fill(
        self,
        user: str,
        at: dt.datetime,
        position: Position,
        action: str,
        price: Decimal,
        pnl: Decimal,
    ) -> dict[str, Any]:
        notional = (position.quantity * price).quantize(CENT)
        fee = (notional * FEE_RATE).quantize(Decimal("0.0001"))
        self.balances[user] -= fee
        return self._event(
            "trade.filled",
            user,
            at,
            {
                "order_id": position.order_id,
                "symbol": position.symbol,
                "market": "usdt_m",
                "action": action,
                "side": position.side,
                "quantity": str(position.quantity),
                "price": str(price),
                "notional": str(notional),
                "fee": str(fee),
                "fee_asset": "USDT",
                "fee_rate": str(FEE_RATE),
                "realized_pnl": str(pnl),
                "origin": "manual",
                "promo_funding": [],
            },
        )

    def _wallet(self, user: str, at: dt.datetime) -> dict[str, Any]:
        position = self.positions.get(user)
        margin = (
            (position.quantity * position.entry / 10).quantize(CENT) if position else Decimal(0)
        )
        available = max(self.balances[user] - margin, Decimal(0))
        return self._event(
            "futures_wallet.updated",
            user,
            at,
            {
                "asset": "USDT",
                "available": str(available),
                "locked_in_orders": "0",
                "margin_used": str(margin),
                "bonus": "0",
            },
        )

    def _positions(self, user: str, at: dt.datetime) -> dict[str, Any]:
        position = self.positions.get(user)
        items = (
            [
                {
                    "symbol": position.symbol,
                    "market": "usdt_m",
                    "side": position.side,
                    "quantity": str(position.quantity),
                    "avg_entry_price": str(position.entry),
                }
            ]
            if position
            else []
        )
        return self._event("futures_positions.updated", user, at, {"positions": items})
