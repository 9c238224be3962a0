"""An API client as the exchange's frontend holds it."""

from __future__ import annotations

import datetime as dt

import jwt
from django.conf import settings
from rest_framework.test import APIClient


def user_client(user_id: str) -> APIClient:
    """An API client holding a JWT as the exchange's auth service signs it."""
    now = dt.datetime.now(tz=dt.UTC)
    token = jwt.encode(
        {"sub": user_id, "iat": now, "exp": now + dt.timedelta(minutes=10)},
        settings.JWT_SIGNING_KEY,
        algorithm="HS256",
    )
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client
