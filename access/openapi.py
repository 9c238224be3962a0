"""How the API's two bearer credentials appear in its OpenAPI description.

Both travel as ``Authorization: Bearer ...``; the schema names them apart so a
reader (and the Swagger UI) sees which endpoints take a user JWT and which a
service token.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension


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
