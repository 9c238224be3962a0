"""Request bodies as the schema declares them: closed, and typed as JSON types.

The schema declares every request body closed (``additionalProperties:
false``, access.openapi): a field it does not name is refused with a 400
naming it, not silently dropped, so a typo (``"notes"``) is seen at once.
And a field is of its JSON type: DRF would take ``"yes"`` or ``1`` for a
boolean and ``5`` for a string; here a boolean is ``true`` or ``false`` and a
string is a JSON string.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from rest_framework import serializers
from rest_framework.exceptions import ValidationError

UNKNOWN = "unknown field"
# A body naming a thousand unknown fields is answered with the first few.
MAX_NAMED = 10


def unknown_fields(body: Mapping[Any, Any], known: Iterable[str]) -> dict[str, list[str]]:
    """The fields of ``body`` that are not ``known``, each with its message."""
    allowed = set(known)
    names = sorted(str(key) for key in body if key not in allowed)
    return {name: [UNKNOWN] for name in names[:MAX_NAMED]}


def refuse_unknown_fields(body: Any, known: Iterable[str]) -> None:
    """A 400 naming each field of the object ``body`` that is not ``known``."""
    if isinstance(body, Mapping):
        unknown = unknown_fields(body, known)
        if unknown:
            raise ValidationError(unknown)


class ClosedSerializer(serializers.Serializer):
    """A request body of the declared fields only."""

    def to_internal_value(self, data: Any) -> Any:
        unknown = unknown_fields(data, self.fields) if isinstance(data, Mapping) else {}
        try:
            value = super().to_internal_value(data)
        except ValidationError as invalid:
            if unknown and isinstance(invalid.detail, dict):
                raise ValidationError({**invalid.detail, **unknown}) from None
            raise
        if unknown:
            raise ValidationError(unknown)
        return value


class JsonBooleanField(serializers.BooleanField):
    """``true`` or ``false``, nothing that reads as one."""

    def to_internal_value(self, data: Any) -> bool:
        if not isinstance(data, bool):
            raise ValidationError("must be true or false")
        return data


class JsonCharField(serializers.CharField):
    """A JSON string, not a number written for one."""

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            raise ValidationError("must be a string")
        return str(super().to_internal_value(data))
