"""CONTRACT.md as code: validation of the exchange's events.

Pure functions over plain values (no ORM), shared by every ingestion door so
that one rule decides everywhere. :func:`validate_event` either returns an
:class:`InboundEvent` or the list of :class:`FieldError` naming each offending
field by its path (``data.fee``, ``data.positions[2].side``).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from ledger.wire import MAX_EVENT_BYTES, FieldError, canonical_body, check, decode, shown

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
# The instants an event may claim (after its offset): outside them lie typing
# errors and values the database's timestamps and the jobs' days cannot hold.
EARLIEST_OCCURRED_AT = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)
LATEST_OCCURRED_AT = dt.datetime(2100, 1, 1, tzinfo=dt.UTC)

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
    # What the log stores and chains, computed before the append lock
    # (ledger.chain, set by ingestion.prepare): data and extra as canonical
    # JSON, and the event's content as the chain hashes it.
    data_json: str = ""
    extra_json: str = ""
    content: bytes = b""


class _Errors(list[FieldError]):
    def add(self, path: str, message: str) -> None:
        self.append(FieldError(path, message))


def parse_json(raw: str | bytes) -> tuple[Any, list[FieldError]]:
    """Decode one JSON text under the wire rules (ledger.wire); a problem is
    reported on the field ``(body)`` or ``(event)``."""
    decoded = decode(raw)
    if decoded.errors:
        return None, decoded.errors
    errors: list[FieldError] = []
    if decoded.needs_check:
        check(decoded.body, errors)
    return decoded.body, errors


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
        return dt.datetime.fromisoformat(text).astimezone(dt.UTC)
    except (ValueError, OverflowError):  # an offset can push a valid text past year 1 or 9999
        return None


def validate_event(
    body: Any, *, checked: bool = False, texts_clean: bool = False
) -> tuple[InboundEvent | None, list[FieldError]]:
    """Check one decoded event against CONTRACT.md and the wire bounds
    (``checked``: :func:`parse_json` has already applied the bounds;
    ``texts_clean``: its strings and keys are known clean, see
    ``wire.decode_document``)."""
    errors = _Errors()
    if not isinstance(body, dict):
        errors.add("(event)", "must be a JSON object")
        return None, errors
    if not checked:
        check(body, errors, texts=not texts_clean)
        if errors:  # as parse_json stops at the bounds, for every door alike
            return None, errors

    event_id = body.get("event_id")
    if not isinstance(event_id, str) or not _EVENT_ID.fullmatch(event_id):
        errors.add("event_id", "required: 1-128 printable ASCII characters")
    event_type = body.get("type")
    if not isinstance(event_type, str):
        errors.add("type", "required: a string" if event_type is None else "must be a string")
    elif event_type not in EVENT_TYPES:
        errors.add("type", f"unknown type {shown(event_type)}; one of {', '.join(EVENT_TYPES)}")
    occurred_at = _occurred_at(body.get("occurred_at"), errors)
    user_id = body.get("user_id")
    if not isinstance(user_id, str) or not 1 <= len(user_id) <= 64:
        errors.add("user_id", "required: a string of 1-64 characters")
    data = body.get("data")
    if not isinstance(data, dict):
        errors.add("data", "required: an object")
    elif isinstance(event_type, str) and event_type in _DATA_RULES:
        _DATA_RULES[event_type](data, errors)

    if errors:
        return None, errors
    assert isinstance(event_id, str) and isinstance(event_type, str)
    assert isinstance(user_id, str) and isinstance(data, dict) and occurred_at is not None
    canonical = canonical_body(body)
    if len(canonical) > MAX_EVENT_BYTES:
        errors.add("(event)", f"is {len(canonical):,} bytes as JSON; at most {MAX_EVENT_BYTES:,}")
        return None, errors
    extra = {key: value for key, value in body.items() if key not in ENVELOPE_FIELDS}
    return (
        InboundEvent(
            event_id=event_id,
            type=event_type,
            occurred_at=occurred_at,
            user_id=user_id,
            data=data,
            extra=extra,
            body_hash=hashlib.sha256(canonical).hexdigest(),
        ),
        [],
    )


def _occurred_at(value: Any, errors: _Errors) -> dt.datetime | None:
    occurred_at = parse_occurred_at(value)
    if occurred_at is None:
        what = "required" if value is None else "must be"
        errors.add("occurred_at", f"{what}: an RFC 3339 timestamp with an offset (Z or +08:00)")
    elif not EARLIEST_OCCURRED_AT <= occurred_at < LATEST_OCCURRED_AT:
        errors.add(
            "occurred_at",
            f"{shown(value)} is out of range: from {EARLIEST_OCCURRED_AT:%Y-%m-%d}"
            f" to before {LATEST_OCCURRED_AT:%Y-%m-%d} (UTC, after its offset)",
        )
        return None
    return occurred_at


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
            if isinstance(value, int | float | Decimal) and not isinstance(value, bool)
            else type(value).__name__
        )
        errors.add(where, f"must be a decimal number as a JSON string, not {kind}")
    elif _LOOSE_DECIMAL.fullmatch(value) and len(value.lstrip("-").split(".")[0]) > 20:
        errors.add(where, "is out of range")
    else:
        errors.add(where, f"{shown(value)} is not a plain decimal number")
    return None


def _choice(
    data: dict[str, Any], name: str, options: tuple[str, ...], errors: _Errors, path: str
) -> str | None:
    value = data.get(name)
    if value not in options:
        quoted = "missing" if value is None else shown(value)
        errors.add(f"{path}.{name}", f"{quoted}: must be one of {', '.join(options)}")
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
        errors.add(where, f"{shown(value)} is not well formed")
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
                    f"{shown(item)}: must be one of {', '.join(PROMO_FUNDING)}",
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
                f"{shown(measure)}: must be one of {', '.join(RISK_MEASURES)}",
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
