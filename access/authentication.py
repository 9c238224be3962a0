"""Bearer authentication for the API.

``Authorization: Bearer svc_...`` is a service token (the exchange's services);
any other bearer value is a JWT issued by the exchange's auth service: HS256
with ``JWT_SIGNING_KEY``, or RS256 with ``JWT_PUBLIC_KEY``. ``sub`` is the
user id and ``exp`` is required. A malformed, expired or revoked credential is
a 401 with a message saying which.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import jwt
from django.conf import settings
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.request import Request

from access.models import ServiceToken
from access.principals import ExchangeUserPrincipal, ServicePrincipal
from access.services import TOKEN_PREFIX, token_digest
from config import clock

# last_used_at is for ops ("is this token still in use?"): minute precision is
# enough, and skipping the write on every request keeps the hot door cheap.
LAST_USED_RESOLUTION = dt.timedelta(minutes=1)


def _bearer(request: Request) -> str | None:
    header = get_authorization_header(request).split()
    if not header or header[0].lower() != b"bearer":
        return None
    if len(header) != 2:
        raise exceptions.AuthenticationFailed("Authorization header must be `Bearer <token>`")
    try:
        return header[1].decode()
    except UnicodeDecodeError:
        raise exceptions.AuthenticationFailed("bearer token is not valid text") from None


class ServiceTokenAuthentication(BaseAuthentication):
    def authenticate(self, request: Request) -> tuple[ServicePrincipal, str] | None:
        token = _bearer(request)
        if token is None or not token.startswith(TOKEN_PREFIX):
            return None
        row = ServiceToken.objects.filter(digest=token_digest(token)).first()
        if row is None:
            raise exceptions.AuthenticationFailed("unknown service token")
        if row.revoked_at is not None:
            raise exceptions.AuthenticationFailed("service token was revoked")
        now = clock.now()
        if row.last_used_at is None or now - row.last_used_at > LAST_USED_RESOLUTION:
            ServiceToken.objects.filter(pk=row.pk).update(last_used_at=now)
        return ServicePrincipal(name=row.name, token_id=row.pk), token

    def authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="api"'


class ExchangeUserAuthentication(BaseAuthentication):
    def authenticate(self, request: Request) -> tuple[ExchangeUserPrincipal, str] | None:
        token = _bearer(request)
        if token is None or token.startswith(TOKEN_PREFIX):
            return None
        claims = decode_user_jwt(token)
        return ExchangeUserPrincipal(user_id=claims["sub"]), token

    def authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="api"'


def decode_user_jwt(token: str) -> dict[str, Any]:
    algorithm = settings.JWT_ALGORITHM
    key = (
        settings.JWT_PUBLIC_KEY if algorithm.startswith(("RS", "ES")) else settings.JWT_SIGNING_KEY
    )
    if not key:
        raise exceptions.AuthenticationFailed("user tokens are not configured on this server")
    try:
        claims = jwt.decode(
            token,
            key,
            algorithms=[algorithm],
            audience=settings.JWT_AUDIENCE,
            issuer=settings.JWT_ISSUER,
            options={"require": ["exp", "sub"]},
            leeway=dt.timedelta(seconds=30),
        )
    except jwt.ExpiredSignatureError:
        raise exceptions.AuthenticationFailed("token expired") from None
    except jwt.InvalidTokenError as error:
        raise exceptions.AuthenticationFailed(f"invalid token: {error}") from None
    if not isinstance(claims.get("sub"), str) or not claims["sub"].strip():
        raise exceptions.AuthenticationFailed("invalid token: `sub` must be the user id")
    return claims
