"""Hostile input to every endpoint is a 4xx in the API's error shape, never a 500.

Every URL pattern under /api/ is called with hostile path values and query
parameters (NUL, control characters, bytes that are not UTF-8, an encoded lone
surrogate, 3,000 characters), and with user JWTs whose claims are hostile,
anonymously and with both credential kinds; then random text, generated.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import re
from typing import Any
from urllib.parse import quote

import jwt
import pytest
from django.conf import settings
from django.test import Client, override_settings
from django.urls import URLPattern, URLResolver, get_resolver
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from rest_framework.test import APIClient

from access.services import create_service_token
from tests.ledger.conftest import user_jwt

pytestmark = pytest.mark.django_db

# Each URL pattern of the API: the methods its view answers, the path
# parameter it takes (None: none) and a query parameter it reads ("q": none,
# the request checks hold every parameter to the same bounds).
ROUTES: dict[str, tuple[tuple[str, ...], str | None, str]] = {
    "api/schema/": (("get",), None, "format"),
    "api/docs/": (("get",), None, "q"),
    "api/redoc/": (("get",), None, "q"),
    "api/v1/events": (("post",), None, "q"),
    "api/v1/payouts": (("get",), None, "after"),
    "api/v1/payouts/<int:payout_id>/ack": (("post",), "payout_id", "q"),
    "api/v1/me/ledger": (("get",), None, "cursor"),
    "api/v1/campaigns": (("get",), None, "q"),
    "api/v1/campaigns/<slug:slug>": (("get",), "slug", "q"),
    "api/v1/campaigns/<slug:slug>/eligibility": (("get",), "slug", "q"),
    "api/v1/campaigns/<slug:slug>/eligibility/<path:user_id>": (("get",), "user_id", "q"),
    "api/v1/campaigns/<slug:slug>/registration": (("post",), "slug", "q"),
    "api/v1/campaigns/<slug:slug>/me": (("get",), "slug", "q"),
    "api/v1/campaigns/<slug:slug>/spins": (("post",), "slug", "q"),
    "api/v1/campaigns/<slug:slug>/draw": (("get",), "slug", "q"),
    "api/v1/vouchers": (("get",), None, "status"),
    "api/v1/vouchers/grants": (("post",), None, "q"),
    "api/v1/vouchers/orders/<str:order_id>": (("get",), "order_id", "q"),
    "api/v1/vouchers/<int:voucher_id>": (("get",), "voucher_id", "q"),
    "api/v1/referrals/me": (("get",), None, "q"),
    "api/v1/referrals/me/invitees": (("get",), None, "q"),
    "api/v1/referrals/me/commissions": (("get",), None, "q"),
    "api/v1/referrals/users/<path:user_id>": (("get",), "user_id", "q"),
    "api/v1/referrals/codes/<str:code>": (("get",), "code", "q"),
    "api/v1/referrals/partners/<path:user_id>": (("get", "put"), "user_id", "q"),
    "api/v1/earn": (("get",), None, "q"),
    "api/v1/earn/activation": (("post", "delete"), None, "q"),
    "api/v1/earn/interest": (("get",), None, "q"),
}
# A well-formed value for each path parameter, naming nothing that exists.
WELL_FORMED = {
    "payout_id": "1",
    "slug": "winter",
    "order_id": "o-1",
    "voucher_id": "1",
    "user_id": "u_1",
    "code": "ABCD1234",
}

CALLS = [(route, method) for route, (methods, _, _) in ROUTES.items() for method in methods]
CONTROL_NUL = "must not hold control character U+0000"
NOT_UTF8 = "must be UTF-8 text (invalid bytes or an encoded lone surrogate)"
# As they stand in the URL: percent-encoded.
HOSTILE_VALUES = [
    ("%00", CONTROL_NUL),
    ("a%00b", CONTROL_NUL),
    ("%1B%5B2J", "must not hold control character U+001B"),
    ("%C2%85", "must not hold control character U+0085"),
    ("%ED%A0%80", NOT_UTF8),
    ("%FF", NOT_UTF8),
    ("%C0%80", NOT_UTF8),
    ("a" * 3000, "must be at most 256 characters, not 3000"),
]
CREDENTIALS = ["none", "user", "service"]


def _walk(patterns: list[Any], prefix: str) -> list[tuple[str, Any]]:
    found = []
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            found += _walk(pattern.url_patterns, prefix + str(pattern.pattern))
        elif isinstance(pattern, URLPattern):
            found.append((prefix + str(pattern.pattern), pattern.callback))
    return found


def _path(route: str, value: str | None = None) -> str:
    """The route with its path parameter (ROUTES) set to ``value``, any other
    well formed (all of them if ``value`` is None)."""
    hostile = ROUTES[route][1]
    return "/" + re.sub(
        r"<(?:\w+:)?(\w+)>",
        lambda m: value if value is not None and m[1] == hostile else WELL_FORMED[m[1]],
        route,
    )


def _client(credential: str) -> APIClient:
    client = APIClient()
    if credential == "user":
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {user_jwt('u_1')}")
    elif credential == "service":
        _, token = create_service_token(name="hostile-test")
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


def _bearer(token: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


def _jwt(claims: dict[str, Any]) -> str:
    """Claims signed as they are: PyJWT's encoder would refuse some of them."""
    payload = {
        name: int(value.timestamp()) if isinstance(value, dt.datetime) else value
        for name, value in claims.items()
    }
    return jwt.api_jws.encode(
        json.dumps(payload).encode(), settings.JWT_SIGNING_KEY, algorithm="HS256"
    )


