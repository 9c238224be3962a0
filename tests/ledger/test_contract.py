"""Every rule of CONTRACT.md, as a rejection naming the field (pure, no database)."""

from __future__ import annotations

import copy
import datetime as dt
from collections.abc import Callable
from typing import Any

import pytest

from ledger.contract import parse_json, validate_event
from tests import events


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def mutate(event: dict[str, Any]) -> None:
        target = event
        *parents, last = path.split(".")
        for part in parents:
            target = target[part]
        target[last] = value

    return mutate


def _delete(path: str) -> Callable[[dict[str, Any]], None]:
    def mutate(event: dict[str, Any]) -> None:
        target = event
        *parents, last = path.split(".")
        for part in parents:
            target = target[part]
        del target[last]

    return mutate


FILL = events.fill(event_id="trd-1")
REGISTERED = events.registered(event_id="reg-1")
WALLET = events.wallet(event_id="wal-1")
POSITIONS = events.positions(
    event_id="pos-1",
    items=[
        {
            "symbol": "BTC_USDT",
            "market": "usdt_m",
            "side": "long",
            "quantity": "1",
            "avg_entry_price": "50000",
        }
    ],
)
HOLDING = events.holding(event_id="hld-1")
RISK = events.risk(event_id="rsk-1")

REJECTIONS = [
    # envelope
    (FILL, _delete("event_id"), "event_id"),
    (FILL, _set("event_id", ""), "event_id"),
    (FILL, _set("event_id", "x" * 129), "event_id"),
    (FILL, _set("event_id", "caf\u00e9-1"), "event_id"),
    (FILL, _set("event_id", "tab\there"), "event_id"),
    (FILL, _set("event_id", 12), "event_id"),
    (FILL, _delete("type"), "type"),
    (FILL, _set("type", "trade.cancelled"), "type"),
    (FILL, _delete("occurred_at"), "occurred_at"),
    (FILL, _set("occurred_at", "2026-11-20T10:15:02"), "occurred_at"),
    (FILL, _set("occurred_at", "2026-11-20"), "occurred_at"),
    (FILL, _set("occurred_at", "20/11/2026 10:15"), "occurred_at"),
    (FILL, _set("occurred_at", "2026-13-40T10:15:02Z"), "occurred_at"),
    (FILL, _set("occurred_at", 1763633702), "occurred_at"),
    (FILL, _delete("user_id"), "user_id"),
    (FILL, _set("user_id", ""), "user_id"),
    (FILL, _set("user_id", "u" * 65), "user_id"),
    (FILL, _set("user_id", 42), "user_id"),
    (FILL, _delete("data"), "data"),
    (FILL, _set("data", ["not", "an", "object"]), "data"),
    # user.registered
    (REGISTERED, _set("data.account_type", "vip"), "data.account_type"),
    (REGISTERED, _delete("data.account_type"), "data.account_type"),
    (REGISTERED, _set("data.account_type", "sub"), "data.parent_user_id"),
    (REGISTERED, _set("data.parent_user_id", "u_9"), "data.parent_user_id"),
    (REGISTERED, _set("data.referral_code", 123), "data.referral_code"),
    # trade.filled
    (FILL, _delete("data.order_id"), "data.order_id"),
    (FILL, _set("data.symbol", "btc-usdt"), "data.symbol"),
    (FILL, _set("data.market", "options"), "data.market"),
    (FILL, _set("data.action", "reduce"), "data.action"),
    (FILL, _set("data.side", "buy"), "data.side"),
    (FILL, _set("data.quantity", "0"), "data.quantity"),
    (FILL, _set("data.quantity", "-1"), "data.quantity"),
    (FILL, _set("data.price", "0"), "data.price"),
    (FILL, _set("data.notional", "-5"), "data.notional"),
    (FILL, _set("data.notional", 1000.5), "data.notional"),
    (FILL, _set("data.fee", 0.5), "data.fee"),
    (FILL, _set("data.fee", "1e-3"), "data.fee"),
    (FILL, _set("data.fee", "NaN"), "data.fee"),
    (FILL, _set("data.fee", "0.0000000000000000001"), "data.fee"),
    (FILL, _delete("data.fee_asset"), "data.fee_asset"),
    (FILL, _set("data.fee_asset", "usdt"), "data.fee_asset"),
    (FILL, _set("data.fee_rate", True), "data.fee_rate"),
    (FILL, _set("data.realized_pnl", "-1,5"), "data.realized_pnl"),
    (FILL, _set("data.origin", "telegram"), "data.origin"),
    (FILL, _set("data.promo_funding", None), "data.promo_funding"),
    (FILL, _set("data.promo_funding", ["cashback"]), "data.promo_funding[0]"),
    (
        events.fill(action="open", realized_pnl="0", event_id="o"),
        _set("data.realized_pnl", "5"),
        "data.realized_pnl",
    ),
    (
        events.fill(market="spot", action="open", event_id="s"),
        _set("data.action", "close"),
        "data.action",
    ),
    # futures_wallet.updated
    (WALLET, _set("data.asset", "BTC"), "data.asset"),
    (WALLET, _delete("data.bonus"), "data.bonus"),
    (WALLET, _set("data.available", 10), "data.available"),
    # futures_positions.updated
    (POSITIONS, _delete("data.positions"), "data.positions"),
    (
        POSITIONS,
        _set(
            "data.positions",
            [
                {
                    "symbol": "BTC_USDT",
                    "market": "spot",
                    "side": "long",
                    "quantity": "1",
                    "avg_entry_price": "1",
                }
            ],
        ),
        "data.positions[0].market",
    ),
    (
        POSITIONS,
        _set(
            "data.positions",
            [
                {
                    "symbol": "BTC_USDT",
                    "market": "usdt_m",
                    "side": "up",
                    "quantity": "1",
                    "avg_entry_price": "1",
                }
            ],
        ),
        "data.positions[0].side",
    ),
    (
        POSITIONS,
        _set(
            "data.positions",
            [
                {
                    "symbol": "BTC_USDT",
                    "market": "usdt_m",
                    "side": "long",
                    "quantity": "0",
                    "avg_entry_price": "1",
                }
            ],
        ),
        "data.positions[0].quantity",
    ),
    (POSITIONS, _set("data.positions", ["BTC_USDT"]), "data.positions[0]"),
    # holding.updated
    (HOLDING, _set("data.amount", "-1"), "data.amount"),
    (HOLDING, _delete("data.asset"), "data.asset"),
    # risk.flagged
    (RISK, _set("data.measures", []), "data.measures"),
    (RISK, _set("data.measures", ["ban_forever"]), "data.measures[0]"),
    (RISK, _delete("data.reason"), "data.reason"),
]


