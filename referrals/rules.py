"""Referral rules as pure functions (RULES.md section 3)."""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from ledger.money import round_payout

# No 0/O, 1/I/L: a code read aloud or copied by hand stays unambiguous.
CODE_ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
CODE_LENGTH = 8

FUTURES_MARKETS = ("usdt_m", "usdc_m", "coin_m")

DEFAULT_TERMS: dict[str, dict[str, Any]] = {
    "futures": {
        "validity_days": 1080,
        "tiers": [
            {"min_mx": "0", "rate": "0.10"},
            {"min_mx": "10000", "rate": "0.20"},
            {"min_mx": "100000", "rate": "0.30"},
        ],
        "partner_rate": None,
    },
    "spot": {
        "validity_days": None,
        "tiers": [
            {"min_mx": "0", "rate": "0.20"},
            {"min_mx": "50000", "rate": "0.40"},
            {"min_mx": "100000", "rate": "0.50"},
        ],
        "partner_rate": "0.60",
    },
}


def referral_code(user_id: str, attempt: int = 0) -> str:
    """The user's code: derived from the user id, re-derived with a counter on
    the rare collision (the projection tries attempt 0, 1, ...)."""
    digest = int.from_bytes(hashlib.sha256(f"{user_id}:{attempt}".encode()).digest(), "big")
    letters = []
    for _ in range(CODE_LENGTH):
        digest, index = divmod(digest, len(CODE_ALPHABET))
        letters.append(CODE_ALPHABET[index])
    return "".join(letters)


def program_of(market: str) -> str | None:
    """Which program a fill earns for: spot, futures, or none (margin)."""
    if market == "spot":
        return "spot"
    if market in FUTURES_MARKETS:
        return "futures"
    return None


@dataclass(frozen=True)
class Tier:
    min_mx: Decimal
    rate: Decimal


def tier_rate(
    tiers: Sequence[Tier],
    mx_holding: Decimal,
    *,
    partner_rate: Decimal | None = None,
    partner: bool = False,
) -> Decimal:
    """The commission rate for an MX holding: the highest tier whose minimum it
    reaches (boundaries inclusive); a community partner's rate where the
    program has one."""
    if partner and partner_rate is not None:
        return partner_rate
    rate = Decimal(0)
    for tier in sorted(tiers, key=lambda t: t.min_mx):
        if mx_holding >= tier.min_mx:
            rate = tier.rate
    return rate


def parse_tiers(rows: Sequence[dict[str, object]]) -> list[Tier]:
    return [Tier(Decimal(str(row["min_mx"])), Decimal(str(row["rate"]))) for row in rows]


def commission(notional: Decimal, fee_rate: Decimal, rate: Decimal) -> Decimal:
    """Referral amount = trading volume x trading fee rate x commission rate."""
    return notional * fee_rate * rate


def same_owner(referrer: str, referee: str, *, referrer_parent: str, referee_parent: str) -> bool:
    """A sub-account and its main account, or two sub-accounts of one main account."""
    return (
        referee_parent == referrer
        or referrer_parent == referee
        or (bool(referee_parent) and referee_parent == referrer_parent)
    )


def relation_valid_until(
    registered_at: dt.datetime, validity_days: int | None
) -> dt.datetime | None:
    if validity_days is None:
        return None
    return registered_at + dt.timedelta(days=validity_days)


def mask(user_id: str) -> str:
    """How a referrer sees a referee's id: the first and last two characters."""
    if len(user_id) <= 4:
        return user_id[0] + "***"
    return f"{user_id[:2]}***{user_id[-2:]}"


@dataclass(frozen=True)
class CommissionPayout:
    referrer_id: str
    asset: str
    commissions: Decimal
    carried_in: Decimal
    amount: Decimal
    carried_out: Decimal


def commission_payout(
    referrer_id: str, asset: str, commissions: Decimal, carried_in: Decimal
) -> CommissionPayout:
    """One referrer's payout in one asset: the newly covered commissions plus
    the remainder carried from the previous payout, rounded down once to 8
    decimals; what rounding leaves is carried to the next payout."""
    due = commissions + carried_in
    amount = round_payout(due)
    return CommissionPayout(referrer_id, asset, commissions, carried_in, amount, due - amount)
