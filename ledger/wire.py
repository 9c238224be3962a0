"""The wire format of inbound events: decoding, the bounds every door applies,
and the canonical form that is hashed and stored.

Every door hands this module what it received (a JSON text, or a body its
parser decoded with :func:`decode_document`), so one set of bounds holds
everywhere (docs/api.md, "What an event may contain"):

- valid UTF-8 JSON; ``NaN`` and ``Infinity`` are not JSON and are refused;
- no NUL (U+0000) and no lone surrogate in any string or key, at any depth:
  PostgreSQL text and jsonb cannot hold them, and a field a person reads must
  not hide characters;
- at most :data:`MAX_DEPTH` levels of arrays and objects inside the event;
- at most :data:`MAX_EVENT_BYTES` of canonical JSON per event;
- a JSON number anywhere is kept exactly as written (an integer as an
  integer, a fraction or exponent as a decimal, never a float) and must be finite, with at most :data:`MAX_NUMBER_DIGITS`
  significant digits and a magnitude within 1e-100 .. 1e100.

The common case, an event with no fractional number, no escaped NUL and no
deep nesting, is proved safe by a walk over its containers alone.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, cast

import orjson

MAX_EVENT_BYTES = 65_536
# Read no further than this from one text: it is refused before decoding.
MAX_TEXT_BYTES = 1_048_576
MAX_DEPTH = 16
MAX_NUMBER_DIGITS = 100
MAX_NUMBER_EXPONENT = 100

_NUL_ESCAPE = b"\\u0000"
_INT64 = 2**63
_TOO_DEEP = f"nested deeper than {MAX_DEPTH} levels of arrays and objects"


@dataclass(frozen=True, slots=True)
class FieldError:
    field: str
    message: str

    def as_dict(self) -> dict[str, str]:
        return {"field": self.field, "message": self.message}


@dataclass(slots=True)  # not frozen: built for every event, and frozen costs a microsecond
class Decoded:
    body: Any
    errors: list[FieldError]
    # False when the decoding proved the body within bounds (see module doc).
    needs_check: bool
    # Decoded by orjson, which refuses lone surrogates and invalid UTF-8.
    fast: bool = False


def printable(text: str, limit: int | None = 200) -> str:
    """Text safe to store and show: NUL, other control characters and lone
    surrogates escaped as ``\\uXXXX``, cut to ``limit`` characters."""
    if limit is not None and len(text) > limit:
        text = text[:limit] + "..."
    if text.isascii() and text.isprintable():
        return text
    return "".join(
        ch if ch.isprintable() and not 0xD800 <= ord(ch) <= 0xDFFF else _escape(ch) for ch in text
    )


def _escape(ch: str) -> str:
    # JSON's escape, so that an escaped input still decodes to the same value.
    code = ord(ch)
    if code <= 0xFFFF:
        return f"\\u{code:04x}"
    code -= 0x10000
    return f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}"


def shown(value: Any, limit: int = 60) -> str:
    """A received value quoted for an error message: short and printable."""
    return printable(repr(value), limit)


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def decode(raw: str | bytes, *, max_bytes: int = MAX_TEXT_BYTES) -> Decoded:
    """Decode one JSON text. Numbers come back as :class:`~decimal.Decimal`."""
    if isinstance(raw, str):
        try:
            data = raw.encode("utf-8")
        except UnicodeEncodeError:
            return Decoded(None, [FieldError("(body)", "not valid UTF-8 text")], False)
    else:
        data = raw
    if len(data) > max_bytes:
        message = f"is {len(data):,} bytes; at most {max_bytes:,} are read"
        return Decoded(None, [FieldError("(event)", message)], False)
    try:
        body = orjson.loads(data)
    except orjson.JSONDecodeError:
        pass  # the exact decoder decides, and words the error
    else:
        # orjson refuses lone surrogates, invalid UTF-8 and integers beyond 64
        # bits itself; a float it read may have lost digits: decode exactly.
        shape = _shape(body)
        if shape is not _FLOAT:
            return Decoded(body, [], shape is _DEEP or _NUL_ESCAPE in data, fast=True)
    try:
        # Integers as int, as orjson reads them (so -0 is 0 at every door);
        # fractions and exponents as exact decimals.
        body = json.loads(data, parse_float=Decimal, parse_constant=_refuse_constant)
    except RecursionError:
        return Decoded(None, [FieldError("(event)", _TOO_DEEP)], False)
    except ValueError as exc:  # UnicodeDecodeError included
        return Decoded(
            None, [FieldError("(body)", f"not valid JSON: {printable(str(exc))}")], False
        )
    return Decoded(body, [], True)


_PLAIN, _FLOAT, _DEEP = object(), object(), object()


def _shape(body: Any) -> object:
    """Whether a body holds a float or is nested too deep, by a walk that
    looks at containers only (cheaper than any scan of the text)."""
    if type(body) is not dict and type(body) is not list:
        return _FLOAT if type(body) is float else _PLAIN
    shape = _PLAIN
    stack = [(body, 0)]
    while stack:
        container, depth = stack.pop()
        if depth > MAX_DEPTH:
            # Still walked: a float deeper down must be found, or a REST batch
            # (two levels deeper than its events) would keep its inexact value.
            shape = _DEEP
        for value in container.values() if type(container) is dict else container:
            kind = type(value)
            if kind is dict or kind is list:
                stack.append((value, depth + 1))
            elif kind is float:
                return _FLOAT
    return shape


def decode_document(raw: bytes, *, max_bytes: int, array_key: str) -> tuple[Any, bool]:
    """Decode a whole request body (an object holding the array ``array_key``)
    with the same rules; raises ``ValueError`` with a message for people.

    Returns the body and whether its strings and keys are known clean (no
    NUL, no lone surrogate: orjson decoded it and no NUL was escaped), so
    that :func:`check` may skip them.

    A body the decoders refuse (one element not JSON, ``NaN``, nested too
    deep) is split at its array's elements, which come back undecoded
    (``bytes``): the element at fault is refused on its own, as a line of a
    file would be, and its neighbours are not lost with it.
    """
    decoded = decode(raw, max_bytes=max_bytes)
    if not decoded.errors:
        return decoded.body, decoded.fast and _NUL_ESCAPE not in raw
    error = decoded.errors[0]
    if error.field != "(event)" or error.message == _TOO_DEEP:
        found = _array_elements(raw, json.dumps(array_key).encode())
        if found is not None and _skeleton_is_json(raw, found[1], found[2]):
            return {array_key: found[0]}, False
    raise ValueError(error.message if error.field == "(body)" else f"the body is {error.message}")


# A string (escapes included) or one structural character.
_TOKEN = re.compile(rb'"(?:[^"\\]|\\.)*"|[\[\]{},:]')


def _skeleton_is_json(data: bytes, opening: int, closing: int) -> bool:
    """Whether the body is JSON once its array is emptied: a body broken
    outside the array (trailing garbage, say) is refused whole."""
    try:
        json.loads(data[:opening] + b"[]" + data[closing:])
    except (ValueError, RecursionError):
        return False
    return True


def _array_elements(data: bytes, key: bytes) -> tuple[list[bytes], int, int] | None:
    """The texts of the elements of ``{..., key: [e1, e2, ...], ...}`` and the
    offsets of the array's brackets (from '[' to after ']'), found by scanning
    tokens (no recursion), or None if the body is not shaped so."""
    depth = 0
    last_key = b""
    after_key = False
    start: int | None = None
    opening = 0
    elements: list[bytes] = []
    for match in _TOKEN.finditer(data):
        token = match.group()
        first = token[:1]
        if first == b'"':
            if depth == 1:
                last_key = token
            continue
        if first == b":":
            after_key = depth == 1 and last_key == key
            continue
        if first in (b"[", b"{"):
            depth += 1
            if depth == 2 and first == b"[" and after_key and start is None:
                opening, start = match.start(), match.end()
            after_key = False
            continue
        if first in (b"]", b"}"):
            if start is not None and depth == 2 and first == b"]":
                last = data[start : match.start()].strip()
                if last or elements:
                    elements.append(last)
                return elements, opening, match.end()
            depth -= 1
            continue
        if first == b"," and start is not None and depth == 2:
            elements.append(data[start : match.start()].strip())
            start = match.end()
        after_key = False
    return None


def check(body: Any, errors: list[FieldError], *, texts: bool = True) -> None:
    """Walk a decoded body: strings, keys, depth and numbers within bounds
    (``texts=False``: the strings and keys are known clean, see
    :func:`decode_document`).

    Floats (a body built in Python) and integers beyond 64 bits become
    decimals in place, so that :func:`dumps` writes every number exactly.
    """
    if not texts and _shape(body) is _PLAIN:
        return  # no float, no deep nesting, 64-bit integers only: nothing to find
    stack: list[tuple[Any, str, int]] = [(body, "", 0)]
    while stack:
        container, path, depth = stack.pop()
        if depth > MAX_DEPTH:
            errors.append(FieldError("(event)", f"{_TOO_DEEP} (at {printable(path)})"))
            continue
        is_object = type(container) is dict
        for key, value in container.items() if is_object else enumerate(container):
            if texts and is_object and not _clean(cast(str, key)):
                errors.append(FieldError(_join(path, key), _text_problem(cast(str, key), "key")))
                continue
            kind = type(value)
            if kind is str:
                if texts and ("\x00" in value or (not value.isascii() and not _clean(value))):
                    errors.append(FieldError(_join(path, key), _text_problem(value, "value")))
            elif kind is dict or kind is list:
                stack.append((value, _join(path, key), depth + 1))
            elif value is None or kind is bool:
                continue
            else:
                number = _number(value)
                if number is None:
                    errors.append(FieldError(_join(path, key), _number_problem(value)))
                elif number is not value:
                    container[key] = number


def _clean(text: str) -> bool:
    if "\x00" in text:
        return False
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _text_problem(text: str, what: str) -> str:
    if "\x00" in text:
        return f"the {what} contains a NUL character (U+0000)"
    return f"the {what} contains a lone surrogate (U+D800-U+DFFF): not valid Unicode text"


def _number(value: Any) -> Any:
    """The value as a bounded exact number, or None if out of bounds."""
    if type(value) is int:
        if -_INT64 <= value < _INT64:
            return value
        value = Decimal(value)
    elif type(value) is float:
        value = Decimal(repr(value))  # nan and inf become Decimal's, refused below
    elif type(value) is not Decimal:
        return None
    if not value.is_finite():
        return None
    if len(value.as_tuple().digits) > MAX_NUMBER_DIGITS:
        return None
    if value and not -MAX_NUMBER_EXPONENT <= value.adjusted() < MAX_NUMBER_EXPONENT:
        return None
    return value


def _number_problem(value: Any) -> str:
    text = printable(str(value), 40) if isinstance(value, int | float | Decimal) else shown(value)
    return (
        f"{text} is out of bounds: a JSON number must be finite, with at most"
        f" {MAX_NUMBER_DIGITS} significant digits and a magnitude between 1e-100 and 1e100"
    )


def _join(path: str, key: Any) -> str:
    if type(key) is int:
        return f"{path}[{key}]"
    name = key if key.isprintable() and "." not in key else json.dumps(key)
    return f"{path}.{name}" if path else name


def _fragment(value: Any) -> Any:
    if isinstance(value, Decimal):
        return orjson.Fragment(str(value))
    raise TypeError(f"{type(value).__name__} is not JSON")


def dumps(value: Any, *, sort_keys: bool = False) -> bytes:
    """JSON text with every number exactly as decoded (decimals written as numbers)."""
    return orjson.dumps(value, default=_fragment, option=orjson.OPT_SORT_KEYS if sort_keys else 0)


def dumps_any(value: Any) -> str:
    """Any decoded value as JSON text, however deep (no recursion): for showing
    and keeping an input the other encoders cannot write."""
    out: list[str] = []
    # Work items: a value to write, or a literal piece of text (a str in a tuple).
    stack: list[Any] = [value]
    while stack:
        item = stack.pop()
        if type(item) is tuple:
            out.append(item[0])
        elif type(item) is dict:
            stack.append(("}",))
            for index, (key, child) in enumerate(reversed(list(item.items()))):
                stack.append(child)
                stack.append((json.dumps(str(key)) + ":",))
                if index < len(item) - 1:
                    stack.append((",",))
            stack.append(("{",))
        elif type(item) is list:
            stack.append(("]",))
            for index, child in enumerate(reversed(item)):
                stack.append(child)
                if index < len(item) - 1:
                    stack.append((",",))
            stack.append(("[",))
        elif isinstance(item, str) or item is None or isinstance(item, bool):
            out.append(json.dumps(item, ensure_ascii=False))
        elif isinstance(item, int | Decimal):
            out.append(str(item))
        elif isinstance(item, float):
            out.append(repr(item))
        else:
            out.append(json.dumps(repr(item)))
    return "".join(out)


def canonical_body(body: dict[str, Any]) -> bytes:
    """The body as canonical JSON (sorted keys, no spaces, UTF-8): the same fact
    always hashes the same, whichever door it came through and however it was
    formatted."""
    return dumps(body, sort_keys=True)


def body_hash(body: dict[str, Any]) -> str:
    return hashlib.sha256(canonical_body(body)).hexdigest()
