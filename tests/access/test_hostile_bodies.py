"""Hostile cursors, request bodies, pages and paths are a 4xx in the API's
error shape, never a 500.

- a forged ``?cursor=`` whose position is not a time (access/pagination.py);
- a voucher grant whose key or user id holds NUL or a lone surrogate
  (vouchers/services.py);
- JSON bodies nested too deep, too large, with ``NaN``, an infinite number,
  NUL or a lone surrogate (access/parsers.py);
- the API docs asked for JSON with a bad token (config/urls.py);
- a path under /api/ that matches no route, DEBUG on or off
  (``access.middleware.ApiNotFoundMiddleware``).
"""

from __future__ import annotations

import base64
import json
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

import pytest
from django.test import override_settings
from rest_framework.test import APIClient

from access.services import create_service_token
from ledger.bookkeeping import UserCredit, fund_account, open_funding_account, post_user_credits
from tests.ledger.conftest import user_jwt
from tests.vouchers.conftest import make_program
from vouchers import services
from vouchers.models import Voucher

pytestmark = pytest.mark.django_db

LEDGER = "/api/v1/me/ledger"
SPINS = "/api/v1/campaigns/winter/spins"
GRANTS = "/api/v1/vouchers/grants"
INVALID_CURSOR = {"error": {"code": "not_found", "message": "Invalid cursor"}}
TOO_DEEP = "JSON parse error - the body is nested deeper than 16 levels of arrays and objects"
NUL_VALUE = "the value contains a NUL character (U+0000)"
SURROGATE_VALUE = "the value contains a lone surrogate (U+D800-U+DFFF): not valid Unicode text"
ONE_MIB = 1_048_576  # docs/api.md: the largest body read
NO_ROUTE = {"error": {"code": "not_found", "message": "no such route"}}


def _user(user_id: str = "u_1") -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {user_jwt(user_id)}")
    return client


def _service() -> APIClient:
    _, token = create_service_token(name="hostile-bodies")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


def _invalid(fields: dict[str, list[str]]) -> dict[str, Any]:
    summary = "; ".join(f"{name}: {' '.join(msgs)}" for name, msgs in fields.items())
    return {
        "error": {"code": "invalid", "message": f"invalid request: {summary}", "fields": fields}
    }


def _parse_error(message: str) -> dict[str, Any]:
    return {"error": {"code": "parse_error", "message": message}}


def _cursor(tokens: dict[str, str]) -> str:
    """A cursor as DRF writes one: its tokens as a query string, in base64."""
    return base64.b64encode(urlencode(tokens).encode("ascii")).decode("ascii")


# --- 1. forged cursors -------------------------------------------------------------------


def _credit(user_id: str, key: str) -> None:
    account = open_funding_account(program="campaign:winter", asset="USDT")
    fund_account(account=account, amount=Decimal("10"), idempotency_key=f"fund:{key}", by="finance")
    post_user_credits(
        [
            UserCredit(
                idempotency_key=key,
                kind="campaign.daily_prize",
                funding_account=account,
                user_id=user_id,
                amount=Decimal("1"),
                user_kind="futures_bonus",
                cause={"campaign": "winter"},
            )
        ]
    )


@pytest.mark.parametrize(
    "tokens",
    [
        {"p": "garbage"},
        {"r": "1", "p": "garbage"},
        {"o": "1", "p": "garbage"},
        {"p": "\x00"},
        {"p": "2026-11-20 10:00:00+00:00\x00"},
        {"p": ""},
        {"p": "12345"},
        {"p": "2026-13-40 10:00:00+00:00"},
        # Parsed by the field, but not a position this API writes: no offset.
        {"p": "2026-11-20"},
        {"p": "2026-11-20 10:00:00"},
        # As a caller may forge it: "+" unescaped, read as a space.
        {"p": "2026-11-20 10:00:00 00:00"},
    ],
)
def test_a_forged_cursor_position_is_a_404(tokens: dict[str, str]) -> None:
    response = _user().get(LEDGER, {"cursor": _cursor(tokens)})
    assert response.status_code == 404
    assert response.json() == INVALID_CURSOR


@pytest.mark.parametrize(
    "tokens",
    [
        {"p": "2026-11-20 10:00:00+00:00"},
        {"p": "2026-11-20 10:00:00.123456+05:30"},
        {"r": "1", "p": "0001-01-01 00:00:00+00:00"},
        {"o": "3", "p": "9999-12-31 23:59:59.999999-12:00"},
    ],
)
def test_a_well_formed_cursor_position_pages(tokens: dict[str, str]) -> None:
    response = _user().get(LEDGER, {"cursor": _cursor(tokens)})
    assert response.status_code == 200
    assert response.json()["results"] == []