def _soon() -> dt.datetime:
    return dt.datetime.now(tz=dt.UTC) + dt.timedelta(minutes=5)


def _invalid(name: str, problem: str) -> dict[str, Any]:
    return {
        "error": {
            "code": "invalid",
            "message": f"invalid request: {name}: {problem}",
            "fields": {name: [problem]},
        }
    }


def _refused(message: str, fields: dict[str, list[str]] | None = None) -> dict[str, Any]:
    error: dict[str, Any] = {"code": "authentication_failed", "message": message}
    if fields:
        error["fields"] = fields
    return {"error": error}


def test_every_url_pattern_of_the_api_is_covered() -> None:
    walked = {
        route: tuple(m for m in ("get", "post", "put", "patch", "delete") if hasattr(view, m))
        for route, callback in _walk(get_resolver().url_patterns, "")
        if route.startswith("api/")
        for view in [getattr(callback, "cls", None) or callback.view_class]
    }
    assert walked == {route: methods for route, (methods, _, _) in ROUTES.items()}


@pytest.mark.parametrize("credential", CREDENTIALS)
@pytest.mark.parametrize(("value", "problem"), HOSTILE_VALUES)
@pytest.mark.parametrize(
    ("route", "method"), [(route, method) for route, method in CALLS if ROUTES[route][1]]
)
def test_a_hostile_path_parameter_is_a_400_naming_it(
    route: str, method: str, value: str, problem: str, credential: str
) -> None:
    response = _client(credential).generic(method.upper(), _path(route, value))
    assert response.status_code == 400
    assert response.json() == _invalid(ROUTES[route][1] or "", problem)


@pytest.mark.parametrize("credential", CREDENTIALS)
@pytest.mark.parametrize(("value", "problem"), HOSTILE_VALUES)
@pytest.mark.parametrize(("route", "method"), CALLS)
def test_a_hostile_query_parameter_is_a_400_naming_it(
    route: str, method: str, value: str, problem: str, credential: str
) -> None:
    name = ROUTES[route][2]
    response = _client(credential).generic(method.upper(), f"{_path(route)}?{name}={value}")
    assert response.status_code == 400
    assert response.json() == _invalid(name, problem)


@pytest.mark.parametrize(
    ("query", "problem"),
    [
        ("%00=1", "a parameter name must not hold control character U+0000"),
        ("%FF=1", f"a parameter name {NOT_UTF8}"),
        ("a" * 65 + "=1", "a parameter name must be at most 64 characters, not 65"),
        ("&".join(f"p{n}=1" for n in range(33)), "at most 32 parameters, not 33"),
    ],
)
def test_a_hostile_query_string_is_a_400_naming_the_query(query: str, problem: str) -> None:
    response = _client("user").get(f"/api/v1/me/ledger?{query}")
    assert response.status_code == 400
    assert response.json() == _invalid("query", problem)


