"""Field declarations every app's money columns share."""

from __future__ import annotations

from typing import Any

from django.db import models

from ledger.money import AMOUNT_DECIMALS, AMOUNT_DIGITS


def amount_field(**kwargs: Any) -> models.DecimalField:
    """A money column: NUMERIC(38, 18), exact for any balance and asset."""
    return models.DecimalField(max_digits=AMOUNT_DIGITS, decimal_places=AMOUNT_DECIMALS, **kwargs)
