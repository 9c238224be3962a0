"""The live schema, fuzzed: every operation, called with data generated from
its own description (schemathesis) by each credential kind, answers as the
schema says: never a server error, only declared statuses, bodies of the
declared shape and content type.

Bounded for CI (``SCHEMA_FUZZ_EXAMPLES`` examples per operation and
credential, default 60: about 3,000 requests in two minutes). A longer hunt
sets the variable higher. The world behind it has a running campaign the
user is registered for, a voucher, Earn terms and a pending payout, so that
generated requests reach past the 404s.

Requests the schema admits (positive mode). Refusing what it does not admit
is the hostile suites' part (tests/access/test_hostile_*.py,
tests/ledger/test_hostile_*.py): the batch doors (events, grants) answer an
element the schema would refuse as a ``rejected`` result in a 200, by design
(one bad element never fails its batch), which a schema cannot state.
"""

from __future__ import annotations

import datetime as dt
import os
from decimal import Decimal

import pytest
import schemathesis
from django.core.wsgi import get_wsgi_application
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode

from access.middleware import USER_ID_MAX, user_id_problem
from access.services import create_service_token
from campaigns import services as campaign_services
from campaigns.models import Campaign
from config import clock
from ledger.bookkeeping import UserCredit, open_funding_account, post_user_credits
from ledger.configuration import apply_config
from ledger.ingestion import ingest
from tests import events
from tests.ledger.conftest import user_jwt

pytestmark = [pytest.mark.heavy, pytest.mark.django_db(transaction=True)]

EXAMPLES = int(os.environ.get("SCHEMA_FUZZ_EXAMPLES", "60"))
NOW = dt.datetime(2026, 11, 5, 12, 0, tzinfo=dt.UTC)
USER = "u_fuzz"

# The schema as the service serves it, fetched through the WSGI application.
schema = schemathesis.openapi.from_wsgi("/api/schema/", get_wsgi_application())
schema.config.generation.update(
    modes=[GenerationMode.POSITIVE],
    allow_extra_parameters=False,
    # No text of a body holds NUL (access.parsers): a rule for every string at once.
    allow_x00=False,
)
# A user id as the contract and access.middleware admit it (format "user-id").
schemathesis.openapi.format(
    "user-id",
    st.text(min_size=1, max_size=USER_ID_MAX).filter(lambda text: user_id_problem(text) is None),
)


@pytest.fixture
def world(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Credentials of both kinds, and data for them to find."""
    monkeypatch.setattr(clock, "now", lambda: NOW)
    apply_config(
        {
            "funding_accounts": [
                {
                    "program": "campaign:fuzz",
                    "asset": "USDT",
                    "top_ups": [{"key": "fuzz-campaign", "amount": "100000"}],
                },
                {
                    "program": "vouchers:fuzz",
                    "asset": "USDT",
                    "top_ups": [{"key": "fuzz-vouchers", "amount": "1000"}],
                },
                {
                    "program": "earn",
                    "asset": "USDT",
                    "top_ups": [{"key": "fuzz-earn", "amount": "1000"}],
                },
            ],
            "earn_terms": [
                {"effective_from": "2026-11-01", "boosted_apr": "0.15", "base_apr": "0.03"}
            ],
            "campaigns": [
                {
                    "slug": "fuzz",
                    "title": "Fuzz",
                    "starts_at": "2026-11-01T00:00:00Z",
                    "ends_at": "2026-11-20T00:00:00Z",
                    "volume_target": "1000",
                    "invitations": [USER],
                }
            ],
            "voucher_programs": [
                {
                    "slug": "fuzz",
                    "title": "Fuzz vouchers",
                    "templates": [{"code": "ten", "face_value": "10", "validity_days": 7}],
                    "grants": [{"key": "fuzz-1", "user_id": USER, "template": "ten"}],
                }
            ],
        },
        by="test",
    )
    ingest(
        [
            events.registered(USER, occurred_at="2026-10-01T00:00:00Z"),
            events.fill(USER, order_id="o_fuzz", occurred_at="2026-11-05T10:00:00Z"),
        ],
        source="test",
    )
    campaign_services.register(Campaign.objects.get(slug="fuzz"), USER)
    # A credit: a payout instruction for the wallet, a line of the user's ledger.
    post_user_credits(
        [
            UserCredit(
                idempotency_key="fuzz-credit",
                kind="earn.interest",
                funding_account=open_funding_account(program="earn", asset="USDT"),
                user_id=USER,
                amount=Decimal("1.5"),
                user_kind="spot",
                cause={"day": "2026-11-04"},
            )
        ]
    )
    _, token = create_service_token(name="fuzz")
    return {"user": f"Bearer {user_jwt(USER, minutes=60)}", "service": f"Bearer {token}"}


FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    # The world fixture is built once per operation, not per example: examples
    # share it, as requests against a live service share its data.
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)


@schema.parametrize()
@FUZZ
def test_every_operation_answers_a_user_jwt_as_its_schema_says(
    case: schemathesis.Case, world: dict[str, str]
) -> None:
    _call(case, world["user"])


@schema.parametrize()
@FUZZ
def test_every_operation_answers_a_service_token_as_its_schema_says(
    case: schemathesis.Case, world: dict[str, str]
) -> None:
    _call(case, world["service"])


def _call(case: schemathesis.Case, credential: str) -> None:
    case.call_and_validate(headers={"Authorization": credential})