def test_every_offending_part_is_named_at_once() -> None:
    response = _client("user").get("/api/v1/vouchers/orders/a%00b?status=%FF&cursor=%07")
    assert response.status_code == 400
    assert response.json()["error"]["fields"] == {
        "order_id": [CONTROL_NUL],
        "status": [NOT_UTF8],
        "cursor": ["must not hold control character U+0007"],
    }


def test_bounds_admit_what_they_document() -> None:
    client = _client("user")
    # 256 characters and 32 parameters pass the request checks (the view answers).
    padded = "&".join(f"p{n}=1" for n in range(31))
    assert client.get(f"/api/v1/vouchers?{padded}&q={'a' * 256}").status_code == 200
    # Text is any UTF-8 without control characters: é, a space, emoji.
    assert client.get("/api/v1/vouchers/orders/%C3%A9%20%F0%9F%98%80").status_code == 404


@pytest.mark.parametrize(
    ("path", "status", "body"),
    [
        # Well formed but unknown: 404 as before, in the error shape.
        ("/api/v1/campaigns/" + "s" * 80, 404, None),
        ("/api/v1/vouchers/orders/" + "o" * 128, 404, None),
        ("/api/v1/vouchers/" + "9" * 30, 404, None),
        ("/api/v1/vouchers/orders/%C3%BC-1", 404, None),
        # Beyond the view's own bound: a campaign slug is 1-80 characters, an
        # order id 1-128 (CONTRACT.md).
        (
            "/api/v1/campaigns/" + "s" * 81,
            400,
            _invalid("slug", "must be at most 80 characters, not 81"),
        ),
        (
            "/api/v1/campaigns/" + "s" * 81 + "/draw",
            400,
            _invalid("slug", "must be at most 80 characters, not 81"),
        ),
        (
            "/api/v1/vouchers/orders/" + "o" * 129,
            400,
            _invalid("order_id", "must be at most 128 characters, not 129"),
        ),
        # A literal %FF (sent as %25FF) is refused with the broken bytes it
        # cannot be told from once Django has decoded the path.
        ("/api/v1/vouchers/orders/%25FF", 400, _invalid("order_id", NOT_UTF8)),
    ],
)
def test_per_parameter_bounds_of_the_user_endpoints(
    path: str, status: int, body: dict[str, Any] | None
) -> None:
    response = _client("user").get(path)
    assert response.status_code == status
    if body is None:
        assert response.json()["error"]["code"] == "not_found"
    else:
        assert response.json() == body


@pytest.mark.parametrize(
    ("user_id", "status", "body"),
    [
        ("a" * 65, 400, _invalid("user_id", "must be at most 64 characters, not 65")),
        (
            "a\u200bb",
            400,
            _invalid("user_id", "must hold printable characters only, not U+200B"),
        ),
        (
            "a\u2028b",
            400,
            _invalid("user_id", "must hold printable characters only, not U+2028"),
        ),
        ("   ", 400, _invalid("user_id", "must not be blank")),
        ("a" * 64, 404, None),
        ("u ü 1", 404, None),
    ],
)
def test_a_service_asks_about_a_user_id_of_the_contract(
    user_id: str, status: int, body: dict[str, Any] | None
) -> None:
    response = _client("service").get(f"/api/v1/campaigns/nope/eligibility/{quote(user_id)}")
    assert response.status_code == status
    if body is None:
        assert response.json() == {"error": {"code": "not_found", "message": "no campaign 'nope'"}}
    else:
        assert response.json() == body


def test_a_well_formed_but_unknown_payout_is_a_404() -> None:
    response = _client("service").post(f"/api/v1/payouts/{'9' * 30}/ack")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


HOSTILE_SUBS = [
    ("\x00", "must not hold control character U+0000"),
    ("a\x00b", "must not hold control character U+0000"),
    ("\ud800", "must be UTF-8 text: U+D800 is a lone surrogate"),
    ("u\udfff1", "must be UTF-8 text: U+DFFF is a lone surrogate"),
    ("x" * 3000, "must be at most 64 characters, not 3000"),
    ("x" * 65, "must be at most 64 characters, not 65"),
    ("", "must be at least 1 character"),
    ("   ", "must not be blank"),
    ("u\t1", "must not hold control character U+0009"),
    ("u\x7f1", "must not hold control character U+007F"),
    ("u\x851", "must not hold control character U+0085"),
    ("u\u200e1", "must hold printable characters only, not U+200E"),
    ("u\u20281", "must hold printable characters only, not U+2028"),
    ("u\ue0001", "must hold printable characters only, not U+E000"),
]


