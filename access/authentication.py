"""Bearer authentication for the API.

``Authorization: Bearer svc_...`` is a service token (the exchange's services);
any other bearer value is a JWT issued by the exchange's auth service: HS256
with ``JWT_SIGNING_KEY``, or RS256 with ``JWT_PUBLIC_KEY``. ``sub`` is the
user id and ``exp`` is required. A malformed, expired or revoked credential is
a 401 with a message saying which; a claim at fault is named in ``fields``
(``{"sub": ["must be at most 64 characters, not 3000"]}``).

``sub`` is a user id as the contract bounds it (``access.middleware.user_id_problem``:
1-64 printable characters), checked before it reaches a query, a cache key or
a log line. ``exp``, ``nbf`` and ``iat`` must be numbers, ``jti`` a string, and
``aud`` / ``iss`` are compared when configured (PyJWT); nothing else is read.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import jwt
from django.conf import settings
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.request import Request

from access.middleware import user_id_problem
from access.models import ServiceToken
from access.principals import ExchangeUserPrincipal, ServicePrincipal
from access.services import TOKEN_PREFIX, token_digest
from config import clock

# last_used_at is for ops ("is this token still in use?"): minute precision is
# enough, and skipping the write on every request keeps the hot door cheap.
LAST_USED_RESOLUTION = dt.timedelta(minutes=1)
# Far above any token the auth service signs; a longer one is refused unread.
MAX_TOKEN_LENGTH = 8192


class CredentialRefused(exceptions.AuthenticationFailed):
    """A 401 that names the claims at fault, as a 400 names its fields."""

    def __init__(self, message: str, fields: dict[str, list[str]] | None = None) -> None:
        super().__init__(message)
        self.fields = fields or {}


def _bearer(request: Request) -> str | None:
    try:
        header = get_authorization_header(request).split()
    except UnicodeEncodeError:
        # Only a server that hands over headers as decoded text lets this through.
        raise exceptions.AuthenticationFailed("Authorization header is not valid text") from None
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


_CLAIM_ERRORS: tuple[tuple[type[jwt.InvalidTokenError], str], ...] = (
    (jwt.ExpiredSignatureError, "exp"),
    (jwt.InvalidIssuedAtError, "iat"),
    (jwt.InvalidAudienceError, "aud"),
    (jwt.InvalidIssuerError, "iss"),
    (jwt.exceptions.InvalidSubjectError, "sub"),
    (jwt.exceptions.InvalidJTIError, "jti"),
)
# PyJWT names the time claim only in the message of its DecodeError and
# ImmatureSignatureError: "Expiration Time claim (exp) must be an integer."
_CLAIM_IN_MESSAGE = re.compile(r"\((exp|nbf|iat)\)")


def _claim_of(error: jwt.InvalidTokenError) -> str | None:
    if isinstance(error, jwt.MissingRequiredClaimError):
        return str(error.claim)
    for kind, claim in _CLAIM_ERRORS:
        if isinstance(error, kind):
            return claim
    named = _CLAIM_IN_MESSAGE.search(str(error))
    return named.group(1) if named else None


def decode_user_jwt(token: str) -> dict[str, Any]:
    algorithm = settings.JWT_ALGORITHM
    key = (
        settings.JWT_PUBLIC_KEY if algorithm.startswith(("RS", "ES")) else settings.JWT_SIGNING_KEY
    )
    if not key:
        raise exceptions.AuthenticationFailed("user tokens are not configured on this server")
    if len(token) > MAX_TOKEN_LENGTH:
        raise CredentialRefused(f"invalid token: longer than {MAX_TOKEN_LENGTH} characters")
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
        raise CredentialRefused("token expired", {"exp": ["expired"]}) from None
    except jwt.InvalidTokenError as error:
        claim = _claim_of(error)
        fields = {claim: [str(error)]} if claim else None
        raise CredentialRefused(f"invalid token: {error}", fields) from None
    sub = claims["sub"]
    problem = user_id_problem(sub) if isinstance(sub, str) else "must be a string"
    if problem is not None:
        raise CredentialRefused(f"invalid token: sub: {problem}", {"sub": [problem]})
    return claims
