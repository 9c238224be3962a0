"""Who may call the API: service tokens, user JWTs (HS256 and RS256), the error shape."""

from __future__ import annotations

import datetime as dt
from io import StringIO

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from django.conf import settings
from django.core.management import call_command
from django.test import override_settings
from rest_framework.test import APIClient

from access.models import ServiceToken
from access.services import create_service_token, token_digest

pytestmark = pytest.mark.django_db
ME = "/api/v1/me/ledger"
NOW = dt.datetime.now(tz=dt.UTC)


def _client(token: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


def _hs256(claims: dict[str, object], key: str | None = None) -> str:
    return jwt.encode(claims, key or settings.JWT_SIGNING_KEY, algorithm="HS256")


def test_the_command_prints_the_token_once_and_stores_only_its_digest() -> None:
    out, err = StringIO(), StringIO()
    call_command("create_service_token", "wallet", stdout=out, stderr=err)
    token = out.getvalue().strip()
    assert token.startswith("svc_") and len(token) > 40
    row = ServiceToken.objects.get(name="wallet")
    assert row.digest == token_digest(token) and token not in row.digest
    assert row.prefix == token[:12]
    assert "shown only now" in err.getvalue()
    assert _client(token).get("/api/v1/payouts").status_code == 200
    row.refresh_from_db()
    assert row.last_used_at is not None


def test_no_token_is_a_401_with_a_bearer_challenge() -> None:
    response = APIClient().get(ME)
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == 'Bearer realm="api"'
    assert response.json()["error"]["code"] == "not_authenticated"


@pytest.mark.parametrize(
    ("header", "message"),
    [
        ("Bearer", "Authorization header must be"),
        ("Bearer a b", "Authorization header must be"),
        ("Bearer svc_unknown", "unknown service token"),
        ("Bearer not-a-jwt", "invalid token"),
    ],
)
def test_malformed_credentials_are_named(header: str, message: str) -> None:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=header)
    response = client.get(ME)
    assert response.status_code == 401
    assert message in response.json()["error"]["message"]


def test_a_revoked_service_token_is_refused() -> None:
    row, token = create_service_token(name="old")
    client = _client(token)
    assert client.get("/api/v1/payouts").status_code == 200
    ServiceToken.objects.filter(pk=row.pk).update(revoked_at=NOW)
    response = client.get("/api/v1/payouts")
    assert response.status_code == 401
    assert response.json()["error"]["message"] == "service token was revoked"


def test_user_jwt_claims_are_checked() -> None:
    good = {"sub": "u_1", "exp": NOW + dt.timedelta(minutes=5)}
    assert _client(_hs256(good)).get(ME).status_code == 200
    expired = {"sub": "u_1", "exp": NOW - dt.timedelta(minutes=5)}
    assert _client(_hs256(expired)).get(ME).json()["error"]["message"] == "token expired"
    no_exp = _client(_hs256({"sub": "u_1"})).get(ME)
    assert no_exp.status_code == 401 and "exp" in no_exp.json()["error"]["message"]
    no_sub = _client(_hs256({"exp": NOW + dt.timedelta(minutes=5)})).get(ME)
    assert no_sub.status_code == 401 and "sub" in no_sub.json()["error"]["message"]
    forged = _client(_hs256(good, key="some-other-key-of-at-least-32-bytes!!")).get(ME)
    assert forged.status_code == 401 and "Signature" in forged.json()["error"]["message"]


def test_rs256_with_the_auth_services_public_key() -> None:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public_pem = (
        private.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    claims = {"sub": "u_9", "exp": NOW + dt.timedelta(minutes=5)}
    with override_settings(JWT_ALGORITHM="RS256", JWT_PUBLIC_KEY=public_pem):
        assert _client(jwt.encode(claims, private, algorithm="RS256")).get(ME).status_code == 200
        assert _client(jwt.encode(claims, stranger, algorithm="RS256")).get(ME).status_code == 401
        # An HS256 token signed with the public key as secret (algorithm confusion) is refused.
        assert _client(_hs256(claims)).get(ME).status_code == 401


def test_the_api_schema_and_docs_are_served() -> None:
    schema = APIClient().get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert schema.status_code == 200
    paths = schema.json()["paths"]
    assert {
        "/api/v1/events",
        "/api/v1/payouts",
        "/api/v1/payouts/{payout_id}/ack",
        "/api/v1/me/ledger",
    } <= set(paths)
    assert APIClient().get("/api/docs/").status_code == 200