@pytest.mark.parametrize(("sub", "problem"), HOSTILE_SUBS)
@pytest.mark.parametrize(("route", "method"), CALLS)
def test_a_hostile_jwt_sub_is_a_401_naming_it(
    route: str, method: str, sub: str, problem: str
) -> None:
    client = _bearer(_jwt({"sub": sub, "exp": _soon()}))
    if route in ("api/docs/", "api/redoc/"):
        # The docs pages are HTML only: their 401 is a page, not the JSON shape.
        response = client.get(_path(route))
        assert (response.status_code, response.content) == (401, b"401 Unauthorized")
        return
    # The schema answers YAML unless JSON is asked for.
    response = client.generic(method.upper(), _path(route), HTTP_ACCEPT="application/json")
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == 'Bearer realm="api"'
    assert response.json() == _refused(f"invalid token: sub: {problem}", {"sub": [problem]})


def test_a_sub_of_64_printable_characters_is_a_user() -> None:
    sub = "ü" * 60 + " u_1"
    client = _bearer(_jwt({"sub": sub, "exp": _soon()}))
    assert client.post("/api/v1/earn/activation").status_code == 201
    assert client.get("/api/v1/earn").json()["active"] is True


@pytest.mark.parametrize(
    ("claims", "message", "fields"),
    [
        (
            {"sub": 42},
            "invalid token: Subject must be a string",
            {"sub": ["Subject must be a string"]},
        ),
        (
            {"sub": "u_1", "exp": "soon"},
            "invalid token: Expiration Time claim (exp) must be an integer.",
            {"exp": ["Expiration Time claim (exp) must be an integer."]},
        ),
        (
            {"sub": "u_1", "nbf": "\x00"},
            "invalid token: Not Before claim (nbf) must be an integer.",
            {"nbf": ["Not Before claim (nbf) must be an integer."]},
        ),
        (
            {"sub": "u_1", "iat": "\ud800"},
            "invalid token: Issued At claim (iat) must be an integer.",
            {"iat": ["Issued At claim (iat) must be an integer."]},
        ),
        (
            {"sub": "u_1", "jti": ["x"]},
            "invalid token: JWT ID must be a string",
            {"jti": ["JWT ID must be a string"]},
        ),
        (
            {"sub": "u_1", "exp": 1},
            "token expired",
            {"exp": ["expired"]},
        ),
        (
            {"sub": "u_1", "exp": None},
            'invalid token: Token is missing the "exp" claim',
            {"exp": ['Token is missing the "exp" claim']},
        ),
    ],
)
def test_other_hostile_claims_are_named(
    claims: dict[str, Any], message: str, fields: dict[str, list[str]]
) -> None:
    response = _bearer(_jwt({"exp": _soon(), **claims})).get("/api/v1/me/ledger")
    assert response.status_code == 401
    assert response.json() == _refused(message, fields)


@override_settings(JWT_AUDIENCE="rewards", JWT_ISSUER="auth.exchange")
@pytest.mark.parametrize(
    ("claims", "message", "fields"),
    [
        (
            {"aud": "\x00", "iss": "auth.exchange"},
            "invalid token: Audience doesn't match",
            {"aud": ["Audience doesn't match"]},
        ),
        (
            {"aud": {"a": 1}, "iss": "auth.exchange"},
            "invalid token: Invalid claim format in token",
            {"aud": ["Invalid claim format in token"]},
        ),
        (
            {"aud": "rewards", "iss": "a" * 3000},
            "invalid token: Invalid issuer",
            {"iss": ["Invalid issuer"]},
        ),
        (
            {"aud": "rewards", "iss": ["auth.exchange"]},
            "invalid token: Payload Issuer (iss) must be a string",
            {"iss": ["Payload Issuer (iss) must be a string"]},
        ),
    ],
)
def test_audience_and_issuer_are_named_when_configured(
    claims: dict[str, Any], message: str, fields: dict[str, list[str]]
) -> None:
    good = _bearer(_jwt({"sub": "u_1", "exp": _soon(), "aud": "rewards", "iss": "auth.exchange"}))
    assert good.get("/api/v1/me/ledger").status_code == 200
    response = _bearer(_jwt({"sub": "u_1", "exp": _soon(), **claims})).get("/api/v1/me/ledger")
    assert response.status_code == 401
    assert response.json() == _refused(message, fields)


