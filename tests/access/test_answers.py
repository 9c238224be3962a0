"""Small promises of the API's contract (docs/api.md): JSON whatever the
caller accepts, written 404 messages, ASCII integers, codes matched as codes,
user ids named as they are, closed bodies of JSON types."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from access.services import create_service_token
from ledger.ingestion import ingest
from referrals import rules
from tests import events
from tests.ledger.conftest import user_jwt

pytestmark = pytest.mark.django_db


def _service() -> APIClient:
    _, token = create_service_token(name="answers-test")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


def _user() -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {user_jwt('u_1')}")
    return client


def test_answers_are_json_and_an_accept_without_it_is_a_406() -> None:
    # A browser's Accept admits JSON through */*: no browsable HTML page.
    page = _user().get("/api/v1/campaigns", HTTP_ACCEPT="text/html,*/*;q=0.8")
    assert (page.status_code, page["Content-Type"]) == (200, "application/json")
    assert page.json() == {"results": []}
    refused = _user().get("/api/v1/campaigns", HTTP_ACCEPT="application/xml")
    assert refused.status_code == 406
    assert refused.json() == {
        "error": {
            "code": "not_acceptable",
            "message": "Could not satisfy the request Accept header.",
        }
    }


def test_an_unknown_payout_is_named_in_its_404() -> None:
    answer = _service().post("/api/v1/payouts/7/ack")
    assert answer.status_code == 404
    assert answer.json() == {"error": {"code": "not_found", "message": "no payout instruction 7"}}


@pytest.mark.parametrize("digits", ["\uff11", "\u0661", "1.0", "-1", " 1"])
def test_a_page_bound_is_written_in_ascii_digits(digits: str) -> None:
    answer = _service().get("/api/v1/payouts", {"limit": digits})
    assert answer.status_code == 400
    assert answer.json()["error"]["fields"] == {"limit": [f"must be an integer, not {digits!r}"]}


def test_text_that_folds_into_a_code_names_no_user() -> None:
    # The first user id whose code holds an S: "\u017f" (long s) upper-cases to S.
    user_id = next(f"u_{n}" for n in range(1000) if "S" in rules.referral_code(f"u_{n}"))
    ingest([events.registered(user_id)], source="test")
    code = rules.referral_code(user_id)
    assert _service().get(f"/api/v1/referrals/codes/{code.lower()}").status_code == 200
    folded = code.replace("S", "\u017f", 1)
    answer = _service().get(f"/api/v1/referrals/codes/{folded}")
    assert answer.status_code == 404
    assert answer.json()["error"]["message"] == "no user holds this referral code"


@pytest.mark.parametrize("written", ["desk/7", "desk%2F7"])
def test_a_user_id_holding_a_slash_is_named_last_in_a_path(written: str) -> None:
    ingest([events.registered("desk/7")], source="test")
    answer = _service().get(f"/api/v1/referrals/users/{written}")
    assert answer.status_code == 200
    assert answer.json()["user_id"] == "desk/7"
    assert answer.json()["code"] == rules.referral_code("desk/7")
    partner = _service().get(f"/api/v1/referrals/partners/{written}")
    assert partner.json() == {"user_id": "desk/7", "partner": False, "since": None, "note": ""}


def test_a_body_names_only_its_declared_fields_with_their_json_types() -> None:
    service = _service()
    ingest([events.registered("u_9")], source="test")
    typo = service.put(
        "/api/v1/referrals/partners/u_9", {"partner": True, "notes": "x"}, format="json"
    )
    assert typo.status_code == 400
    assert typo.json()["error"]["fields"] == {"notes": ["unknown field"]}
    for partner, note in ((1, ""), ("true", ""), (True, 5)):
        loose = service.put(
            "/api/v1/referrals/partners/u_9", {"partner": partner, "note": note}, format="json"
        )
        assert loose.status_code == 400
    assert service.put("/api/v1/referrals/partners/u_9", {"partner": "yes"}, format="json").json()[
        "error"
    ]["fields"] == {"partner": ["must be true or false"]}
    assert service.put(
        "/api/v1/referrals/partners/u_9", {"partner": True, "note": 5}, format="json"
    ).json()["error"]["fields"] == {"note": ["must be a string"]}
    envelope = service.post("/api/v1/events", {"events": [{}], "event": []}, format="json")
    assert envelope.status_code == 400
    assert envelope.json()["error"]["fields"] == {"event": ["unknown field"]}
    grants = service.post(
        "/api/v1/vouchers/grants",
        {
            "grants": [
                {
                    "idempotency_key": "k1",
                    "user_id": "u_9",
                    "program": "p",
                    "template": "t",
                    "face_value": "1000",
                }
            ]
        },
        format="json",
    )
    # One grant's fault is that grant's result, as every other fault of it.
    [result] = grants.json()["results"]
    assert result["status"] == "rejected"
    assert {"field": "face_value", "message": "unknown field"} in result["errors"]
