"""Hostile events: a catalogue of named malformed or extreme inputs, each with
the outcome every ingestion door must give it, and hypothesis strategies that
generate more of them mixed with valid events.

An input is what a door receives for one event: a JSON text (a line of a JSON
Lines file, the ``event`` field of a stream entry, an element of a REST
batch). Texts are built here byte by byte, so that they can hold what
Python's encoder never writes: number tokens as written (``1e999999``, 30-digit
integers, ``NaN``), lone surrogate escapes, duplicate keys, invalid UTF-8.

The bounds the outcomes follow are those of the wire format (docs/api.md):
no NUL and no lone surrogate in any string or key; at most 16 levels of arrays
and objects inside the event; at most 65,536 bytes of JSON per event;
``occurred_at`` in [2000-01-01, 2100-01-01) UTC; a JSON number finite, exact,
with at most 100 significant digits and a magnitude within 1e-100 .. 1e100.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import pytest
import redis
from hypothesis import strategies as st

from ledger.models import QuarantinedInput
from ledger.stream import EventStreamConsumer
from tests import events

ACCEPTED = "accepted"
DUPLICATE = "duplicate"


@dataclass(frozen=True)
class Rejected:
    """Rejected into quarantine naming exactly these fields."""

    fields: frozenset[str]
    reason: str = "invalid"


Outcome = str | Rejected


def rejected(*fields: str, reason: str = "invalid") -> Rejected:
    return Rejected(frozenset(fields), reason)


class Raw(str):
    """JSON text written into a document as it is (a number token such as
    ``1e999999``, ``NaN``, a string with its escapes chosen by hand)."""


class RawBytes(bytes):
    """Bytes written into a document as they are (invalid UTF-8, a raw NUL)."""


def dumps(value: Any, *, ascii_only: bool = True) -> bytes:
    """Compact JSON text (no spaces, keys in the given order) of ``value``,
    where :class:`Raw` and :class:`RawBytes` parts are written as they are and
    a ``list`` of pairs under :class:`Pairs` writes duplicate keys."""
    if isinstance(value, RawBytes):
        return bytes(value)
    if isinstance(value, Raw):
        return str(value).encode()
    if isinstance(value, Pairs):
        return b"{" + b",".join(_pair(k, v, ascii_only) for k, v in value.items) + b"}"
    if isinstance(value, dict):
        return b"{" + b",".join(_pair(k, v, ascii_only) for k, v in value.items()) + b"}"
    if isinstance(value, list | tuple):
        return b"[" + b",".join(dumps(item, ascii_only=ascii_only) for item in value) + b"]"
    if isinstance(value, str):
        # Escaped, a lone surrogate becomes the escape \udXXX: valid JSON syntax.
        return json.dumps(value, ensure_ascii=ascii_only).encode("utf-8")
    if value is None or isinstance(value, bool | int):
        return json.dumps(value).encode()
    if isinstance(value, Decimal):
        return str(value).encode()
    raise TypeError(f"cannot write {type(value).__name__}")


def _pair(key: str, value: Any, ascii_only: bool) -> bytes:
    return dumps(key, ascii_only=ascii_only) + b":" + dumps(value, ascii_only=ascii_only)


@dataclass(frozen=True)
class Pairs:
    """An object written with its keys as listed, repeated keys included."""

    items: tuple[tuple[str, Any], ...]


def decoded(line: bytes) -> Any:
    """What a line means: numbers as exact decimals, the last of duplicate keys."""
    return json.loads(line, parse_float=Decimal, parse_int=Decimal)


def is_json(line: bytes) -> bool:
    """True if ``line`` is one JSON text by RFC 8259 (UTF-8, no NaN or Infinity)."""

    def refuse(name: str) -> Any:
        raise ValueError(name)

    try:
        json.loads(line.decode("utf-8"), parse_constant=refuse)
    except RecursionError:
        return True  # deeper than this parser goes: the catalogue's deep texts are well formed
    except ValueError:
        return False
    return True


def received(entry: QuarantinedInput) -> bytes:
    """The exact bytes a quarantined input was received as."""
    assert entry.received is not None
    return bytes(entry.received)


def keep_test_connection(monkeypatch: pytest.MonkeyPatch) -> None:
    """The stream consumer drops a connection that is not in autocommit before
    each batch (a long-running process's hygiene); inside a test's
    transaction the connection must stay."""
    monkeypatch.setattr("ledger.stream.close_old_connections", lambda: None)


def consume_stream(client: redis.Redis, stream: str, lines: list[bytes], *, batch: int) -> Any:
    """Publish ``lines`` as entries of ``stream`` (field ``event``) and consume
    them with one consumer until none is left; nothing stays pending."""
    pipe = client.pipeline(transaction=False)
    for line in lines:
        pipe.xadd(stream, {"event": line})
    pipe.execute()
    consumer = EventStreamConsumer(
        client=client, stream=stream, group="g", name="c1", batch_size=batch, block_ms=20
    )
    stats = consumer.run(idle_exit=True)
    assert client.xpending(stream, "g")["pending"] == 0
    return stats


# --- the catalogue ----------------------------------------------------------------


@dataclass(frozen=True)
class Kind:
    """One hostile input (or a few that belong together), with the outcome of
    each of its lines, to be sent between two valid events."""

    name: str
    lines: tuple[bytes, ...]
    outcomes: tuple[Outcome, ...]
    # order_id -> (closing_notional, realized_pnl) the closed order must show.
    closed_orders: dict[str, tuple[Decimal, Decimal]] = field(default_factory=dict)
    # In a REST batch, the body cannot even be cut into its events: the whole
    # request is answered 400 and nothing of it is kept. (A body cut into its
    # events gives each of them its own outcome, as the lines of a file.)
    rest_refuses_body: bool = False


NEIGHBOUR_USER = "u_neighbour"
BEFORE: dict[str, Any] = events.fill(
    NEIGHBOUR_USER, order_id="nb-before", realized_pnl="-5", event_id="nb-before"
)
AFTER: dict[str, Any] = events.holding(NEIGHBOUR_USER, amount="42", event_id="nb-after")
BEFORE_LINE = dumps(BEFORE)
AFTER_LINE = dumps(AFTER)

HOSTILE_USER = "u_hostile"
_OCCURRED = "2026-11-20T10:00:00Z"


def _fill(event_id: str, **data: Any) -> dict[str, Any]:
    body = events.fill(HOSTILE_USER, order_id=f"o-{event_id}", event_id=event_id)
    body["data"].update(data)
    return body


def _with(base_id: str, **envelope: Any) -> dict[str, Any]:
    """A valid fill (id ``base_id``) with envelope fields replaced."""
    body = _fill(base_id)
    body.update(envelope)
    return body


def _nested(depth: int, leaf: Any = 1, *, key: str | None = None) -> Any:
    """``depth`` arrays (or objects under ``key``) nested, holding ``leaf``."""
    value = leaf
    for _ in range(depth):
        value = [value] if key is None else {key: value}
    return value


def _deep_text(depth: int) -> Raw:
    """``depth`` nested arrays as text (no recursion to build or write them)."""
    return Raw("[" * depth + "1" + "]" * depth)


def _padded(event_id: str, size: int, *, pad_char: str = "x") -> bytes:
    """A valid event whose compact JSON is exactly ``size`` bytes (UTF-8)."""
    body = _fill(event_id)
    body["pad"] = ""
    base = len(dumps(body, ascii_only=False))
    width = len(pad_char.encode())
    count, rest = divmod(size - base, width)
    body["pad"] = pad_char * count + "x" * rest
    line = dumps(body, ascii_only=False)
    assert len(line) == size, (len(line), size)
    return line


def _line(body: Any, *, ascii_only: bool = True) -> bytes:
    return dumps(body, ascii_only=ascii_only)


def _kind(
    name: str,
    body: Any,
    outcome: Outcome,
    *,
    ascii_only: bool = True,
) -> Kind:
    return Kind(name, (_line(body, ascii_only=ascii_only),), (outcome,))


def _catalogue() -> list[Kind]:
    value: Any  # each case's value, of any JSON type
    kinds: list[Kind] = []
    add = kinds.append

    # --- NUL (U+0000) and lone surrogates, field by field -------------------------
    for mark, char in (("nul", "\x00"), ("surrogate", "\ud800"), ("low-surrogate", "\udfff")):
        eid = f"h-{mark}"
        add(
            _kind(
                f"{mark} in event_id",
                _with(f"{eid}-x", event_id=f"{eid}{char}"),
                rejected("event_id"),
            )
        )
        add(
            _kind(
                f"{mark} in type",
                _with(f"{eid}-type", type=f"trade.filled{char}"),
                rejected("type"),
            )
        )
        add(
            _kind(
                f"{mark} in occurred_at",
                _with(f"{eid}-occurred-at", occurred_at=f"2026-11-20T10:00:00Z{char}"),
                rejected("occurred_at"),
            )
        )
        add(
            _kind(
                f"{mark} in user_id",
                _with(f"{eid}-user-id", user_id=f"u{char}1"),
                rejected("user_id"),
            )
        )
        add(
            _kind(
                f"{mark} in data.order_id",
                _fill(f"{eid}-order-id", order_id=f"o{char}1"),
                rejected("data.order_id"),
            )
        )
        add(
            _kind(
                f"{mark} in data.symbol",
                _fill(f"{eid}-symbol", symbol=f"BTC_USDT{char}"),
                rejected("data.symbol"),
            )
        )
        add(
            _kind(
                f"{mark} in data.market",
                _fill(f"{eid}-market", market=f"usdt_m{char}"),
                rejected("data.market"),
            )
        )
        add(
            _kind(
                f"{mark} in data.notional",
                _fill(f"{eid}-notional", notional=f"1000{char}"),
                rejected("data.notional"),
            )
        )
        add(
            _kind(
                f"{mark} in data.promo_funding item",
                _fill(f"{eid}-promo", promo_funding=["bonus", f"bonus{char}"]),
                rejected("data.promo_funding[1]"),
            )
        )
        add(
            _kind(
                f"{mark} in an unknown data field",
                _fill(f"{eid}-data-value", note=f"a{char}b"),
                rejected("data.note"),
            )
        )
        escaped = f"\\u{ord(char):04x}"
        add(
            _kind(
                f"{mark} in an unknown data key",
                _fill(f"{eid}-data-key", **{f"no{char}te": "x"}),
                rejected(f'data."no{escaped}te"'),
            )
        )
        add(
            _kind(
                f"{mark} in an extra field value",
                {**_fill(f"{eid}-extra-value"), "note": f"a{char}"},
                rejected("note"),
            )
        )
        add(
            _kind(
                f"{mark} in an extra field key",
                {**_fill(f"{eid}-extra-key"), f"no{char}te": "x"},
                rejected(f'"no{escaped}te"'),
            )
        )
        add(
            _kind(
                f"{mark} deep in an extra field",
                {**_fill(f"{eid}-extra-deep"), "a": [0, 1, {"b": f"{char}"}]},
                rejected("a[2].b"),
            )
        )
        add(
            _kind(
                f"{mark} in a key deep in an extra field",
                {**_fill(f"{eid}-extra-deep-key"), "a": [{f"k{char}": 1}]},
                rejected(f'a[0]."k{escaped}"'),
            )
        )
        add(
            _kind(
                f"{mark} in a position symbol",
                events.positions(
                    HOSTILE_USER,
                    event_id=f"{eid}-position",
                    items=[
                        {
                            "symbol": f"BTC{char}_USDT",
                            "market": "usdt_m",
                            "side": "long",
                            "quantity": "1",
                            "avg_entry_price": "100",
                        }
                    ],
                ),
                rejected("data.positions[0].symbol"),
            )
        )
        add(
            _kind(
                f"{mark} in a risk reason",
                events.risk(HOSTILE_USER, reason=f"abuse{char}", event_id=f"{eid}-reason"),
                rejected("data.reason"),
            )
        )
        add(
            _kind(
                f"{mark} in a referral code",
                events.registered(
                    "u_hostile_reg", referral_code=f"R{char}", event_id=f"{eid}-referral"
                ),
                rejected("data.referral_code"),
            )
        )
    # A surrogate pair is one character (U+1F600): valid text.
    add(
        _kind(
            "surrogate pair escape in an extra field",
            {**_fill("h-surrogate-pair"), "note": Raw('"\\ud83d\\ude00"')},
            ACCEPTED,
        )
    )
    add(
        _kind(
            "reversed surrogate pair in an extra field",
            {**_fill("h-surrogate-reversed"), "note": Raw('"\\ude00\\ud83d"')},
            rejected("note"),
        )
    )
    add(
        _kind(
            "non-ASCII text and keys kept",
            {**_fill("h-unicode", note="é \u2028 \ufeff \u0661"), "clé": ["数", "😀"]},
            ACCEPTED,
            ascii_only=False,
        )
    )

    # --- type -----------------------------------------------------------------------
    for name, value in (
        ("list", ["trade.filled"]),
        ("object", {"name": "trade.filled"}),
        ("number", 1),
        ("null", None),
        ("true", True),
        ("false", False),
        ("empty string", ""),
        ("upper case", "TRADE.FILLED"),
        ("trailing space", "trade.filled "),
        ("unknown", "trade.cancelled"),
    ):
        slug = name.replace(" ", "-")
        add(_kind(f"type as {name}", _with(f"h-type-{slug}", type=value), rejected("type")))
    missing_type = _fill("h-type-missing")
    del missing_type["type"]
    add(_kind("type missing", missing_type, rejected("type")))

    # --- event_id and user_id: types and lengths ----------------------------------------
    for name, value in (
        ("number", 123),
        ("list", ["h-id"]),
        ("object", {"id": "h-id"}),
        ("true", True),
        ("null", None),
        ("empty", ""),
        ("129 characters", "h" * 129),
        ("non-ASCII", "h-é"),
        ("tab", "h-\t"),
        ("DEL", "h-\x7f"),
        ("line feed", "h-\n"),
    ):
        add(_kind(f"event_id {name}", _with("unused", event_id=value), rejected("event_id")))
    add(
        _kind(
            "event_id of 128 characters", {**_fill("h" * 128), "data": _fill("x")["data"]}, ACCEPTED
        )
    )
    add(_kind("event_id with spaces and symbols", _fill("h id ~!@#$%^&*()"), ACCEPTED))
    for name, value in (
        ("number", 1),
        ("list", ["u"]),
        ("object", {"u": 1}),
        ("false", False),
        ("null", None),
        ("empty", ""),
        ("65 characters", "u" * 65),
    ):
        slug = name.replace(" ", "-")
        add(_kind(f"user_id {name}", _with(f"h-user-{slug}", user_id=value), rejected("user_id")))
    add(_kind("user_id of 64 characters", _with("h-user-64", user_id="u" * 64), ACCEPTED))
    add(
        _kind(
            "user_id of 64 astral characters",
            _with("h-user-astral", user_id="😀" * 64),
            ACCEPTED,
            ascii_only=False,
        )
    )
    for name, value in (("list", [1]), ("string", "x"), ("null", None), ("number", 1)):
        add(_kind(f"data as {name}", _with(f"h-data-{name}", data=value), rejected("data")))
    no_data = _fill("h-data-missing")
    del no_data["data"]
    add(_kind("data missing", no_data, rejected("data")))

    # --- nesting --------------------------------------------------------------------------
    add(_kind("extra field 16 levels deep", {**_fill("h-depth-16"), "x": _nested(16)}, ACCEPTED))
    add(
        _kind(
            "extra field 17 levels deep",
            {**_fill("h-depth-17"), "x": _nested(17)},
            rejected("(event)"),
        )
    )
    add(
        _kind(
            "extra objects 17 levels deep",
            {**_fill("h-depth-17-objects"), "x": _nested(17, key="a")},
            rejected("(event)"),
        )
    )
    # data is one level already.
    add(_kind("data field 16 levels deep", _fill("h-depth-data-16", note=_nested(15)), ACCEPTED))
    add(
        _kind(
            "data field 17 levels deep",
            _fill("h-depth-data-17", note=_nested(16)),
            rejected("(event)"),
        )
    )
    add(
        _kind(
            "extra field 1000 levels deep",
            {**_fill("h-depth-1000"), "x": _deep_text(1000)},
            rejected("(event)"),
        )
    )
    add(
        _kind(
            "extra field 100000 levels deep",
            {**_fill("h-depth-100000"), "x": _deep_text(100_000)},
            rejected("(event)"),
        )
    )
    add(_kind("event as 100000 nested arrays", _deep_text(100_000), rejected("(event)")))

    # --- size -------------------------------------------------------------------------------
    add(Kind("event of 65536 bytes", (_padded("h-size-65536", 65_536),), (ACCEPTED,)))
    add(Kind("event of 65537 bytes", (_padded("h-size-65537", 65_537),), (rejected("(event)"),)))
    add(
        Kind(
            "event of 65536 bytes in two-byte characters",
            (_padded("h-size-65536-utf8", 65_536, pad_char="é"),),
            (ACCEPTED,),
        )
    )
    add(
        Kind(
            "event of 65537 bytes in two-byte characters",
            (_padded("h-size-65537-utf8", 65_537, pad_char="é"),),
            (rejected("(event)"),),
        )
    )
    add(Kind("event of 2 MiB", (_padded("h-size-2mib", 2 * 1024 * 1024),), (rejected("(event)"),)))

    # --- occurred_at --------------------------------------------------------------------------
    for name, value, outcome in (
        ("at the earliest instant", "2000-01-01T00:00:00Z", ACCEPTED),
        ("one microsecond too early", "1999-12-31T23:59:59.999999Z", rejected("occurred_at")),
        ("too early after its offset", "2000-01-01T00:59:59+01:00", rejected("occurred_at")),
        ("in range after its offset", "1999-12-31T23:00:00-01:00", ACCEPTED),
        ("at the last microsecond", "2099-12-31T23:59:59.999999Z", ACCEPTED),
        ("at the end of the range", "2100-01-01T00:00:00Z", rejected("occurred_at")),
        ("past the range after its offset", "2099-12-31T23:30:00-01:00", rejected("occurred_at")),
        ("back in range after its offset", "2100-01-01T00:30:00+01:00", ACCEPTED),
        ("past year 9999 after its offset", "9999-12-31T23:30:00-01:00", rejected("occurred_at")),
        ("before year 1 after its offset", "0001-01-01T00:30:00+01:00", rejected("occurred_at")),
        ("year 0000", "0000-01-01T00:00:00Z", rejected("occurred_at")),
        ("month 13", "2026-13-01T00:00:00Z", rejected("occurred_at")),
        ("February 30", "2026-02-30T00:00:00Z", rejected("occurred_at")),
        ("leap second", "2016-12-31T23:59:60Z", rejected("occurred_at")),
        ("hour 24", "2026-11-20T24:00:00Z", rejected("occurred_at")),
        ("offset +24:00", "2026-11-20T10:00:00+24:00", rejected("occurred_at")),
        ("offset +23:59", "2026-11-20T10:00:00+23:59", ACCEPTED),
        ("offset -00:00", "2026-11-20T10:00:00-00:00", ACCEPTED),
        ("no offset", "2026-11-20T10:00:00", rejected("occurred_at")),
        ("nanoseconds", "2026-11-20T10:00:00.123456789Z", ACCEPTED),
        ("lower case t and z", "2026-11-20t10:00:00z", ACCEPTED),
        ("Arabic-Indic digits", "٢٠٢٦-11-20T10:00:00Z", rejected("occurred_at")),
        ("a date only", "2026-11-20", rejected("occurred_at")),
        ("a number", 1_763_632_800, rejected("occurred_at")),
        ("null", None, rejected("occurred_at")),
        ("a list", ["2026-11-20T10:00:00Z"], rejected("occurred_at")),
    ):
        slug = "-".join(name.split())
        add(_kind(f"occurred_at {name}", _with(f"h-time-{slug}", occurred_at=value), outcome))

    # --- JSON numbers in extra and unknown data fields ---------------------------------------
    for name, token, outcome in (
        # Not JSON: the text is refused as a whole, as any other that is not JSON.
        ("NaN", "NaN", rejected("(body)")),
        ("Infinity", "Infinity", rejected("(body)")),
        ("-Infinity", "-Infinity", rejected("(body)")),
        ("1e999999", "1e999999", rejected("x")),
        ("-1e999999", "-1e999999", rejected("x")),
        ("1e100", "1e100", rejected("x")),
        ("-1e100", "-1E+100", rejected("x")),
        ("1e99", "1e99", ACCEPTED),
        ("9.99e99", "9.99e99", ACCEPTED),
        ("1e-100", "1e-100", ACCEPTED),
        ("1e-101", "1e-101", rejected("x")),
        ("-1e-101", "-1e-101", rejected("x")),
        ("30-digit integer", "123456789012345678901234567890", ACCEPTED),
        ("-30-digit integer", "-987654321098765432109876543210", ACCEPTED),
        ("2**64", "18446744073709551616", ACCEPTED),
        ("negative zero", "-0", ACCEPTED),
        ("negative zero point zero", "-0.0", ACCEPTED),
        ("22 significant digits", "1.000000000000000000001", ACCEPTED),
        ("100 significant digits", "0." + "1" * 100, ACCEPTED),
        ("101 significant digits", "0." + "1" * 101, rejected("x")),
        ("100-digit integer", "1234567890" * 10, ACCEPTED),
        ("zero", "0", ACCEPTED),
    ):
        slug = name.replace(" ", "-").replace("*", "")
        add(
            _kind(
                f"number {name} in an extra field",
                {**_fill(f"h-num-{slug}"), "x": Raw(token)},
                outcome,
            )
        )
    add(
        _kind(
            "NaN in an unknown data field",
            _fill("h-num-data-nan", note=Raw("NaN")),
            rejected("(body)"),
        )
    )
    add(
        _kind(
            "1e-101 in an unknown data field",
            _fill("h-num-data-tiny", note=Raw("1e-101")),
            rejected("data.note"),
        )
    )
    add(
        _kind(
            "30-digit integer in an unknown data field",
            _fill("h-num-data-30", note=Raw("123456789012345678901234567890")),
            ACCEPTED,
        )
    )
    add(
        _kind(
            "Infinity deep in an extra field",
            {**_fill("h-num-deep-inf"), "a": [0, 1, {"b": Raw("Infinity")}]},
            rejected("(body)"),
        )
    )
    add(
        _kind(
            "1e999999 deep in an extra field",
            {**_fill("h-num-deep-huge"), "a": [0, 1, {"b": Raw("1e999999")}]},
            rejected("a[2].b"),
        )
    )
    # 16 levels inside the event, 18 inside a REST batch: a number the fast
    # decoder reads inexactly (1e-400 as 0.0) must still be judged as written.
    deep_tiny: Any = Raw("1e-400")
    for _ in range(15):
        deep_tiny = {"a": deep_tiny}
    add(
        _kind(
            "1e-400, 16 levels deep in an extra field",
            {**_fill("h-num-deep-underflow"), "x": deep_tiny},
            rejected("x" + ".a" * 15),
        )
    )
    add(
        _kind(
            "exact numbers deep in extra fields",
            {
                **_fill("h-num-deep-exact"),
                "a": [Raw("0.1"), {"b": Raw("1.10"), "c": Raw("-12345678901234567890.123")}],
            },
            ACCEPTED,
        )
    )
    # Zero written with an exponent the database's numbers cannot hold: within
    # the bounds (zero has no magnitude), refused by PostgreSQL when stored.
    add(
        _kind(
            "zero with exponent -999999 in an extra field",
            {**_fill("h-num-zero-exponent"), "x": Raw("0e-999999")},
            rejected("(event)", reason="refused"),
        )
    )
    add(
        _kind(
            "zero with 17000 decimals in an extra field",
            {**_fill("h-num-zero-decimals"), "x": Raw("0." + "0" * 17_000)},
            rejected("(event)", reason="refused"),
        )
    )

    # --- amounts (JSON strings of the contract) ------------------------------------------------
    for name, value, outcome in (
        ("20 integer digits", "12345678901234567890", ACCEPTED),
        ("21 integer digits", "123456789012345678901", rejected("data.notional")),
        ("18 decimals", "1.123456789012345678", ACCEPTED),
        ("19 decimals", "1.1234567890123456789", rejected("data.notional")),
        ("plus sign", "+1", rejected("data.notional")),
        ("exponent", "1e5", rejected("data.notional")),
        ("leading space", " 1", rejected("data.notional")),
        ("trailing space", "1 ", rejected("data.notional")),
        ("Arabic-Indic digit", "\u0661", rejected("data.notional")),
        ("fullwidth digit", "\uff11", rejected("data.notional")),
        ("trailing point", "1.", rejected("data.notional")),
        ("leading point", ".5", rejected("data.notional")),
        ("leading zero", "01", rejected("data.notional")),
        ("NaN string", "NaN", rejected("data.notional")),
        ("Infinity string", "Infinity", rejected("data.notional")),
        ("hexadecimal", "0x10", rejected("data.notional")),
        ("underscore", "1_000", rejected("data.notional")),
        ("empty", "", rejected("data.notional")),
        ("zero", "0", rejected("data.notional")),
        ("negative", "-1", rejected("data.notional")),
        ("a JSON number", Raw("1000"), rejected("data.notional")),
        (
            "a 30-digit JSON number",
            Raw("123456789012345678901234567890"),
            rejected("data.notional"),
        ),
        ("a list", ["1000"], rejected("data.notional")),
    ):
        slug = "-".join(name.split())
        add(_kind(f"notional {name}", _fill(f"h-amount-{slug}", notional=value), outcome))
    add(_kind("fee negative zero", _fill("h-amount-fee-negative-zero", fee="-0"), ACCEPTED))
    add(
        _kind(
            "largest loss",
            _fill("h-amount-largest-loss", realized_pnl="-99999999999999999999.999999999999999999"),
            ACCEPTED,
        )
    )
    add(
        Kind(
            "two closing fills whose notional sum overflows 38 digits",
            tuple(
                _line(
                    events.fill(
                        HOSTILE_USER,
                        order_id="h-overflow",
                        notional="60000000000000000000",
                        realized_pnl="-99999999999999999999.999999999999999999",
                        event_id=f"h-overflow-{n}",
                    )
                )
                for n in (1, 2)
            ),
            (ACCEPTED, ACCEPTED),
            closed_orders={
                "h-overflow": (
                    Decimal("120000000000000000000"),
                    Decimal("-199999999999999999999.999999999999999998"),
                )
            },
        )
    )

    # --- duplicate keys: the last one stands, as every door reads it --------------------------
    dup_id = _fill("h-dup-id-last")
    add(
        _kind(
            "duplicate event_id keys",
            Pairs((("event_id", "h-dup-id-first"), *dup_id.items())),
            ACCEPTED,
        )
    )
    add(
        _kind(
            "duplicate type keys",
            Pairs((("type", "risk.flagged"), *_fill("h-dup-type").items())),
            ACCEPTED,
        )
    )
    good = _fill("h-dup-data-good")
    add(
        _kind(
            "duplicate data key with the last valid",
            Pairs(
                (
                    *((k, v) for k, v in good.items() if k != "data"),
                    ("data", Pairs((("notional", "abc"), *good["data"].items()))),
                )
            ),
            ACCEPTED,
        )
    )
    bad = _fill("h-dup-data-bad")
    add(
        _kind(
            "duplicate data key with the last invalid",
            Pairs(
                (
                    *((k, v) for k, v in bad.items() if k != "data"),
                    ("data", Pairs((*bad["data"].items(), ("notional", "abc")))),
                )
            ),
            rejected("data.notional"),
        )
    )

    # --- not an event object ----------------------------------------------------------------
    for name, value in (
        ("an array", [1]),
        ("an empty array", []),
        ("a string", "event"),
        ("a number", Raw("1")),
        ("null", None),
        ("true", True),
        ("an array holding an event", [_fill("h-wrapped")]),
    ):
        add(_kind(f"event as {name}", value, rejected("(event)")))
    add(
        _kind(
            "empty object",
            {},
            rejected("event_id", "type", "occurred_at", "user_id", "data"),
        )
    )

    add(
        _kind(
            "event as a string holding an event JSON text",
            json.dumps(_fill("h-string-of-json")),
            rejected("(event)"),
        )
    )

    # --- not JSON -----------------------------------------------------------------------------
    base = _fill("h-raw")
    for name, chunk, outcome in (
        ("invalid UTF-8 byte", b'"\xff"', rejected("(body)")),
        ("overlong UTF-8 NUL", b'"\xc0\x80"', rejected("(body)")),
        ("raw NUL byte in a string", b'"a\x00b"', rejected("(body)")),
        ("raw tab in a string", b'"a\tb"', rejected("(body)")),
        # Decoded, these bytes are a lone surrogate.
        ("UTF-8 encoded surrogate", b'"\xed\xa0\x80"', rejected("note")),
    ):
        slug = "-".join(name.split())
        add(_kind(name, {**_fill(f"h-raw-{slug}"), "note": RawBytes(chunk)}, outcome))
    add(Kind("raw NUL byte after the object", (_line(base) + b"\x00",), (rejected("(body)"),)))
    add(Kind("two objects on one line", (_line(base) + _line(base),), (rejected("(body)"),)))
    add(Kind("single quotes", (b"{'event_id': 'h-quotes'}",), (rejected("(body)"),)))
    add(
        Kind(
            "truncated object",
            (_line(base)[:-1],),
            (rejected("(body)"),),
            rest_refuses_body=True,
        )
    )

    # --- deliveries of the neighbour ------------------------------------------------------------
    add(Kind("redelivery of the first neighbour", (BEFORE_LINE,), (DUPLICATE,)))
    conflict = json.loads(BEFORE_LINE)
    conflict["data"]["realized_pnl"] = "-6"
    add(
        Kind(
            "first neighbour id with another body",
            (_line(conflict),),
            (rejected("event_id", reason="conflict"),),
        )
    )
    reordered = dict(reversed(list(json.loads(BEFORE_LINE).items())))
    add(
        Kind(
            "first neighbour with its keys reordered and spaced",
            (json.dumps(reordered, indent=1).replace("\n", " ").encode(),),
            (DUPLICATE,),
        )
    )
    return kinds


CATALOGUE: list[Kind] = _catalogue()
assert len({kind.name for kind in CATALOGUE}) == len(CATALOGUE), "kind names are unique"


# --- hypothesis strategies ---------------------------------------------------------------

# Characters that break things: NUL, lone surrogates (either half), other
# controls, separators JSON and JavaScript disagree on, a BOM, quotes, escapes.
_NASTY = ["\x00", "\ud800", "\udbff", "\udc00", "\udfff", "\x01", "\x1f", "\x7f", "\u2028",
          "\u2029", "\ufeff", '"', "\\", "/", "é", "😀", "\u0661", "\n", "\t", " "]  # fmt: skip

hostile_text = st.text(
    st.one_of(st.sampled_from(_NASTY), st.characters(codec=None, exclude_categories=())),
    max_size=12,
)

_NUMBER_TOKENS = [
    "NaN", "Infinity", "-Infinity", "1e999999", "-1e999999", "1e100", "-1e100", "1e99",
    "1e-100", "1e-101", "-0", "-0.0", "0", "123456789012345678901234567890",
    "1.000000000000000000001", "0e-999999", "0." + "1" * 101, "0." + "1" * 100,
]  # fmt: skip


@st.composite
def _decimal_token(draw: st.DrawFn) -> Raw:
    value = draw(st.decimals(allow_nan=False, allow_infinity=False, places=None))
    return Raw(str(value))


hostile_numbers: st.SearchStrategy[Raw] = st.one_of(
    st.sampled_from(_NUMBER_TOKENS).map(Raw),
    st.integers(min_value=-(10**40), max_value=10**40).map(lambda n: Raw(str(n))),
    st.floats(allow_nan=False, allow_infinity=False).map(lambda f: Raw(repr(f))),
    _decimal_token(),
)

hostile_scalars: st.SearchStrategy[Any] = st.one_of(
    hostile_text, hostile_numbers, st.booleans(), st.none()
)


def _containers(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(
        st.lists(children, max_size=3),
        st.dictionaries(hostile_text, children, max_size=3),
    )


hostile_values: st.SearchStrategy[Any] = st.recursive(hostile_scalars, _containers, max_leaves=6)


@st.composite
def deep_values(draw: st.DrawFn) -> Any:
    """Nesting around the bound: 14 to 18 levels of arrays or objects."""
    depth = draw(st.integers(14, 18))
    key = draw(st.none() | st.sampled_from(["a", "k\x00"]))
    return _nested(depth, draw(hostile_scalars), key=key)


_VALID_BUILDERS: list[Callable[[str, str, str], dict[str, Any]]] = [
    lambda i, u, t: events.fill(u, order_id=f"o-{i[-1]}", event_id=i, occurred_at=t),
    lambda i, u, t: events.fill(u, action="open", order_id=f"o-{i[-1]}", event_id=i, occurred_at=t),
    lambda i, u, t: events.wallet(u, event_id=i, occurred_at=t),
    lambda i, u, t: events.holding(u, event_id=i, occurred_at=t),
    lambda i, u, t: events.registered(u, event_id=i, occurred_at=t),
    lambda i, u, t: events.positions(u, event_id=i, occurred_at=t),
    lambda i, u, t: events.risk(u, event_id=i, occurred_at=t),
]
_USERS = ["u_1", "u_2", "u_3", "u\x00", "😀"]
_TIMES = ["2026-11-20T10:00:00Z", "2026-11-20T10:00:01+08:00", "1999-12-31T23:59:59Z",
          "2100-01-01T00:00:00Z", "9999-12-31T23:30:00-01:00", "2026-11-20T10:00:02.5Z"]  # fmt: skip
_IDS = [f"f-{n}" for n in range(40)]


@st.composite
def valid_events(draw: st.DrawFn) -> dict[str, Any]:
    """A valid event of any type, its id from a small pool (so ids repeat)."""
    builder = draw(st.sampled_from(_VALID_BUILDERS))
    event_id = draw(st.sampled_from(_IDS))
    user = draw(st.sampled_from(_USERS[:3]))
    return builder(event_id, user, draw(st.sampled_from(_TIMES[:2] + _TIMES[-1:])))


# Catalogue inputs mixed into generated streams: those every door can carry in
# a batch of hundreds (a REST body holds at most a few MiB).
_SAMPLED_KINDS = [
    kind
    for kind in CATALOGUE
    if not kind.rest_refuses_body and all(len(line) <= 70_000 for line in kind.lines)
]


def _appended_to(old: str) -> Callable[[str], str]:
    return lambda text: old + text


@st.composite
def hostile_events(draw: st.DrawFn) -> bytes:
    """One hostile input: a valid event with some fields replaced by anything
    (random types, text with NUL and surrogates, numbers as written, nesting
    around the bound), extra fields added, or the text itself damaged."""
    body: dict[str, Any] = draw(valid_events())
    for name in draw(st.sets(st.sampled_from(["event_id", "type", "occurred_at", "user_id"]))):
        body[name] = draw(
            st.one_of(
                hostile_values,
                st.sampled_from(_USERS + _TIMES),
                hostile_text.map(_appended_to(body[name])),
            )
        )
    data = body["data"]
    for name in draw(st.sets(st.sampled_from([*sorted(data), "note"]), max_size=2)):
        data[name] = draw(st.one_of(hostile_values, deep_values()))
    for name in draw(st.lists(hostile_text, max_size=2)):
        body[name] = draw(st.one_of(hostile_values, deep_values()))
    if draw(st.integers(0, 9)) == 0:
        return draw(st.sampled_from(_SAMPLED_KINDS)).lines[0]
    line = dumps(body)
    damage = draw(st.integers(0, 19))
    if damage == 0:
        cut = draw(st.integers(1, len(line) - 1))
        return (
            line[:cut]
            + draw(st.sampled_from([b"\xff", b"\x00", b"\xed\xa0\x80", b""]))
            + line[cut:]
        )
    return line


class Stream(list[bytes]):
    """Inputs in order; shown by their count (hundreds of events are no
    message: a failing test writes them to a file)."""

    def __repr__(self) -> str:
        return f"<stream of {len(self)} inputs>"


@st.composite
def event_streams(draw: st.DrawFn, *, size: int) -> Stream:
    """``size`` inputs: hostile ones mixed with valid ones, ids repeated
    (duplicates) and reused with other bodies (conflicts).

    Hypothesis draws the hostile events and a pool of valid ones; a seeded
    generator then deals ``size`` inputs from them (a list of hundreds of
    drawn events is more than one example can hold): hostile texts again and
    again, valid events under fresh ids, as drawn, or changed under their id.
    """
    hostile = draw(st.lists(hostile_events(), min_size=40, max_size=60))
    valid = draw(st.lists(valid_events(), min_size=40, max_size=60))
    rng = random.Random(draw(st.integers(0, 2**32)))
    stream = Stream()
    while len(stream) < size:
        roll = rng.random()
        if roll < 0.3:
            stream.append(rng.choice(hostile))
            continue
        body = json.loads(dumps(rng.choice(valid)))
        if roll < 0.8:
            body["event_id"] = f"g-{len(stream)}"
        elif roll < 0.9:
            body["user_id"] = rng.choice(_USERS[:3])  # another body under the same id
        stream.append(dumps(body))
    return stream
