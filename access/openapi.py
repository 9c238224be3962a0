"""The API's OpenAPI description: its two bearer credentials, the one error
shape, and which of both each operation takes and answers.

Both credentials travel as ``Authorization: Bearer ...``; the schema names
them apart so a reader (and the Swagger UI, and a generated client) sees which
endpoints take a user JWT and which a service token.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.utils import inline_serializer
from rest_framework import serializers
from rest_framework.permissions import BasePermission

from access.middleware import TEXT_MAX, USER_ID_MAX
from access.permissions import IsExchangeUser, IsService


class ServiceTokenScheme(OpenApiAuthenticationExtension):
    target_class = "access.authentication.ServiceTokenAuthentication"
    name = "serviceToken"

    def get_security_definition(self, auto_schema: Any) -> dict[str, Any]:
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "A service token (`svc_...`) of one of the exchange's services.",
        }


class ExchangeUserScheme(OpenApiAuthenticationExtension):
    target_class = "access.authentication.ExchangeUserAuthentication"
    name = "userJwt"

    def get_security_definition(self, auto_schema: Any) -> dict[str, Any]:
        return {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "JWT",
            "description": "A user JWT signed by the exchange's auth service (`sub` = user id).",
        }


class ErrorSerializer(serializers.Serializer):
    """The body of every answer that is not a success (access/errors.py)."""

    # Schema only (inline): a declared field named "fields" would shadow Serializer.fields.
    error = inline_serializer(
        "ErrorDetail",
        {
            "code": serializers.CharField(help_text="Stable and machine-readable, e.g. `invalid`."),
            "message": serializers.CharField(help_text="For a human."),
            "fields": serializers.DictField(
                child=serializers.ListField(child=serializers.CharField()),
                required=False,
                help_text="Each offending field by its path, with what is wrong with it.",
            ),
        },
    )


# Which credential each permission takes: the schema lists only that one, though
# both authenticators run (the other kind is answered 403, naming the right one).
_CREDENTIALS: tuple[tuple[type[BasePermission], str], ...] = (
    (IsService, ServiceTokenScheme.name),
    (IsExchangeUser, ExchangeUserScheme.name),
)

# access.middleware's rule for every path segment and query value, as a pattern.
TEXT_PATTERN = "^[^\\u0000-\\u001f\\u007f-\\u009f]*$"
PATH_TEXT_PATTERN = "^[^/\\u0000-\\u001f\\u007f-\\u009f]*$"
USER_ID_TEXT = (
    "A user id: 1-64 printable characters (no control, format, private-use or unassigned"
    " character, no separator but the space), not only spaces."
)

_ERRORS = {
    400: "A query value, path segment or body field is refused; `fields` names each.",
    401: "No credential, or one that is malformed, expired or revoked.",
    403: "The credential is of the other kind (user JWT / service token).",
    404: "No such resource for this caller (or a cursor that is not ours).",
    406: "The Accept header admits no JSON: every answer is `application/json`.",
    409: "Refused by the product rules; `code` says which refusal.",
    413: "The body is larger than the endpoint takes.",
    415: "The body is not `application/json`.",
    429: "Too many requests from this caller; retry after `Retry-After` seconds.",
}


class ApiSchema(AutoSchema):
    """The API's operations as a client generator needs them: the one
    credential each takes and every error status it can answer, in the one
    error shape."""

    def get_auth(self) -> list[dict[str, list[str]]]:
        auths = super().get_auth()
        permissions = self.view.get_permissions()
        allowed = {
            name
            for permission, name in _CREDENTIALS
            if any(isinstance(p, permission) for p in permissions)
        }
        return [auth for auth in auths if set(auth) <= allowed] if allowed else auths

    def _get_parameters(self) -> list[dict[str, Any]]:
        """Text parameters with the bounds access.middleware enforces, so that
        what the schema admits the API takes: no control character, at most
        TEXT_MAX characters; a user id is the contract's (format ``user-id``)."""
        parameters: list[dict[str, Any]] = super()._get_parameters()
        for parameter in parameters:
            schema = parameter.get("schema", {})
            if schema.get("type") == "integer" and parameter["in"] == "path":
                # Django's int converter takes digits only: "-1" routes nowhere.
                schema.setdefault("minimum", 0)
            if parameter["name"] == "user_id":
                # Last in its paths (Django's path converter): a "/" in it is its own.
                schema.pop("pattern", None)
                schema.update(format="user-id", minLength=1, maxLength=USER_ID_MAX)
                parameter.setdefault("description", USER_ID_TEXT)
                continue
            if schema.get("type") != "string" or "enum" in schema or "pattern" in schema:
                continue
            in_path = parameter["in"] == "path"
            schema.setdefault("maxLength", TEXT_MAX)
            # A path segment cannot hold a slash: it would be two segments.
            schema["pattern"] = PATH_TEXT_PATTERN if in_path else TEXT_PATTERN
            if in_path:
                schema.setdefault("minLength", 1)
        return parameters

    def error_statuses(self) -> list[int]:
        """Every operation is authenticated, throttled and passes the request
        checks (access.middleware): 400, 401, 403, 429; it answers JSON only
        (406 to an Accept header without it). A path parameter or a
        cursor can name nothing: 404. A write can be refused by the rules
        (409) and carries a body: 413, 415. A read the rules can refuse
        declares its 409 itself (``extend_schema(responses=...)``)."""
        statuses = [400, 401, 403, 406, 429]
        if "{" in self.path or self._get_paginator() is not None:
            statuses.append(404)
        if self.method not in ("GET", "HEAD", "OPTIONS"):
            statuses += [409, 413, 415]
        return statuses

    def _get_response_bodies(self, direction: Any = "response") -> dict[str, Any]:
        responses: dict[str, Any] = super()._get_response_bodies(direction)
        if direction != "response":
            return responses
        for status in self.error_statuses():
            if str(status) not in responses:
                responses[str(status)] = self._get_response_for_code(ErrorSerializer, str(status))
            responses[str(status)]["description"] = _ERRORS[status]
        return responses


def closed_request_bodies(result: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    """A request body takes the fields it declares and no other: a client
    generated from the schema sends none, and a fuzzer derived from it
    invents none (a stray field's text would still meet the body rules of
    access.parsers). A user id in a body is the contract's, as in a
    parameter. Split request components end in ``Request``."""
    for name, schema in result.get("components", {}).get("schemas", {}).items():
        if name.endswith("Request") and "properties" in schema:
            schema.setdefault("additionalProperties", False)
            user_id = schema["properties"].get("user_id")
            if user_id is not None and user_id.get("type") == "string":
                user_id.update(format="user-id", minLength=1, maxLength=USER_ID_MAX)
                user_id.setdefault("description", USER_ID_TEXT)
    return result