def test_cursors_the_api_wrote_still_page() -> None:
    _credit("u_1", "prize:u_1:1")
    _credit("u_1", "prize:u_1:2")
    _credit("u_1", "prize:u_1:3")
    client = _user()
    first = client.get(LEDGER, {"page_size": 2}).json()
    assert len(first["results"]) == 2
    second = client.get(first["next"]).json()
    assert len(second["results"]) == 1 and second["next"] is None
    back = client.get(second["previous"]).json()
    assert back["results"] == first["results"]


@pytest.mark.parametrize("size", ["abc", "0", "501", "-1", "2.5", "\u0661", ""])
def test_a_page_size_out_of_range_is_a_400_naming_it(size: str) -> None:
    response = _user().get(LEDGER, {"page_size": size})
    assert response.status_code == 400
    assert response.json()["error"]["fields"] == {"page_size": ["must be an integer from 1 to 500"]}


def test_page_sizes_1_and_500_are_read() -> None:
    _credit("u_1", "prize:u_1:1")
    _credit("u_1", "prize:u_1:2")
    assert len(_user().get(LEDGER, {"page_size": "1"}).json()["results"]) == 1
    assert len(_user().get(LEDGER, {"page_size": "500"}).json()["results"]) == 2


# --- 2. voucher grants -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "user_id", "errors"),
    [
        (
            "k\x00",
            "u_1",
            [{"field": "idempotency_key", "message": "must not hold control character U+0000"}],
        ),
        (
            "k\ud800",
            "u_1",
            [
                {
                    "field": "idempotency_key",
                    "message": "must be UTF-8 text: U+D800 is a lone surrogate",
                }
            ],
        ),
        (
            "k-1",
            "u\x00",
            [{"field": "user_id", "message": "must not hold control character U+0000"}],
        ),
        (
            "k-1",
            "\udfff",
            [{"field": "user_id", "message": "must be UTF-8 text: U+DFFF is a lone surrogate"}],
        ),
        (
            "",
            "",
            [
                {"field": "idempotency_key", "message": "must be at least 1 character"},
                {"field": "user_id", "message": "must be at least 1 character"},
            ],
        ),
        (
            "k" * 201,
            "u" * 65,
            [
                {"field": "idempotency_key", "message": "must be at most 200 characters, not 201"},
                {"field": "user_id", "message": "must be at most 64 characters, not 65"},
            ],
        ),
        ("k-1", "   ", [{"field": "user_id", "message": "must not be blank"}]),
    ],
)
def test_a_grant_with_unusable_text_is_rejected_alone(
    key: str, user_id: str, errors: list[dict[str, str]]
) -> None:
    make_program()
    report = services.grant_vouchers(
        [
            services.Grant("before", "u_1", "welcome", "fifty"),
            services.Grant(key, user_id, "welcome", "fifty"),
            services.Grant("after", "u_2", "welcome", "thirty"),
        ],
        source="test",
    )
    assert (report.granted, report.duplicate, report.rejected) == (2, 0, 1)
    rejected = report.results[1]
    assert rejected["status"] == "rejected" and rejected["errors"] == errors
    assert sorted(Voucher.objects.values_list("grant_key", flat=True)) == ["after", "before"]


def test_a_rejected_key_is_echoed_escaped() -> None:
    make_program()
    report = services.grant_vouchers(
        [services.Grant("k\ud800\x00", "u_1", "welcome", "fifty")], source="test"
    )
    assert report.results[0]["idempotency_key"] == "k\\ud800\\u0000"


def test_a_grant_body_with_nul_or_a_lone_surrogate_is_a_400_naming_it() -> None:
    make_program()
    body = (
        b'{"grants": [{"idempotency_key": "k-1", "user_id": "u\\u0000", "program": "welcome",'
        b' "template": "fifty"}, {"idempotency_key": "k\\ud800", "user_id": "u_2",'
        b' "program": "welcome", "template": "fifty"}]}'
    )
    response = _service().post(GRANTS, body, content_type="application/json")
    assert response.status_code == 400
    assert response.json() == _invalid(
        {
            "grants[1].idempotency_key": [SURROGATE_VALUE],
            "grants[0].user_id": [NUL_VALUE],
        }
    )
    assert not Voucher.objects.exists()


# --- 3. JSON bodies ----------------------------------------------------------------------

# Every endpoint whose view reads a JSON body, with the credential it takes.
BODY_ENDPOINTS = [(SPINS, "user"), (GRANTS, "service")]


def _post(path: str, caller: str, body: bytes | str) -> Any:
    client = _user() if caller == "user" else _service()
    return client.post(path, body, content_type="application/json")


