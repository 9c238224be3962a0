"""POST /api/v1/events: the REST batch door."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from access.services import create_service_token, revoke_service_token
from ledger.models import Event, QuarantinedInput
from tests import events

pytestmark = pytest.mark.django_db
URL = "/api/v1/events"


def test_per_event_answers(service_client: APIClient) -> None:
    good = events.fill("u_1")
    bad = events.fill("u_1")
    bad["data"]["notional"] = 12.5
    response = service_client.post(URL, {"events": [good, good, bad]}, format="json")
    assert response.status_code == 200
    body = response.json()
    assert (body["accepted"], body["duplicate"], body["rejected"]) == (1, 1, 1)
    assert [r["status"] for r in body["results"]] == ["accepted", "duplicate", "rejected"]
    assert body["results"][2]["errors"] == [
        {
            "field": "data.notional",
            "message": "must be a decimal number as a JSON string, not a JSON number",
        }
    ]
    assert body["results"][2]["quarantine_id"] == QuarantinedInput.objects.get().pk
    assert Event.objects.count() == 1


@pytest.mark.parametrize(
    ("payload", "content_type", "field"),
    [
        ("{not json", "application/json", None),
        ("[]", "application/json", "events"),
        ('{"events": []}', "application/json", "events"),
        ('{"events": {"a": 1}}', "application/json", "events"),
        ('{"other": 1}', "application/json", "events"),
    ],
)
def test_a_bad_body_is_a_clear_400(
    service_client: APIClient, payload: str, content_type: str, field: str | None
) -> None:
    response = service_client.generic("POST", URL, payload, content_type=content_type)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["message"]
    if field:
        assert field in error["fields"]


def test_more_than_5000_events_is_refused(service_client: APIClient) -> None:
    response = service_client.post(URL, {"events": [{}] * 5001}, format="json")
    assert response.status_code == 400
    assert "at most 5000" in response.json()["error"]["fields"]["events"][0]
    assert QuarantinedInput.objects.count() == 0


def test_non_object_events_are_rejected_individually(service_client: APIClient) -> None:
    response = service_client.post(URL, {"events": [1, "x", None]}, format="json")
    assert response.status_code == 200
    assert response.json()["rejected"] == 3


def test_auth_is_required() -> None:
    client = APIClient()
    assert client.post(URL, {"events": [events.fill()]}, format="json").status_code == 401
    client.credentials(HTTP_AUTHORIZATION="Bearer svc_wrong")
    assert client.post(URL, {"events": [events.fill()]}, format="json").status_code == 401
    token_row, token = create_service_token(name="exchange")
    revoke_service_token(token=token_row)
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    response = client.post(URL, {"events": [events.fill()]}, format="json")
    assert response.status_code == 401
    assert Event.objects.count() == 0


def test_a_user_jwt_cannot_ingest(user_client: object) -> None:
    response = user_client("u_1").post(URL, {"events": [events.fill()]}, format="json")  # type: ignore[operator]
    assert response.status_code == 403
