"""The request parser of the API's JSON bodies (every endpoint but the event
door, which has its own: ledger.parsers).

DRF's JSONParser hands a view whatever ``json`` makes of the body: a body
nested a thousand levels deep escapes it as a RecursionError (a 500), ``1e999``
becomes an infinite float, and NUL or a lone surrogate reaches the view, where
PostgreSQL, a cache key or the JSON answer fails on it. This parser decodes
with the wire rules of the event door (ledger.wire) instead, so that a body is

- at most :data:`MAX_BODY_BYTES` (413 ``too_large`` beyond, read no further);
- valid UTF-8 JSON, without ``NaN`` or ``Infinity`` (400 ``parse_error``);
- at most ``ledger.wire.MAX_DEPTH`` levels of arrays and objects (400 ``parse_error``);
- without NUL or a lone surrogate in any string or key, and with every number
  finite and bounded (400 ``invalid`` naming the field).

Numbers are read exactly, as the event door reads them: an ``int`` or a
``Decimal``, never a float (a view holds them to its own bounds, e.g. with a
serializer's IntegerField or DecimalField, which take both). docs/api.md,
"What a request may contain", lists the rules.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import IO, Any

from rest_framework import status
from rest_framework.exceptions import APIException, ParseError, ValidationError
from rest_framework.parsers import JSONParser

from ledger import wire

MAX_BODY_BYTES = 1_048_576
# How ledger.wire names a fault of the whole text rather than of one field.
_WHOLE = ("(body)", "(event)")


class BodyTooLarge(APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_code = "too_large"


class ApiJSONParser(JSONParser):
    def parse(
        self,
        stream: IO[Any] | None,
        media_type: str | None = None,
        parser_context: Mapping[str, Any] | None = None,
    ) -> Any:
        raw = stream.read(MAX_BODY_BYTES + 1) if stream is not None else b""
        if len(raw) > MAX_BODY_BYTES:
            raise BodyTooLarge(f"the body exceeds {MAX_BODY_BYTES:,} bytes")
        decoded = wire.decode(raw, max_bytes=MAX_BODY_BYTES)
        if decoded.errors:
            raise ParseError(_parse_error(decoded.errors[0]))
        body = decoded.body
        if not decoded.needs_check:
            return body  # proved within bounds by the decoding itself
        # check walks containers; a bare value is walked as the one element of a list.
        container = body if isinstance(body, dict | list) else [body]
        errors: list[wire.FieldError] = []
        wire.check(container, errors)
        if not errors:
            return container if container is body else container[0]
        whole = [error for error in errors if error.field in _WHOLE]
        if whole:
            raise ParseError(_parse_error(whole[0]))
        fields: dict[str, list[str]] = {}
        for error in errors:
            name = "body" if container is not body else error.field
            fields.setdefault(name, []).append(error.message)
        raise ValidationError(fields)


def _parse_error(error: wire.FieldError) -> str:
    message = error.message if error.field == "(body)" else f"the body is {error.message}"
    return f"JSON parse error - {message}"
