"""Field declarations every app's money columns share."""

from __future__ import annotations

from typing import Any

from django.db import models

from ledger.money import AMOUNT_DECIMALS, AMOUNT_DIGITS


def amount_field(**kwargs: Any) -> models.DecimalField:
    """A money column: NUMERIC(38, 18), exact for any balance and asset."""
    return models.DecimalField(max_digits=AMOUNT_DIGITS, decimal_places=AMOUNT_DECIMALS, **kwargs)


class ExactSumField(models.DecimalField):
    """An unbounded NUMERIC column: no precision, no scale, no rounding.

    A read model's sum or product of contract-valid amounts (each up to 20
    integer digits and 18 decimals) may not fit NUMERIC(38, 18): two fills of
    6e19 sum to 1.2e20 (21 integer digits); quantity x price has up to 40
    integer digits and 36 decimals. Rounding it, or refusing it with a numeric
    overflow that fails the whole statement (and with it every other user's
    row), are both wrong, so such columns keep every digit. The ledger's own
    money (postings, balances, payouts) stays ``amount_field``: what is paid
    must fit NUMERIC(38, 18), and what does not is refused per user.

    Digits and places are left unset (None): the column is declared without
    them, forms and validators then accept any decimal, and the admin shows
    the value as it is rather than padded to a fixed number of places."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("max_digits", None)
        kwargs.setdefault("decimal_places", None)
        super().__init__(*args, **kwargs)

    def check(self, **kwargs: Any) -> list[Any]:
        # DecimalField's own checks demand digits and places; this field has none.
        return models.Field.check(self, **kwargs)

    def db_type(self, connection: Any) -> str:
        return "numeric"


def exact_sum_field(**kwargs: Any) -> models.DecimalField:
    """A read-model column that holds sums or products of amounts exactly
    (unbounded NUMERIC, see :class:`ExactSumField`)."""
    return ExactSumField(**kwargs)
