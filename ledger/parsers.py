"""The request parser of the ingestion door: the wire rules of ledger.wire
applied to the whole batch, so that every door decodes alike (numbers exactly
as written, ``NaN`` refused) and one event nested too deep for the decoders is
refused on its own rather than with its batch."""

from __future__ import annotations

from collections.abc import Mapping
from typing import IO, Any

from django.conf import settings
from rest_framework import status
from rest_framework.exceptions import APIException, ParseError
from rest_framework.parsers import JSONParser

from ledger import wire


class BatchTooLarge(APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_code = "too_large"


class DecodedBatch(dict[str, Any]):
    """A decoded batch body, and whether its strings are known clean
    (``wire.decode_document``): the per-event checks then skip them."""

    texts_clean: bool = False


class EventBatchParser(JSONParser):
    def parse(
        self,
        stream: IO[Any],
        media_type: str | None = None,
        parser_context: Mapping[str, Any] | None = None,
    ) -> Any:
        limit = settings.MAX_EVENT_BATCH_BYTES
        body = stream.read(limit + 1) if stream is not None else b""
        if len(body) > limit:
            raise BatchTooLarge(f"the body exceeds {limit:,} bytes; send fewer events per request")
        try:
            document, texts_clean = wire.decode_document(body, max_bytes=limit, array_key="events")
        except ValueError as exc:
            raise ParseError(f"JSON parse error - {exc}") from None
        if not isinstance(document, dict):
            return document
        batch = DecodedBatch(document)
        batch.texts_clean = texts_clean
        return batch
