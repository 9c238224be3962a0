"""The coupon center, grants by other services, explanations, CSV grants, config."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import yaml
from rest_framework.test import APIClient

from access.services import create_service_token
from ledger.configuration import apply_config
from tests.ledger.conftest import user_jwt
from tests.vouchers.conftest import T0, close, grant
from vouchers import services
from vouchers.jobs import consume_vouchers
from vouchers.models import Voucher

Clock = Callable[[dt.datetime], dt.datetime]
H = dt.timedelta(hours=1)


def _user(user: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {user_jwt(user)}")
    return client


def _service() -> APIClient:
    _, token = create_service_token(name="campaign-service")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


def test_services_grant_idempotently(program: Any, clock: Clock) -> None:
    service = _service()
    body = {
        "grants": [
            {
                "idempotency_key": "reward-1",
                "user_id": "u_1",
                "program": "welcome",
                "template": "fifty",
            },
            {
                "idempotency_key": "reward-1",
                "user_id": "u_1",
                "program": "welcome",
                "template": "fifty",
            },
            {
                "idempotency_key": "reward-2",
                "user_id": "u_1",
                "program": "welcome",
                "template": "nope",
            },
        ]
    }
    first = service.post("/api/v1/vouchers/grants", body, format="json").json()
    assert (first["granted"], first["duplicate"], first["rejected"]) == (1, 1, 1)
    assert first["results"][2]["errors"][0]["field"] == "template"
    again = service.post("/api/v1/vouchers/grants", body, format="json").json()
    assert (again["granted"], again["duplicate"]) == (0, 2)
    assert Voucher.objects.count() == 1
    assert _user("u_1").post("/api/v1/vouchers/grants", body, format="json").status_code == 403
    bad = service.post("/api/v1/vouchers/grants", {"grants": []}, format="json")
    assert bad.status_code == 400 and "grants" in bad.json()["error"]["fields"]


def test_coupon_center_detail_and_history(program: Any, clock: Clock) -> None:
    v1 = grant("u_1", "fifty", "g1")
    clock(T0 + H)
    v2 = grant("u_1", "thirty", "g2")
    close("u_1", "o1", at=T0 + 2 * H, loss="50")
    close("u_1", "o2", at=T0 + 3 * H, loss="7.5")
    clock(T0 + 4 * H)
    consume_vouchers(at=T0 + 4 * H)
    active = _user("u_1").get("/api/v1/vouchers").json()["results"]
    assert [(v["id"], v["remaining"], v["status"]) for v in active] == [(v2, "22.5", "active")]
    assert active[0]["expires_at"] == "2026-11-27T11:00:00Z"
    history = _user("u_1").get("/api/v1/vouchers", {"status": "history"}).json()["results"]
    assert [(v["id"], v["remaining"], v["status"]) for v in history] == [(v1, "0", "used")]
    detail = _user("u_1").get(f"/api/v1/vouchers/{v1}").json()
    assert detail["orders"] == [
        {
            "order_id": "o1",
            "closed_at": "2026-11-20T12:00:00Z",
            "loss": "50",
            "compensation": "50",
            "payout": "pending",
            "paid_at": None,
        }
    ]
    assert _user("u_2").get(f"/api/v1/vouchers/{v1}").status_code == 404


def test_why_an_order_did_or_did_not_use_a_voucher(program: Any, clock: Clock) -> None:
    v1 = grant("u_1", "fifty", "g1")
    close("u_1", "early", at=T0 - H, loss="20")
    close("u_1", "tiny", at=T0 + H, loss="1")
    close("u_1", "copied", at=T0 + H, loss="20", origin="copy")
    close("u_1", "used", at=T0 + 2 * H, loss="20")
    clock(T0 + 3 * H)
    consume_vouchers(at=T0 + 3 * H)
    client = _user("u_1")
    used = client.get("/api/v1/vouchers/orders/used").json()
    assert (used["consumed"], used["voucher_id"], used["compensation"], used["payout"]) == (
        True,
        v1,
        "20",
        "pending",
    )
    assert client.get("/api/v1/vouchers/orders/tiny").json()["reasons"] == ["loss_too_small"]
    assert client.get("/api/v1/vouchers/orders/copied").json()["reasons"] == ["copy_trade"]
    early = client.get("/api/v1/vouchers/orders/early").json()
    assert early["reasons"] == ["no_usable_voucher"]
    assert early["vouchers"] == [{"voucher_id": v1, "reason": "before_arrival"}]
    assert client.get("/api/v1/vouchers/orders/unknown").status_code == 404


def test_csv_grants_twice_grant_once(program: Any, clock: Clock) -> None:
    rows = "\n".join(f"u_{n:06d}" for n in range(20_000))
    text = f"user_id\n{rows}\n"
    first = services.grant_vouchers(
        services.grants_from_csv(text, program="welcome", default_template="thirty"), source="csv"
    )
    again = services.grant_vouchers(
        services.grants_from_csv(text, program="welcome", default_template="thirty"), source="csv"
    )
    assert (first.granted, again.granted, again.duplicate) == (20_000, 0, 20_000)
    assert Voucher.objects.filter(face_value=Decimal(30)).count() == 20_000


def test_apply_config_voucher_programs(db: None, clock: Clock) -> None:
    document = yaml.safe_load("""
voucher_programs:
  - slug: vip
    title: VIP vouchers
    templates:
      - {code: hundred, face_value: "100", validity_days: 14, min_closing_amount: "1000"}
      - {code: season, face_value: "20", valid_until: "2026-12-31T00:00:00Z"}
    grants:
      - {key: vip-1, user_id: u_9, template: hundred}
""")
    lines = apply_config(document, by="ops")
    assert "  grants: 1 new, 0 already granted" in lines
    assert "  grants: 0 new, 1 already granted" in apply_config(document, by="ops")
    voucher = Voucher.objects.get(grant_key="vip-1")
    assert (voucher.face_value, voucher.min_closing_amount, voucher.expires_at) == (
        Decimal(100),
        Decimal(1000),
        T0 + dt.timedelta(days=14),
    )