@pytest.mark.parametrize(("path", "caller"), BODY_ENDPOINTS)
@pytest.mark.parametrize("depth", [2_000, 5_000, 100_000])
def test_a_body_nested_thousands_deep_is_a_400(path: str, caller: str, depth: int) -> None:
    for body in ("[" * depth + "]" * depth, '{"a":' * depth + "1" + "}" * depth):
        response = _post(path, caller, body)
        assert response.status_code == 400
        assert response.json() == _parse_error(TOO_DEEP)


def test_sixteen_levels_are_read_and_seventeen_refused() -> None:
    sixteen = '{"kind": ' + "[" * 16 + "]" * 16 + "}"
    answered = _post(SPINS, "user", sixteen)
    assert answered.status_code == 400
    assert answered.json() == _invalid({"kind": ['must be "coverage" or "daily"']})
    seventeen = '{"kind": ' + "[" * 17 + "]" * 17 + "}"
    response = _post(SPINS, "user", seventeen)
    assert response.status_code == 400
    at = "kind" + "[0]" * 16
    assert response.json() == _parse_error(f"{TOO_DEEP} (at {at})")


@pytest.mark.parametrize(("path", "caller"), BODY_ENDPOINTS)
@pytest.mark.parametrize(
    ("body", "message"),
    [
        ('{"kind": NaN}', "JSON parse error - not valid JSON: NaN is not JSON"),
        ('{"kind": -Infinity}', "JSON parse error - not valid JSON: -Infinity is not JSON"),
        (
            '{"kind": 1',
            "JSON parse error - not valid JSON: Expecting ',' delimiter: line 1 column 11 (char 10)",
        ),
        (
            b'{"kind": "\xff"}',
            "JSON parse error - not valid JSON: 'utf-8' codec can't decode byte 0xff in position 10: invalid start byte",
        ),
    ],
)
def test_text_that_is_not_json_is_a_400(
    path: str, caller: str, body: str | bytes, message: str
) -> None:
    response = _post(path, caller, body)
    assert response.status_code == 400
    assert response.json() == _parse_error(message)


OUT_OF_BOUNDS = (
    " is out of bounds: a JSON number must be finite, with at most 100 significant"
    " digits and a magnitude between 1e-100 and 1e100"
)


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        ('{"kind": 1e999}', {"kind": ["1E+999" + OUT_OF_BOUNDS]}),
        ('{"kind": [-1e999]}', {"kind[0]": ["-1E+999" + OUT_OF_BOUNDS]}),
        ('{"kind": "\\u0000"}', {"kind": [NUL_VALUE]}),
        ('{"kind": "daily\\u0000"}', {"kind": [NUL_VALUE]}),
        ('{"kind": "\\ud800"}', {"kind": [SURROGATE_VALUE]}),
        ('{"kind": {"a": ["x", "\\udc00"]}}', {"kind.a[1]": [SURROGATE_VALUE]}),
        (
            '{"k\\u0000": 1}',
            {'"k\\u0000"': ["the key contains a NUL character (U+0000)"]},
        ),
        (
            '{"\\udbff": 1}',
            {
                '"\\udbff"': [
                    "the key contains a lone surrogate (U+D800-U+DFFF): not valid Unicode text"
                ]
            },
        ),
        ('"\\u0000"', {"body": [NUL_VALUE]}),
        ("1e999", {"body": ["1E+999" + OUT_OF_BOUNDS]}),
    ],
)
def test_nul_a_lone_surrogate_or_an_infinite_number_is_a_400_naming_the_field(
    body: str, fields: dict[str, list[str]]
) -> None:
    response = _post(SPINS, "user", body)
    assert response.status_code == 400
    assert response.json() == _invalid(fields)


@pytest.mark.parametrize(("path", "caller"), BODY_ENDPOINTS)
def test_a_body_over_one_mib_is_a_413(path: str, caller: str) -> None:
    body = json.dumps({"kind": "daily", "pad": "x" * ONE_MIB})
    response = _post(path, caller, body)
    assert response.status_code == 413
    assert response.json() == {
        "error": {"code": "too_large", "message": "the body exceeds 1,048,576 bytes"}
    }


def test_a_body_of_one_mib_is_read() -> None:
    head = '{"kind": "jackpot", "pad": "'
    body = head + "x" * (ONE_MIB - len(head) - 2) + '"}'
    assert len(body.encode()) == ONE_MIB
    response = _post(SPINS, "user", body)
    assert response.status_code == 400
    assert response.json() == _invalid(
        {"kind": ['must be "coverage" or "daily"'], "pad": ["unknown field"]}
    )


def test_numbers_are_read_exactly_and_text_as_sent() -> None:
    make_program()
    body = (
        '{"grants": [{"idempotency_key": 12345678901234567890123, "user_id": "ü 😀",'
        ' "program": "welcome", "template": "fifty"}]}'
    )
    response = _post(GRANTS, "service", body)
    assert response.status_code == 200
    [result] = response.json()["results"]
    assert (result["idempotency_key"], result["status"]) == ("12345678901234567890123", "granted")
    assert Voucher.objects.get().user_id == "ü 😀"


