"""Community partners set as code (apply_config) and by other services, and
referral codes looked up by other services: real HTTP requests with a real
service token."""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable

import pytest
import yaml
from django.conf import settings
from rest_framework.test import APIClient

from access.services import create_service_token
from ledger.configuration import ConfigError, apply_config
from ledger.ingestion import ingest
from ledger.models import Event
from referrals.models import CommunityPartner, ReferralCode
from tests import events
from tests.ledger.conftest import user_jwt

Clock = Callable[[str], None]
CODES = "/api/v1/referrals/codes"
USERS = "/api/v1/referrals/users"
PARTNERS = "/api/v1/referrals/partners"


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    def set_to(text: str) -> None:
        monkeypatch.setenv("FROZEN_NOW", text)

    set_to("2026-11-21T09:00:00Z")
    return set_to


@pytest.fixture
def world(db: None, clock: Clock) -> None:
    ingest(
        [
            events.registered("r_1", occurred_at="2026-01-01T00:00:00Z"),
            events.registered("r_2", occurred_at="2026-01-02T00:00:00Z"),
        ],
        source="test",
    )


def _service() -> APIClient:
    _, token = create_service_token(name="crm")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


def _partner_events() -> list[tuple[str, str | None, str, str]]:
    return [
        (e.type, e.user_id, e.data["by"], e.data["note"])
        for e in Event.objects.filter(type__startswith="referral.partner_").order_by("position")
    ]


def test_a_service_looks_up_a_code_both_ways(world: None) -> None:
    service = _service()
    code = ReferralCode.objects.get(user_id="r_1").code
    expected = {
        "user_id": "r_1",
        "code": code,
        "link": f"{settings.REFERRAL_LINK_BASE}{code}",
    }
    by_user = service.get(f"{USERS}/r_1")
    assert (by_user.status_code, by_user.json()) == (200, expected)
    # Codes are matched in any case, as at registration.
    by_code = service.get(f"{CODES}/{code.lower()}")
    assert (by_code.status_code, by_code.json()) == (200, expected)

    unknown_user = service.get(f"{USERS}/u_nobody")
    assert (unknown_user.status_code, unknown_user.json()) == (
        404,
        {"error": {"code": "not_found", "message": "this user has no referral code"}},
    )
    assert service.get(f"{CODES}/NOSUCHCD").json()["error"]["message"] == (
        "no user holds this referral code"
    )
    too_long = service.get(f"{CODES}/{'A' * 17}")
    assert too_long.status_code == 400
    assert too_long.json()["error"]["fields"] == {"code": ["must be at most 16 characters, not 17"]}


def test_only_a_service_token_is_a_credential_here(world: None) -> None:
    user = APIClient()
    user.credentials(HTTP_AUTHORIZATION=f"Bearer {user_jwt('r_1')}")
    for path in (f"{USERS}/r_1", f"{CODES}/ABC", f"{PARTNERS}/r_1"):
        # A user's JWT is a credential of the wrong kind; none at all is no credential.
        assert user.get(path).status_code == 403
        assert APIClient().get(path).status_code == 401
    put = user.put(f"{PARTNERS}/r_1", {"partner": True}, format="json")
    assert put.status_code == 403
    assert not CommunityPartner.objects.exists()


def test_a_service_flags_and_unflags_a_partner_once_each(world: None, clock: Clock) -> None:
    service = _service()
    before = service.get(f"{PARTNERS}/r_1")
    assert (before.status_code, before.json()) == (
        200,
        {"user_id": "r_1", "partner": False, "since": None, "note": ""},
    )
    body = {"partner": True, "note": "Telegram community, OPS-77"}
    flagged = service.put(f"{PARTNERS}/r_1", body, format="json")
    assert (flagged.status_code, flagged.json()) == (
        200,
        {
            "user_id": "r_1",
            "partner": True,
            "since": "2026-11-21T09:00:00Z",
            "note": "Telegram community, OPS-77",
            "changed": True,
        },
    )
    clock("2026-11-21T09:30:00Z")
    again = service.put(f"{PARTNERS}/r_1", body, format="json").json()
    assert (again["changed"], again["since"]) == (False, "2026-11-21T09:00:00Z")
    # The partner rate now applies on the referrer's page: spot 60%, futures has none.
    me = APIClient()
    me.credentials(HTTP_AUTHORIZATION=f"Bearer {user_jwt('r_1')}")
    programs = me.get("/api/v1/referrals/me").json()["programs"]
    assert [(p["program"], p["rate"], p["community_partner"]) for p in programs] == [
        ("futures", "0.1", False),
        ("spot", "0.6", True),
    ]

    clock("2026-11-22T00:00:00Z")
    ended = service.put(f"{PARTNERS}/r_1", {"partner": False}, format="json").json()
    assert ended == {"user_id": "r_1", "partner": False, "since": None, "note": "", "changed": True}
    clock("2026-11-22T00:00:01Z")
    assert (
        service.put(f"{PARTNERS}/r_1", {"partner": False}, format="json").json()["changed"] is False
    )
    # The flag keeps its row: a settlement of the 21st still sees the partner.
    assert list(CommunityPartner.objects.values_list("user_id", "since", "until")) == [
        (
            "r_1",
            dt.datetime(2026, 11, 21, 9, tzinfo=dt.UTC),
            dt.datetime(2026, 11, 22, tzinfo=dt.UTC),
        )
    ]
    assert _partner_events() == [
        ("referral.partner_flagged", "r_1", "service:crm", "Telegram community, OPS-77"),
        ("referral.partner_unflagged", "r_1", "service:crm", ""),
    ]