def _segment(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


@pytest.mark.parametrize(
    ("header", "message"),
    [
        # A header nested thousands deep is parsed before the signature is checked.
        (
            f"Bearer {_segment('[' * 5000)}.{_segment('{}')}.",
            "invalid token: Invalid header string: maximum recursion depth exceeded"
            " while decoding a JSON array from a unicode string",
        ),
        ("Bearer " + "x" * 9000, "invalid token: longer than 8192 characters"),
        ("Bearer a\x00b", "invalid token: Not enough segments"),
        ("Bearer \xff\xfe", "bearer token is not valid text"),
        ("Bearer \ud800", "Authorization header is not valid text"),
        ("Bearer svc_\x00", "unknown service token"),
        ("Bearer svc_" + "x" * 3000, "unknown service token"),
    ],
)
def test_a_hostile_authorization_header_is_a_401(header: str, message: str) -> None:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=header)
    response = client.get("/api/v1/me/ledger")
    assert response.status_code == 401
    assert response.json() == _refused(message)


@pytest.mark.parametrize("value", ["\x00", "a\ud800b", "\xff\xfe", "r" * 3000, "a\r\nX-Evil: 1"])
def test_a_hostile_request_id_is_replaced(value: str) -> None:
    response = _client("user").get("/api/v1/me/ledger", HTTP_X_REQUEST_ID=value)
    assert response.status_code == 200
    assert re.fullmatch(r"[0-9a-f]{32}", response["X-Request-ID"])


def test_the_admin_is_held_to_the_same_path_and_query_rules() -> None:
    support = Client().get("/admin/support/users/a%00b/")
    assert support.status_code == 400
    assert support.json() == _invalid("user_id", CONTROL_NUL)
    search = Client().get("/admin/support/users/?user_id=%FF")
    assert search.json() == _invalid("user_id", NOT_UTF8)


# Any code point, lone surrogates and controls drawn often.
_HOSTILE_TEXT = st.text(
    st.one_of(
        st.characters(),
        st.characters(categories=["Cs", "Cc", "Cf", "Zl", "Zp", "Co"]),
        st.sampled_from("\x00%&=+/?#;"),
    ),
    max_size=80,
)


def _encoded(text: str) -> str:
    return quote(text.encode("utf-8", "surrogatepass"), safe="")


def _in_the_error_shape(response: Any) -> None:
    assert response.status_code < 500, response.content
    if response.status_code in (400, 401):
        error = response.json()["error"]
        assert set(error) <= {"code", "message", "fields"} and error["message"]


@hypothesis_settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(value=_HOSTILE_TEXT, order_id=_HOSTILE_TEXT)
def test_random_text_in_paths_and_queries_is_never_a_5xx(value: str, order_id: str) -> None:
    user, service = _client("user"), _client("service")
    encoded = _encoded(value)
    _in_the_error_shape(service.get(f"/api/v1/campaigns/winter/eligibility/{encoded}"))
    _in_the_error_shape(service.get(f"/api/v1/payouts?after={encoded}&limit={encoded}"))
    _in_the_error_shape(user.get(f"/api/v1/vouchers?status={encoded}"))
    _in_the_error_shape(user.get(f"/api/v1/me/ledger?cursor={encoded}&page_size={encoded}"))
    _in_the_error_shape(user.get(f"/api/v1/campaigns/winter/eligibility?q={encoded}"))
    if order_id:
        _in_the_error_shape(user.get(f"/api/v1/vouchers/orders/{_encoded(order_id)}"))


@hypothesis_settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(sub=_HOSTILE_TEXT)
def test_random_jwt_subs_are_never_a_5xx(sub: str) -> None:
    client = _bearer(_jwt({"sub": sub, "exp": _soon()}))
    for response in (
        client.get("/api/v1/me/ledger"),
        client.get("/api/v1/campaigns"),
        client.post("/api/v1/earn/activation"),
        client.get("/api/v1/referrals/me"),
    ):
        _in_the_error_shape(response)
        if response.status_code == 401:
            assert set(response.json()["error"]["fields"]) == {"sub"}
