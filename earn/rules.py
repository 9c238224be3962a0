"""Futures Earn rules as pure functions (RULES.md section 4).

Every computation runs in ``ledger.money.EXACT``: a contract-valid position
(quantity and price of 20 integer digits and 18 decimals each) is worth a
number of up to 76 digits, which Python's default 28-digit context would round
without a word (and refuse to quantize)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal, localcontext
from typing import Any

from ledger.money import EXACT, round_payout

DAYS_IN_YEAR = 365
FUTURES_MARKETS = ("usdt_m", "usdc_m")  # coin_m positions are not counted


@dataclass(frozen=True)
class Terms:
    """The Earn terms in force on a day."""

    effective_from: dt.date
    assets: tuple[str, ...]
    position_threshold: Decimal
    boosted_principal: Decimal
    boosted_apr: Decimal
    base_apr: Decimal
    snapshot_times: tuple[dt.time, ...]


DEFAULT_TERMS = Terms(
    effective_from=dt.date(2000, 1, 1),
    assets=("USDT", "USDC"),
    position_threshold=Decimal("100000"),
    boosted_principal=Decimal("25000"),
    boosted_apr=Decimal("0.15"),
    base_apr=Decimal("0.03"),
    snapshot_times=(dt.time(0), dt.time(8), dt.time(16)),
)


def parse_times(values: Iterable[str]) -> tuple[dt.time, ...]:
    """``["00:00", "08:00", "16:00"]`` -> sorted distinct times; three of them."""
    times = sorted({dt.time.fromisoformat(str(value)) for value in values})
    if len(times) != 3:
        raise ValueError("snapshot_times: three distinct HH:MM times (UTC) are needed")
    return tuple(times)


def snapshot_instants(day: dt.date, terms: Terms) -> list[dt.datetime]:
    """The day's snapshot instants (aware UTC)."""
    return [dt.datetime.combine(day, t, tzinfo=dt.UTC) for t in terms.snapshot_times]


def principal(available: Decimal, locked: Decimal, margin: Decimal, bonus: Decimal) -> Decimal:
    """available + locked_in_orders + margin_used - bonus, never below 0."""
    with localcontext(EXACT):
        return max(available + locked + margin - bonus, Decimal(0))


def position_value(positions: Sequence[Mapping[str, Any]]) -> Decimal:
    """The sum over underlyings of |sum of signed quantity x avg_entry_price|
    over USDT-M and USDC-M positions (longs positive, shorts negative): a long
    and a short of one underlying net out across the two markets."""
    net: dict[str, Decimal] = {}
    with localcontext(EXACT):
        for position in positions:
            if position["market"] not in FUTURES_MARKETS:
                continue
            sign = -1 if position["side"] == "short" else 1
            quantity = Decimal(str(position["quantity"])).copy_abs()
            value = quantity * Decimal(str(position["avg_entry_price"]))
            underlying = underlying_of(str(position["symbol"]))
            net[underlying] = net.get(underlying, Decimal(0)) + sign * value
        return sum((v.copy_abs() for v in net.values()), Decimal(0))


def underlying_of(symbol: str) -> str:
    """``BTC_USDT`` and ``BTC_USDC`` are both ``BTC``."""
    return symbol.split("_", 1)[0]


@dataclass(frozen=True)
class DailyInterest:
    principal: Decimal  # P: the lowest of the day's snapshots
    position_value: Decimal  # V: their mean (shown to 8 decimals)
    boosted_portion: Decimal
    boosted_apr: Decimal
    base_portion: Decimal
    base_apr: Decimal
    interest: Decimal


def daily_interest(
    principals: Sequence[Decimal], position_values: Sequence[Decimal], terms: Terms
) -> DailyInterest:
    """RULES.md section 4, "Daily interest": P = the lowest of the day's
    principal snapshots (a snapshot missing because the user was inactive
    counts as 0), V = the mean of the day's position values. If V >= the
    threshold the first ``boosted_principal`` of P earns the boosted APR and
    the rest the base APR; otherwise all of P earns the base APR. Interest =
    sum of portion x APR / 365, rounded down to 8 decimals once.

    Both lists hold one entry per snapshot instant of the day."""
    count = len(terms.snapshot_times)
    if len(principals) != count or len(position_values) != count:
        raise ValueError(f"a day has {count} snapshots")
    with localcontext(EXACT):
        return interest_of(min(principals), sum(position_values, Decimal(0)), terms)


def interest_of(p: Decimal, total_value: Decimal, terms: Terms) -> DailyInterest:
    """:func:`daily_interest` from P and the sum of the day's position values."""
    count = len(terms.snapshot_times)
    with localcontext(EXACT):
        # Compare the sum, not a rounded mean: V >= threshold exactly.
        boosted_tier = total_value >= terms.position_threshold * count
        boosted = min(p, terms.boosted_principal) if boosted_tier else Decimal(0)
        base = p - boosted
        # Products and sum exact; the division truncated far below the 8th
        # place, then rounded down once to it.
        yearly = boosted * terms.boosted_apr + base * terms.base_apr
        interest = round_payout(yearly / DAYS_IN_YEAR)
        return DailyInterest(
            principal=p,
            position_value=round_payout(total_value / count),
            boosted_portion=boosted,
            boosted_apr=terms.boosted_apr if boosted else Decimal(0),
            base_portion=base,
            base_apr=terms.base_apr,
            interest=interest,
        )
