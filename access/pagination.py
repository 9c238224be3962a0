"""Paging of list endpoints: opaque cursors, stable under concurrent inserts."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.core.exceptions import FieldDoesNotExist
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import models
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.pagination import Cursor, CursorPagination
from rest_framework.request import Request
from rest_framework.views import APIView

from access.middleware import TEXT_MAX, text_problem


class NewestFirst(CursorPagination):
    """``?cursor=`` pages of ``page_size`` (default 100, 1 to 500), newest first.

    A cursor is only base64 text, so a caller can forge one whose position is
    not a value of the ordering field (``p=garbage``, a NUL, a date without a
    time zone). DRF would put it straight into the query, where it fails as a
    500; it is refused as DRF refuses a cursor it cannot decode: 404
    ``Invalid cursor``.
    """

    ordering = ("-created_at", "-id")
    page_size_query_param = "page_size"
    max_page_size = 500

    _model: type[models.Model] | None = None

    def get_page_size(self, request: Request) -> int | None:
        """``page_size`` as asked, or a 400 naming it: DRF would silently fall
        back to the default for ``abc`` or ``0``, and clip ``10000``."""
        text = request.query_params.get(self.page_size_query_param)
        if text is None:
            return self.page_size
        if not text.isascii() or not text.isdigit() or not 1 <= int(text) <= self.max_page_size:
            raise ValidationError(
                {self.page_size_query_param: [f"must be an integer from 1 to {self.max_page_size}"]}
            )
        return int(text)

    def get_schema_operation_parameters(self, view: APIView) -> list[dict[str, Any]]:
        parameters = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            if parameter["name"] == self.page_size_query_param:
                parameter["schema"].update(minimum=1, maximum=self.max_page_size, default=100)
        return parameters

    def paginate_queryset(
        self, queryset: Any, request: Request, view: APIView | None = None
    ) -> list[Any] | None:
        # decode_cursor is handed the request only: the position's field is
        # found on the model being paged.
        self._model = queryset.model
        return super().paginate_queryset(queryset, request, view)

    def decode_cursor(self, request: Request) -> Cursor | None:
        cursor = super().decode_cursor(request)
        position = None if cursor is None else cursor.position
        if position is not None and not self._is_position(position):
            raise NotFound(self.invalid_cursor_message)
        return cursor

    def _is_position(self, position: object) -> bool:
        """Whether ``position`` is a value of the first ordering field, as
        :meth:`encode_cursor` writes one (``str()`` of the field's value)."""
        if not isinstance(position, str) or self._model is None:
            return False
        if text_problem(position, max_length=TEXT_MAX) is not None:
            return False
        try:
            field = self._model._meta.get_field(self.ordering[0].lstrip("-"))
        except FieldDoesNotExist:
            return False
        if not isinstance(field, models.Field):
            return False
        try:
            value = field.to_python(position)
        except (DjangoValidationError, ValueError, TypeError, OverflowError):
            return False
        if isinstance(field, models.DateTimeField):
            # The field's own parsing also takes a bare date, or a time without
            # an offset; positions this API writes always carry their offset.
            return isinstance(value, dt.datetime) and value.tzinfo is not None
        return value is not None
