"""Serializer fields shared by every app's API."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from ledger.money import format_amount


@extend_schema_field(
    {
        "type": "string",
        "format": "decimal",
        "example": "42.5",
        "description": "Exact decimal amount as a string.",
    }
)
class AmountField(serializers.Field):
    """A read-only money amount: a decimal string without exponent or trailing zeros."""

    def __init__(self, **kwargs: Any) -> None:
        # Read-only: an answer's field, required in it unless said otherwise
        # (the schema marks every read-only field required).
        if kwargs.get("required", True):
            kwargs.setdefault("read_only", True)
        super().__init__(**kwargs)

    def to_representation(self, value: Decimal) -> str:
        return format_amount(value)


class FieldErrorSerializer(serializers.Serializer):
    """One fault of one element of a batch (an event, a grant), by its field."""

    field = serializers.CharField(help_text="Path of the offending field, e.g. `data.fee`.")
    message = serializers.CharField()
