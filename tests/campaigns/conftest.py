from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest

from campaigns import services
from campaigns.models import Campaign
from ledger.bookkeeping import fund_account, open_funding_account
from ledger.ingestion import ingest
from tests import events

UTC = dt.UTC
START = dt.datetime(2026, 11, 1, tzinfo=UTC)
END = dt.datetime(2026, 11, 15, tzinfo=UTC)


def instant(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Callable[[str], dt.datetime]:
    """Set the one clock (FROZEN_NOW) to an instant; returns it."""

    def set_to(text: str) -> dt.datetime:
        monkeypatch.setenv("FROZEN_NOW", text)
        return instant(text)

    set_to("2026-10-20T00:00:00Z")
    return set_to


def make_campaign(slug: str = "winter", funding: str = "100000", **overrides: Any) -> Campaign:
    fields: dict[str, Any] = {
        "title": "Winter loss coverage",
        "starts_at": START,
        "ends_at": END,
        "registration_opens_at": instant("2026-10-25T00:00:00Z"),
        "registration_closes_at": instant("2026-11-10T00:00:00Z"),
        "volume_target": Decimal("1000"),
        # One-entry tables make the draws exact; the weighted pick is tested on its own.
        "card_table": [{"percent": "8", "weight": 1}],
        "prize_table": [{"amount": "7", "weight": 1}],
        **overrides,
    }
    campaign = services.create_campaign(slug=slug, **fields)
    if Decimal(funding) > 0:
        account = open_funding_account(program=campaign.funding_program, asset="USDT")
        fund_account(
            account=account, amount=Decimal(funding), idempotency_key=f"{slug}-budget", by="finance"
        )
    return campaign


def known_users(*users: tuple[str, str]) -> None:
    """user.registered for each (user_id, account_type)."""
    ingest(
        [
            events.registered(
                user,
                account_type=kind,
                parent_user_id="u_main" if kind == "sub" else None,
                occurred_at="2026-01-01T00:00:00Z",
            )
            for user, kind in users
        ],
        source="test",
    )


@pytest.fixture
def campaign(db: None, clock: Callable[[str], dt.datetime]) -> Campaign:
    campaign = make_campaign()
    known_users(
        ("u_1", "main"),
        ("u_2", "main"),
        ("u_sub", "sub"),
        ("u_inst", "institutional"),
        ("u_mm", "market_maker"),
    )
    services.invite(campaign, ["u_1", "u_2", "u_sub", "u_inst", "u_mm"], source="test")
    return campaign
