"""Writes of the access app: service tokens and staff groups."""

from __future__ import annotations

import hashlib
import secrets

from django.db import transaction

from access.models import ServiceToken
from config import clock

TOKEN_PREFIX = "svc_"  # noqa: S105 - a marker that tells token kinds apart, not a secret


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@transaction.atomic
def create_service_token(*, name: str, created_by: str = "") -> tuple[ServiceToken, str]:
    """Create a token for a service. The plain token is returned once and never stored."""
    name = name.strip()
    if not name:
        raise ValueError("a service token needs a name")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    row = ServiceToken.objects.create(
        name=name,
        prefix=token[:12],
        digest=token_digest(token),
        created_at=clock.now(),
        created_by=created_by,
    )
    return row, token


def revoke_service_token(*, token: ServiceToken, by: str = "") -> ServiceToken:
    """Revoke a token; revoking twice keeps the first revocation."""
    ServiceToken.objects.filter(pk=token.pk, revoked_at__isnull=True).update(
        revoked_at=clock.now(), revoked_by=by
    )
    token.refresh_from_db()
    return token
