"""The live schema, fuzzed: every operation, called with data generated from
its own description (schemathesis) by each credential kind, answers as the
schema says: never a server error, only declared statuses, bodies of the
declared shape and content type.

Bounded for CI (``SCHEMA_FUZZ_EXAMPLES`` examples per operation and
credential, default 60: about 3,400 requests in two minutes). A longer hunt
sets the variable higher. The world behind it has a running campaign the
user is registered for, a voucher, a closed order, Earn terms and a pending
payout; every other call names them in its path, so that calls reach past the
404 of a generated name. After the module, each operation must have been
answered a success with its own credential (or, where the world's state
refuses it, the rules' 409) and only 403 with the other.

Requests the schema admits (positive mode). Refusing what it does not admit
is the hostile suites' part (tests/access/test_hostile_*.py,
tests/ledger/test_hostile_*.py): the batch doors (events, grants) answer an
element the schema would refuse as a ``rejected`` result in a 200, by design
(one bad element never fails its batch), which a schema cannot state.
"""

from __future__ import annotations

import datetime as dt
import itertools
import os
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal

import pytest
import schemathesis
from django.core.wsgi import get_wsgi_application
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.core.result import Ok

from access.middleware import USER_ID_MAX, user_id_problem
from access.services import create_service_token
from campaigns import services as campaign_services
from campaigns.models import Campaign
from config import clock
from ledger.bookkeeping import UserCredit, open_funding_account, post_user_credits
from ledger.configuration import apply_config
from ledger.ingestion import ingest
from ledger.models import PayoutInstruction
from referrals.models import ReferralCode
from tests import events
from tests.ledger.conftest import user_jwt
from vouchers.models import Voucher

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


@dataclass(frozen=True)
class World:
    credentials: dict[str, str]  # "user", "service": an Authorization header each
    names: dict[str, str]  # a path parameter's name: what names the world's data


# (method and path, credential): how often each status answered it; checked at the end.
ANSWERED: dict[tuple[str, str], Counter[int]] = defaultdict(Counter)
# Reads that the world's own state refuses (409): the user has no spin left, and
# the campaign is not drawn yet. Answering the refusal is reaching the rules.
REFUSED_BY_THE_WORLD = {"POST /api/v1/campaigns/{slug}/spins", "GET /api/v1/campaigns/{slug}/draw"}


@pytest.fixture
def world(monkeypatch: pytest.MonkeyPatch) -> World:
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
    return World(
        credentials={"user": f"Bearer {user_jwt(USER, minutes=60)}", "service": f"Bearer {token}"},
        names={
            "slug": "fuzz",
            "user_id": USER,
            "order_id": "o_fuzz",
            "voucher_id": str(Voucher.objects.get(user_id=USER).pk),
            "payout_id": str(PayoutInstruction.objects.get(user_id=USER).pk),
            "code": str(ReferralCode.objects.get(user_id=USER).code),
        },
    )


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
    case: schemathesis.Case, world: World
) -> None:
    _call(case, world, "user")


@schema.parametrize()
@FUZZ
def test_every_operation_answers_a_service_token_as_its_schema_says(
    case: schemathesis.Case, world: World
) -> None:
    _call(case, world, "service")


_calls = itertools.count()


def _call(case: schemathesis.Case, world: World, credential: str) -> None:
    # Every other call names the world's data in its path, so that it reaches
    # past the 404 of a generated name to the answers behind it.
    if next(_calls) % 2 and case.path_parameters:
        for name in case.path_parameters:
            case.path_parameters[name] = world.names[name]
    response = case.call_and_validate(headers={"Authorization": world.credentials[credential]})
    operation = f"{case.operation.method.upper()} {case.operation.path}"
    ANSWERED[(operation, credential)][response.status_code] += 1


@pytest.fixture(autouse=True, scope="module")
def _every_operation_reached_its_answers() -> Iterator[None]:
    """After the module: each operation that ran was answered a success with
    its own credential (or, where the world's state refuses it, the rules'
    409), and a 403 with the other."""
    yield
    # Shown with -s: the size of the hunt.
    print(f"schema fuzz: {sum(sum(c.values()) for c in ANSWERED.values())} requests")
    scheme = {"userJwt": "user", "serviceToken": "service"}
    for result in schema.get_all_operations():
        assert isinstance(result, Ok), result
        operation = result.ok()
        name = f"{operation.method.upper()} {operation.path}"
        [[own]] = [list(entry) for entry in operation.definition.raw["security"]]
        for credential in ("user", "service"):
            if (name, credential) not in ANSWERED:
                continue  # not run (a subset of the module was selected)
            statuses = set(ANSWERED[(name, credential)])
            if credential != scheme[own]:
                assert statuses == {403}, f"{name} with a {credential} credential: {statuses}"
            elif name in REFUSED_BY_THE_WORLD:
                assert 409 in statuses, f"{name} never reached its rules: {statuses}"
            else:
                assert any(200 <= s < 300 for s in statuses), f"{name} never succeeded: {statuses}"
