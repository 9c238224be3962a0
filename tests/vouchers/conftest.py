from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest

from ledger.bookkeeping import fund_account, open_funding_account
from ledger.ingestion import ingest
from tests import events
from vouchers import services
from vouchers.models import VoucherProgram

T0 = dt.datetime(2026, 11, 20, 10, tzinfo=dt.UTC)


def iso(moment: dt.datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Callable[[dt.datetime], dt.datetime]:
    def set_to(moment: dt.datetime) -> dt.datetime:
        monkeypatch.setenv("FROZEN_NOW", iso(moment))
        return moment

    set_to(T0)
    return set_to


def make_program(funding: str = "10000") -> VoucherProgram:
    program = services.save_program(slug="welcome", title="Welcome vouchers")
    services.save_template(program=program, code="fifty", face_value=Decimal(50), validity_days=7)
    services.save_template(program=program, code="thirty", face_value=Decimal(30), validity_days=7)
    services.save_template(
        program=program,
        code="big-only",
        face_value=Decimal(100),
        validity_days=7,
        min_closing_amount=Decimal(5000),
    )
    if Decimal(funding) > 0:
        account = open_funding_account(program=program.funding_program, asset="USDT")
        fund_account(
            account=account, amount=Decimal(funding), idempotency_key="welcome-budget", by="finance"
        )
    return program


@pytest.fixture
def program(db: None, clock: Callable[[dt.datetime], dt.datetime]) -> VoucherProgram:
    ingest(
        [
            events.registered(
                u,
                account_type=kind,
                parent_user_id="u_1" if kind == "sub" else None,
                occurred_at="2026-01-01T00:00:00Z",
            )
            for u, kind in [
                ("u_1", "main"),
                ("u_2", "main"),
                ("u_sub", "sub"),
                ("u_inst", "institutional"),
            ]
        ],
        source="test",
    )
    return make_program()


def grant(user: str, template: str, key: str) -> int:
    report = services.grant_vouchers(
        [services.Grant(key, user, "welcome", template)], source="test"
    )
    assert report.results[0]["status"] in ("granted", "duplicate")
    return int(report.results[0].get("voucher_id", 0))


def close(user: str, order_id: str, *, at: dt.datetime, loss: str, **kw: Any) -> None:
    ingest(
        [events.fill(user, order_id=order_id, realized_pnl=f"-{loss}", occurred_at=iso(at), **kw)],
        source="test",
    )
