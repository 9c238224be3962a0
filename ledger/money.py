"""Money: exact decimals, rounded once, down (RULES.md section 0)."""

from __future__ import annotations

import decimal
from decimal import ROUND_DOWN, Decimal

# NUMERIC(38, 18): room for any balance, precision beyond any asset's.
AMOUNT_DIGITS = 38
AMOUNT_DECIMALS = 18
DEFAULT_PAYOUT_PLACES = 8
# The largest magnitude NUMERIC(38, 18) holds is just below 10^20.
AMOUNT_LIMIT = Decimal(10) ** (AMOUNT_DIGITS - AMOUNT_DECIMALS)

# Python's default decimal context keeps 28 significant digits and rounds
# beyond them silently (unary minus and abs() included): a contract-valid
# quantity x price (20 + 18 digits each) has up to 76. Sums and products of
# amounts are computed in this context instead, entered with
# ``decimal.localcontext(EXACT)`` (never by changing the global context): 200
# digits hold any product of two amounts and any sum of them exactly. It
# rounds down, so the one inexact operation, a division (interest / 365, a
# mean), truncated here and then rounded down to the payout's places gives
# exactly the rounded-down result.
EXACT = decimal.Context(
    prec=200,
    rounding=ROUND_DOWN,
    traps=[decimal.InvalidOperation, decimal.DivisionByZero, decimal.Overflow],
)


def round_payout(amount: Decimal, places: int = DEFAULT_PAYOUT_PLACES) -> Decimal:
    """Round a final payout down to the asset's precision: the house never
    overpays by rounding."""
    # In the exact context: quantize refuses a result of more digits than its
    # context keeps, and a sum of contract-valid amounts can have more than 28.
    return amount.quantize(Decimal(1).scaleb(-places), rounding=ROUND_DOWN, context=EXACT)


def fits_amount(amount: Decimal) -> bool:
    """Whether the ledger's NUMERIC(38, 18) can hold ``amount`` (of at most 18
    decimal places, as every rounded payout is)."""
    return amount.copy_abs() < AMOUNT_LIMIT


def format_amount(amount: Decimal) -> str:
    """An amount as the API and the payout stream spell it: plain digits, no
    exponent, no trailing zeros ("42.5", "7")."""
    text = format(amount, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text or "0"


def for_people(amount: Decimal, asset: str = "") -> str:
    """An amount as a person reads it (admin pages, messages, docs): digits
    grouped by thousands, at most the payout's places, no exponent and no
    trailing zeros ("5,000 USDT", "0.125", "0"). Machines get
    :func:`format_amount` instead, which keeps every digit."""
    shown = round_payout(amount) if amount.is_finite() else amount
    text = format(shown, ",f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    if text in ("", "-0"):
        text = "0"
    return f"{text} {asset}" if asset else text
