"""CONTRACT.md as code: validation of the exchange's events.

Pure functions over plain values (no ORM), shared by every ingestion door so
that one rule decides everywhere. :func:`validate_event` either returns an
:class:`InboundEvent` or the list of :class:`FieldError` naming each offending
field by its path (``data.fee``, ``data.positions[2].side``).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

EVENT_TYPES = (
    "user.registered",
    "trade.filled",
    "futures_wallet.updated",
    "futures_positions.updated",
    "holding.updated",
    "risk.flagged",
)
ACCOUNT_TYPES = ("main", "sub", "institutional", "market_maker")
MARKETS = ("usdt_m", "usdc_m", "coin_m", "spot", "margin")
FUTURES_MARKETS = ("usdt_m", "usdc_m", "coin_m")
ACTIONS = ("open", "close")
SIDES = ("long", "short")
ORIGINS = ("manual", "api", "copy", "grid", "bot")
PROMO_FUNDING = ("bonus", "fee_voucher", "futures_voucher")
WALLET_ASSETS = ("USDT", "USDC")
RISK_MEASURES = ("invalidate_referral", "disqualify_campaigns", "void_vouchers")
ENVELOPE_FIELDS = ("event_id", "type", "occurred_at", "user_id", "data")

_EVENT_ID = re.compile(r"[\x20-\x7e]{1,128}")
# At most 18 decimal places (the ledger's NUMERIC(38, 18) keeps every digit) and
# at most 20 integer digits (|x| < 1e20, far beyond any real amount).
_DECIMAL = re.compile(r"-?(0|[1-9][0-9]{0,19})(\.[0-9]{1,18})?")
_LOOSE_DECIMAL = re.compile(r"-?[0-9]+(\.[0-9]+)?")
_ZERO = re.compile(r"-?0(\.0+)?")
_ASSET = re.compile(r"[A-Z0-9]{2,16}")
_SYMBOL = re.compile(r"[A-Z0-9]{1,30}_[A-Z0-9]{1,30}")
_RFC3339 = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,9})?([Zz]|[+-][0-9]{2}:[0-9]{2})"
)


@dataclass(frozen=True, slots=True)
class FieldError:
    field: str
    message: str

    def as_dict(self) -> dict[str, str]:
        return {"field": self.field, "message": self.message}


@dataclass(slots=True)
class InboundEvent:
    """A valid event, normalised: ``occurred_at`` in UTC, ``data`` as received."""

    event_id: str
    type: str
    occurred_at: dt.datetime
    user_id: str
    data: dict[str, Any]
    extra: dict[str, Any] = field(default_factory=dict)
    body_hash: str = ""


class _Errors(list[FieldError]):
    def add(self, path: str, message: str) -> None:
        self.append(FieldError(path, message))


def canonical_body(body: dict[str, Any]) -> bytes:
    """The body as canonical JSON (sorted keys, no spaces, UTF-8): the same fact
    always hashes the same, whichever door it came through and however it was
    formatted."""
    try:
        return orjson.dumps(body, option=orjson.OPT_SORT_KEYS)
    except (TypeError, orjson.JSONEncodeError):
        # Integers beyond 64 bits in an unknown extra field: the slow encoder copes.
        return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def body_hash(body: dict[str, Any]) -> str:
    return hashlib.sha256(canonical_body(body)).hexdigest()


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def parse_json(raw: str | bytes) -> tuple[Any, list[FieldError]]:
    """Parse one JSON document; a syntax error is reported on the field ``(body)``."""
    try:
        return orjson.loads(raw), []
    except orjson.JSONDecodeError:
        pass
    # The strict fast parser refuses integers beyond 64 bits, which are valid JSON;
    # the standard parser decides, and words the error for ops.
    try:
        return json.loads(raw, parse_constant=_refuse_constant), []
    except (ValueError, UnicodeDecodeError) as exc:
        return None, [FieldError("(body)", f"not valid JSON: {exc}")]


def parse_occurred_at(value: Any) -> dt.datetime | None:
    """RFC 3339 with an explicit offset, converted to UTC; None if invalid."""
    if not isinstance(value, str) or not _RFC3339.fullmatch(value):
        return None
    text = value.replace("z", "Z").replace("t", "T")
    # Python keeps microseconds: nanosecond digits beyond six are cut, not rounded.
    match = re.search(r"\.([0-9]+)", text)
    if match and len(match.group(1)) > 6:
        text = text[: match.start(1) + 6] + text[match.end(1) :]
    try:
        parsed = dt.datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed.astimezone(dt.UTC)


def validate_event(body: Any) -> tuple[InboundEvent | None, list[FieldError]]:
    """Check one decoded event against CONTRACT.md."""
    errors = _Errors()
    if not isinstance(body, dict):
        errors.add("(event)", "must be a JSON object")
        return None, errors

    event_id = body.get("event_id")
    if not isinstance(event_id, str) or not _EVENT_ID.fullmatch(event_id):
        errors.add("event_id", "required: 1-128 printable ASCII characters")
    event_type = body.get("type")
    if event_type not in EVENT_TYPES:
        if event_type is None:
            errors.add("type", "required")
        else:
            errors.add("type", f"unknown type {event_type!r}; one of {', '.join(EVENT_TYPES)}")
    occurred_at = parse_occurred_at(body.get("occurred_at"))
    if occurred_at is None:
        shown = "required" if body.get("occurred_at") is None else "must be"
        errors.add("occurred_at", f"{shown}: an RFC 3339 timestamp with an offset (Z or +08:00)")
    user_id = body.get("user_id")
    if not isinstance(user_id, str) or not 1 <= len(user_id) <= 64:
        errors.add("user_id", "required: a string of 1-64 characters")
    data = body.get("data")
    if not isinstance(data, dict):
        errors.add("data", "required: an object")
    elif event_type in _DATA_RULES:
        _DATA_RULES[event_type](data, errors)

    if errors:
        return None, errors
    assert isinstance(event_id, str) and isinstance(event_type, str)
    assert isinstance(user_id, str) and isinstance(data, dict) and occurred_at is not None
    extra = {key: value for key, value in body.items() if key not in ENVELOPE_FIELDS}
    return (
        InboundEvent(
            event_id=event_id,
            type=event_type,
            occurred_at=occurred_at,
            user_id=user_id,
            data=data,
            extra=extra,
            body_hash=body_hash(body),
        ),
        [],
    )


# --- field checks ---------------------------------------------------------------


def _decimal(
    data: dict[str, Any],
    name: str,
    errors: _Errors,
    path: str,
    *,
    sign: str = "any",
) -> str | None:
    """A decimal amount written as a JSON string; ``sign`` is ``any``,
    ``positive`` (> 0) or ``non_negative`` (>= 0). Returns the text as received.

    Checked on the text alone (no Decimal is built): this runs six times for
    every fill through every door.
    """
    value = data.get(name)
    if type(value) is str and _DECIMAL.fullmatch(value):
        if sign == "positive" and (value[0] == "-" or _ZERO.fullmatch(value)):
            errors.add(f"{path}.{name}", "must be > 0")
        elif sign == "non_negative" and value[0] == "-" and not _ZERO.fullmatch(value):
            errors.add(f"{path}.{name}", "must be >= 0")
        return value
    where = f"{path}.{name}"
    if value is None:
        errors.add(where, "required: a decimal number as a JSON string")
    elif not isinstance(value, str):
        kind = (
            "a JSON number"
            if isinstance(value, int | float) and not isinstance(value, bool)
            else type(value).__name__
        )
        errors.add(where, f"must be a decimal number as a JSON string, not {kind}")
    elif _LOOSE_DECIMAL.fullmatch(value) and len(value.lstrip("-").split(".")[0]) > 20:
        errors.add(where, "is out of range")
    else:
        errors.add(where, f"{value!r} is not a plain decimal number")
    return None


def _choice(
    data: dict[str, Any], name: str, options: tuple[str, ...], errors: _Errors, path: str
) -> str | None:
    value = data.get(name)
    if value not in options:
        shown = "missing" if value is None else repr(value)
        errors.add(f"{path}.{name}", f"{shown}: must be one of {', '.join(options)}")
        return None
    return str(value)


def _string(
    data: dict[str, Any],
    name: str,
    errors: _Errors,
    path: str,
    *,
    max_length: int = 128,
    pattern: re.Pattern[str] | None = None,
    nullable: bool = False,
) -> str | None:
    value = data.get(name)
    if (
        type(value) is str
        and 1 <= len(value) <= max_length
        and (pattern is None or pattern.fullmatch(value))
    ):
        return value
    where = f"{path}.{name}"
    if value is None:
        if not nullable:
            errors.add(where, "required")
        return None
    if not isinstance(value, str) or not 1 <= len(value) <= max_length:
        errors.add(where, f"must be a string of 1-{max_length} characters")
        return None
    if pattern is not None and not pattern.fullmatch(value):
        errors.add(where, f"{value!r} is not well formed")
        return None
    return value


def _user_registered(data: dict[str, Any], errors: _Errors) -> None:
    account_type = _choice(data, "account_type", ACCOUNT_TYPES, errors, "data")
    parent = _string(data, "parent_user_id", errors, "data", max_length=64, nullable=True)
    if account_type == "sub" and parent is None and "data.parent_user_id" not in _paths(errors):
        errors.add("data.parent_user_id", "required for a sub account: the main account's user id")
    if account_type not in (None, "sub") and data.get("parent_user_id") is not None:
        errors.add("data.parent_user_id", f"must be null or absent for a {account_type} account")
    _string(data, "referral_code", errors, "data", max_length=64, nullable=True)


def _trade_filled(data: dict[str, Any], errors: _Errors) -> None:
    _string(data, "order_id", errors, "data")
    _string(data, "symbol", errors, "data", max_length=64, pattern=_SYMBOL)
    market = _choice(data, "market", MARKETS, errors, "data")
    action = _choice(data, "action", ACTIONS, errors, "data")
    _choice(data, "side", SIDES, errors, "data")
    for name in ("quantity", "price", "notional"):
        _decimal(data, name, errors, "data", sign="positive")
    _decimal(data, "fee", errors, "data")
    _string(data, "fee_asset", errors, "data", max_length=16, pattern=_ASSET)
    _decimal(data, "fee_rate", errors, "data")
    pnl = _decimal(data, "realized_pnl", errors, "data")
    _choice(data, "origin", ORIGINS, errors, "data")
    if market in ("spot", "margin") and action == "close":
        errors.add("data.action", f"must be 'open' for {market} fills")
    if action == "open" and pnl is not None and not _ZERO.fullmatch(pnl):
        errors.add("data.realized_pnl", 'must be "0" on an opening fill')
    promo = data.get("promo_funding")
    if not isinstance(promo, list):
        errors.add("data.promo_funding", "required: a list (empty if none)")
    else:
        for index, item in enumerate(promo):
            if item not in PROMO_FUNDING:
                errors.add(
                    f"data.promo_funding[{index}]",
                    f"{item!r}: must be one of {', '.join(PROMO_FUNDING)}",
                )


def _futures_wallet_updated(data: dict[str, Any], errors: _Errors) -> None:
    _choice(data, "asset", WALLET_ASSETS, errors, "data")
    for name in ("available", "locked_in_orders", "margin_used", "bonus"):
        _decimal(data, name, errors, "data")


def _futures_positions_updated(data: dict[str, Any], errors: _Errors) -> None:
    positions = data.get("positions")
    if not isinstance(positions, list):
        errors.add("data.positions", "required: a list (empty: no open positions)")
        return
    for index, position in enumerate(positions):
        path = f"data.positions[{index}]"
        if not isinstance(position, dict):
            errors.add(path, "must be an object")
            continue
        _string(position, "symbol", errors, path, max_length=64, pattern=_SYMBOL)
        _choice(position, "market", FUTURES_MARKETS, errors, path)
        _choice(position, "side", SIDES, errors, path)
        _decimal(position, "quantity", errors, path, sign="positive")
        _decimal(position, "avg_entry_price", errors, path, sign="positive")


def _holding_updated(data: dict[str, Any], errors: _Errors) -> None:
    _string(data, "asset", errors, "data", max_length=16, pattern=_ASSET)
    _decimal(data, "amount", errors, "data", sign="non_negative")


def _risk_flagged(data: dict[str, Any], errors: _Errors) -> None:
    reason = data.get("reason")
    if not isinstance(reason, str):
        errors.add("data.reason", "required: free text")
    measures = data.get("measures")
    if not isinstance(measures, list) or not measures:
        errors.add("data.measures", f"required: a non-empty list of {', '.join(RISK_MEASURES)}")
        return
    for index, measure in enumerate(measures):
        if measure not in RISK_MEASURES:
            errors.add(
                f"data.measures[{index}]",
                f"{measure!r}: must be one of {', '.join(RISK_MEASURES)}",
            )


def _paths(errors: list[FieldError]) -> set[str]:
    return {error.field for error in errors}


_DATA_RULES: dict[str, Callable[[dict[str, Any], _Errors], None]] = {
    "user.registered": _user_registered,
    "trade.filled": _trade_filled,
    "futures_wallet.updated": _futures_wallet_updated,
    "futures_positions.updated": _futures_positions_updated,
    "holding.updated": _holding_updated,
    "risk.flagged": _risk_flagged,
}
