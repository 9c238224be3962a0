from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator
from typing import Any

import jwt
import pytest
import redis
from django.conf import settings
from rest_framework.test import APIClient

from access.services import create_service_token


@pytest.fixture
def service_client(db: Any) -> APIClient:
    """An API client authenticated as one of the exchange's services."""
    _, token = create_service_token(name=f"svc-{uuid.uuid4().hex[:8]}")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


def user_jwt(user_id: str, *, minutes: int = 10) -> str:
    """A JWT as the exchange's auth service would sign it."""
    now = dt.datetime.now(tz=dt.UTC)
    return jwt.encode(
        {"sub": user_id, "iat": now, "exp": now + dt.timedelta(minutes=minutes)},
        settings.JWT_SIGNING_KEY,
        algorithm="HS256",
    )


@pytest.fixture
def user_client() -> Any:
    def make(user_id: str) -> APIClient:
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {user_jwt(user_id)}")
        return client

    return make


@pytest.fixture
def redis_client() -> redis.Redis:
    return redis.Redis.from_url(settings.REDIS_URL)


@pytest.fixture
def stream_name(redis_client: redis.Redis) -> Iterator[str]:
    """A stream of this test's own, removed afterwards."""
    name = f"test.events.{uuid.uuid4().hex}"
    yield name
    redis_client.delete(name)
