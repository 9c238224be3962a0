"""One error shape for every API answer that is not a success.

``{"error": {"code": "...", "message": "...", "fields": {"name": ["..."]}}}``:
``code`` is stable and machine-readable, ``message`` is for a human, and
``fields`` (present on validation errors, and on a 401 for a token claim at
fault) names each offending field. A path or query string no view may be
handed is refused in the same shape before any view runs (access.middleware). Services
raise :class:`DomainError` subclasses for refusals that follow from the rules
(a funding account that cannot pay, a window that has closed); the handler
turns them into a 409 (or their own status) instead of a 500.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.response import Response


class DomainError(Exception):
    """A refusal that follows from the product rules, not a bug."""

    code = "refused"
    http_status = status.HTTP_409_CONFLICT

    def __init__(self, message: str, *, fields: dict[str, list[str]] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.fields = fields or {}


def _flatten(detail: Any, prefix: str = "") -> dict[str, list[str]]:
    """DRF nests errors as dicts and lists; the API names each field by its path."""
    if isinstance(detail, dict):
        flat: dict[str, list[str]] = {}
        for key, value in detail.items():
            path = f"{prefix}.{key}" if prefix else str(key)
            flat.update(_flatten(value, path))
        return flat
    if isinstance(detail, list):
        if all(not isinstance(item, dict | list) for item in detail):
            return {prefix or "non_field_errors": [str(item) for item in detail]}
        flat = {}
        for index, item in enumerate(detail):
            flat.update(_flatten(item, f"{prefix}[{index}]"))
        return flat
    return {prefix or "non_field_errors": [str(detail)]}


def _body(code: str, message: str, fields: dict[str, list[str]] | None = None) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message}
    if fields:
        error["fields"] = fields
    return {"error": error}


def invalid_body(fields: dict[str, list[str]]) -> dict[str, Any]:
    """The 400 body naming each offending field: the same from a view's
    validation as from the request checks that run before any view."""
    summary = "; ".join(f"{name}: {' '.join(msgs)}" for name, msgs in fields.items())
    return _body("invalid", f"invalid request: {summary}", fields)


def api_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    # Imported here: loading rest_framework.views loads the authentication
    # classes, which use the request rules (access.middleware) built on this module.
    from rest_framework.views import exception_handler

    if isinstance(exc, DomainError):
        return Response(_body(exc.code, exc.message, exc.fields), status=exc.http_status)
    # Django's own 404 and 403 (``get_object_or_404``, ``raise Http404``) in the
    # API's shape too, as DRF would turn them into its own exceptions.
    if isinstance(exc, Http404):
        exc = exceptions.NotFound(*exc.args)
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied(*exc.args)
    response = exception_handler(exc, context)
    if response is None:
        return None  # a genuine bug: let Django log it and answer 500
    if isinstance(exc, exceptions.ValidationError):
        response.data = invalid_body(_flatten(exc.detail))
    elif isinstance(exc, exceptions.APIException):
        detail = exc.detail
        code = exc.get_codes() if not isinstance(detail, dict | list) else exc.default_code
        # A refused credential names the claim at fault (access.authentication).
        response.data = _body(str(code), str(detail), getattr(exc, "fields", None))
    return response