@pytest.mark.parametrize(("base", "mutate", "field"), REJECTIONS)
def test_rejection_names_the_field(base: dict[str, Any], mutate: Any, field: str) -> None:
    event = copy.deepcopy(base)
    mutate(event)
    valid, errors = validate_event(event)
    assert valid is None
    assert field in [error.field for error in errors], errors


@pytest.mark.parametrize("base", [FILL, REGISTERED, WALLET, POSITIONS, HOLDING, RISK])
def test_every_valid_example_is_accepted(base: dict[str, Any]) -> None:
    valid, errors = validate_event(copy.deepcopy(base))
    assert errors == []
    assert valid is not None and valid.event_id == base["event_id"]


def test_offset_is_converted_to_utc() -> None:
    event = copy.deepcopy(FILL)
    event["occurred_at"] = "2026-11-20T18:15:02.123+08:00"
    valid, _ = validate_event(event)
    assert valid is not None
    assert valid.occurred_at == dt.datetime(2026, 11, 20, 10, 15, 2, 123000, tzinfo=dt.UTC)


def test_unknown_data_fields_are_kept() -> None:
    event = copy.deepcopy(FILL)
    event["data"]["leverage"] = "20"
    event["trace"] = "abc"
    valid, errors = validate_event(event)
    assert errors == [] and valid is not None
    assert valid.data["leverage"] == "20"
    assert valid.extra == {"trace": "abc"}


def test_sub_account_with_parent_and_negative_fee_are_valid() -> None:
    sub = events.registered("u_2", account_type="sub", parent_user_id="u_1")
    maker = events.fill(fee="-0.2", fee_rate="-0.0002")
    assert validate_event(sub)[1] == []
    assert validate_event(maker)[1] == []


def test_bad_json_is_named() -> None:
    body, errors = parse_json('{"event_id": "x",')
    assert body is None
    assert errors[0].field == "(body)"


def test_body_hash_ignores_key_order_but_not_values() -> None:
    first = copy.deepcopy(FILL)
    reordered = dict(reversed(list(copy.deepcopy(FILL).items())))
    changed = copy.deepcopy(FILL)
    changed["data"]["fee"] = "0.6"
    hashes = [validate_event(body)[0].body_hash for body in (first, reordered, changed)]  # type: ignore[union-attr]
    assert hashes[0] == hashes[1]
    assert hashes[0] != hashes[2]