HOSTILE_BODIES = [
    "[" * 5_000 + "]" * 5_000,
    '{"kind": "\\u0000", "\\ud800": NaN}',
    '{"kind": 1e999}',
    json.dumps({"pad": "x" * (ONE_MIB + 1)}),
]


@pytest.mark.parametrize("body", HOSTILE_BODIES, ids=["deep", "text", "infinite", "large"])
@pytest.mark.parametrize(
    ("method", "path", "caller"),
    [
        ("post", SPINS, "user"),
        ("post", "/api/v1/campaigns/winter/registration", "user"),
        ("post", "/api/v1/earn/activation", "user"),
        ("delete", "/api/v1/earn/activation", "user"),
        ("post", GRANTS, "service"),
        ("post", "/api/v1/payouts/1/ack", "service"),
        ("post", "/api/v1/events", "service"),
    ],
)
def test_no_endpoint_answers_a_hostile_body_with_a_5xx(
    method: str, path: str, caller: str, body: str
) -> None:
    client = _user() if caller == "user" else _service()
    response = client.generic(method.upper(), path, body, content_type="application/json")
    # Views that never read their body (registration, activation) answer as usual.
    assert response.status_code < 500
    if response.status_code >= 400:
        assert set(response.json()["error"]) <= {"code", "message", "fields"}


def test_a_body_that_is_not_json_is_a_415() -> None:
    response = _user().post(SPINS, {"kind": "daily"})  # multipart
    assert response.status_code == 415
    assert response.json()["error"]["code"] == "unsupported_media_type"


def test_the_event_door_keeps_its_own_parser_and_bounds() -> None:
    # Beyond the API's 1 MiB, well within the event door's 32 MiB.
    body = json.dumps({"events": [], "pad": "x" * (2 * ONE_MIB)})
    response = _post("/api/v1/events", "service", body)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid"


# --- 4. the API docs ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "accept", ["application/json", "application/xml", "text/html", "*/*", "nonsense", ""]
)
def test_the_docs_page_with_a_bad_token_is_a_401_whatever_is_accepted(accept: str) -> None:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Bearer not-a-token")
    response = client.get("/api/docs/", HTTP_ACCEPT=accept)
    assert (response.status_code, response.content) == (401, b"401 Unauthorized")


def test_the_docs_page_is_a_page_whatever_is_accepted() -> None:
    response = APIClient().get("/api/docs/", HTTP_ACCEPT="application/json")
    assert response.status_code == 200
    assert response["Content-Type"] == "text/html; charset=utf-8"


@pytest.mark.parametrize("accept", ["application/json", "text/html", "nonsense"])
def test_the_schema_with_a_bad_token_is_a_4xx(accept: str) -> None:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Bearer not-a-token")
    response = client.get("/api/schema/", HTTP_ACCEPT=accept)
    assert response.status_code in (401, 406)


def test_the_schema_with_a_bad_token_asked_for_json_names_the_fault() -> None:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Bearer not-a-token")
    response = client.get("/api/schema/", HTTP_ACCEPT="application/json")
    assert response.status_code == 401
    assert response.json() == {
        "error": {
            "code": "authentication_failed",
            "message": "invalid token: Not enough segments",
        }
    }


# --- 5. paths that match no route --------------------------------------------------------


@override_settings(DEBUG=False)
@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "/api/v1/vouchers/abc"),
        ("post", "/api/v1/payouts/x/ack"),
        ("get", "/api/v1/campaigns/a.b"),
        ("get", "/api/v1/campaigns/winter/nope"),
        ("get", "/api/v2/campaigns"),
        ("get", "/api/"),
        ("delete", "/api/v1/nothing/here/"),
    ],
)
@pytest.mark.parametrize("caller", ["none", "user", "service"])
@pytest.mark.parametrize("debug", [False, True])
def test_a_path_under_api_that_matches_no_route_is_a_json_404(
    method: str, path: str, caller: str, debug: bool, settings: Any
) -> None:
    # DEBUG on is how the demo runs: Django would answer its debug page.
    settings.DEBUG = debug
    client = _user() if caller == "user" else _service() if caller == "service" else APIClient()
    response = client.generic(method.upper(), path)
    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    assert response.json() == NO_ROUTE


@override_settings(DEBUG=False)
def test_a_path_outside_the_api_keeps_the_page() -> None:
    response = APIClient().get("/no/such/page")
    assert response.status_code == 404
    assert response["Content-Type"] == "text/html; charset=utf-8"
    assert b"<h1>Not Found</h1>" in response.content