def test_a_bad_partner_request_names_the_field(world: None) -> None:
    service = _service()
    missing = service.put(f"{PARTNERS}/r_1", {}, format="json")
    assert missing.status_code == 400
    assert missing.json()["error"]["fields"] == {"partner": ["This field is required."]}
    blank = service.get(f"{PARTNERS}/%20")
    assert blank.json()["error"]["fields"] == {"user_id": ["must not be blank"]}
    long_note = {"partner": True, "note": "x" * 201}
    answer = service.put(f"{PARTNERS}/r_1", long_note, format="json").json()
    assert set(answer["error"]["fields"]) == {"note"}
    assert not CommunityPartner.objects.exists()


PARTNERS_CONFIG = """
community_partners:
  - user_id: r_1
    note: Telegram community, OPS-77
  - user_id: r_2
    partner: false
"""


def test_apply_config_sets_partners_idempotently(world: None, clock: Clock) -> None:
    lines = apply_config(yaml.safe_load(PARTNERS_CONFIG), by="config:ops")
    # No referral pool yet: the file is told so (docs/operations.md, funding accounts).
    no_pool = (
        "warning: referral commissions can pay in USDT from funding:referrals:USDT, which does"
        " not exist; its payouts will be refused until it is funded"
        " (funding_accounts: program 'referrals', asset USDT)"
    )
    assert lines == [
        "community partner r_1: flagged",
        "community partner r_2: not a partner",
        no_pool,
    ]
    clock("2026-11-21T10:00:00Z")
    assert apply_config(yaml.safe_load(PARTNERS_CONFIG), by="config:ops") == [
        "community partner r_1: already a partner",
        "community partner r_2: not a partner",
        no_pool,
    ]
    ending = PARTNERS_CONFIG.replace("  - user_id: r_1\n", "  - user_id: r_1\n    partner: false\n")
    assert apply_config(yaml.safe_load(ending), by="config:ops")[0] == (
        "community partner r_1: flag ended"
    )
    assert _partner_events() == [
        ("referral.partner_flagged", "r_1", "config:ops", "Telegram community, OPS-77"),
        ("referral.partner_unflagged", "r_1", "config:ops", "Telegram community, OPS-77"),
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("community_partners: {}", "community_partners: must be a list"),
        ("community_partners: [{note: x}]", r"community_partners\[0\].user_id: required"),
        (
            "community_partners: [{user_id: r_1}, {user_id: r_2, partner: 'yes'}]",
            r"community_partners\[1\].partner: true or false",
        ),
        ("community_partners: [{user_id: '  '}]", r"community_partners\[0\].user_id: must not"),
    ],
)
def test_a_bad_partners_section_names_the_field_and_changes_nothing(
    world: None, text: str, message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        apply_config(yaml.safe_load(text), by="config:ops")
    assert not CommunityPartner.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_two_writers_cannot_open_two_flags_for_one_user() -> None:
    """Two processes flagging one referrer at once open one flag: the service
    serialises them, and a writer that went around it meets the database."""
    import subprocess
    import sys
    from pathlib import Path

    from django.db import IntegrityError, connection

    script = (
        "import django, os; os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'config.settings');"
        " django.setup();"
        " from referrals.services import set_partner;"
        " print(set_partner('r_9', partner=True, by='ops').changed)"
    )
    env = {**os.environ, "DATABASE_URL": _test_database_url()}
    env.pop("FROZEN_NOW", None)
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", script],
            cwd=Path(__file__).resolve().parents[2],
            env=env,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    changed = sorted(w.communicate(timeout=60)[0].strip() for w in writers)
    assert changed == ["False", "True"]
    assert CommunityPartner.objects.filter(user_id="r_9", until__isnull=True).count() == 1
    with pytest.raises(IntegrityError), connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO referrals_communitypartner (user_id, since, note)"
            " VALUES ('r_9', now(), 'around the service')"
        )


def _test_database_url() -> str:
    from urllib.parse import urlparse, urlunparse

    from django.db import connection

    url = os.environ["DATABASE_URL"]
    return urlunparse(urlparse(url)._replace(path="/" + connection.settings_dict["NAME"]))
