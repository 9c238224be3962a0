"""Money: exact decimals, rounded once, down (RULES.md section 0)."""

from __future__ import annotations

from decimal import ROUND_DOWN, Decimal

# NUMERIC(38, 18): room for any balance, precision beyond any asset's.
AMOUNT_DIGITS = 38
AMOUNT_DECIMALS = 18
DEFAULT_PAYOUT_PLACES = 8


def round_payout(amount: Decimal, places: int = DEFAULT_PAYOUT_PLACES) -> Decimal:
    """Round a final payout down to the asset's precision: the house never
    overpays by rounding."""
    return amount.quantize(Decimal(1).scaleb(-places), rounding=ROUND_DOWN)


def format_amount(amount: Decimal) -> str:
    """An amount as the API and the payout stream spell it: plain digits, no
    exponent, no trailing zeros ("42.5", "7")."""
    text = format(amount, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text or "0"
