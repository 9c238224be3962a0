"""The tamper-evident log: each append chained to the one before.

Every append to the event log records a link (``ledger_loglink``) in the same
transaction, under the append lock that already orders writers: the entry of
each event it added (its position and its hash), a digest of those entries,
and a chain hash over the previous link's chain hash and this link's fields.
:mod:`ledger.chain_verification` recomputes it all from the stored columns
and names the first position where it breaks; :func:`head` is what an auditor
keeps outside the database (``manage.py chain_head``).

The hashes are defined once, here, and computed from the values the log
stores: at the append from the values written (an event's canonical JSON is
what is COPYed, so the database stores exactly the value hashed), at the
check from the values read back. Texts are netstrings (``len:bytes,``),
numbers and instants (microseconds since the Unix epoch) digits and a comma:

- an event's content text: its ``event_id``, ``type``, ``occurred_at``,
  ``user_id``, ``body_hash``, ``extra`` and ``data``, the JSON canonical (no
  spaces, keys sorted, numbers as PostgreSQL prints them: plain digits, no
  exponent, no "-0");
- its tail: ``origin``, ``received_at``, ``source``;
- its entry in a link: its position (8 bytes, big-endian) and the sha256 of
  its content text followed by its tail;
- a link's chain hash: the sha256 of the previous chain hash, the link
  number, its first and last positions, its number of events, the sha256 of
  its entries (hex) and ``recorded_at``.

Why in Python and not in SQL: PostgreSQL hashing each event from its stored
columns cost 5.3 µs of the database's time an event under the append lock
(printing ``data`` from jsonb is most of it), a fifth more work for every
append. Here the content text is built in ``ingestion.prepare``, before the
lock, beside the validation it follows; the append adds one sha256 an event.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import orjson
from django.db import connection

from ledger import wire

if TYPE_CHECKING:
    from ledger.contract import InboundEvent

# The previous hash of the first link.
GENESIS_HASH = "0" * 64
# At most this many events in one link: what verify_log holds of a link at once.
LINK_EVENTS = 100_000
# Each event's entry in a link: its position (8 bytes) and its hash (32).
ENTRY_BYTES = 40

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_MICROSECOND = dt.timedelta(microseconds=1)
# A constant: the statement names it as a literal, which PostgreSQL resolves once.
_TAKE = "SELECT nextval('ledger_event_position_seq'::regclass) AS p FROM generate_series(1, %s)"


# The one definition of the hashes.


def _micros(moment: dt.datetime) -> int:
    since = moment - _EPOCH
    return (since.days * 86_400 + since.seconds) * 1_000_000 + since.microseconds


def _plain_number(value: Any) -> Any:
    if isinstance(value, Decimal):
        # As PostgreSQL prints a numeric: 1E+2 is 100, 1.50 stays 1.50, -0 is 0.
        text = format(value, "f")
        return orjson.Fragment(text[1:] if not value and text.startswith("-") else text)
    raise TypeError(f"{type(value).__name__} is not JSON")


def canonical_json(value: Any) -> str:
    """A decoded JSON value as the chain hashes it, and as the log stores it."""
    return orjson.dumps(value, default=_plain_number, option=orjson.OPT_SORT_KEYS).decode()


def stored_json(text: str) -> str:
    """The canonical JSON of a JSON text, its numbers read exactly (jsonb as
    PostgreSQL prints it, a domain event's data as written)."""
    # Read whatever its size: what is stored is hashed, never refused here.
    decoded = wire.decode(text, max_bytes=1 << 40)
    if decoded.errors:
        raise ValueError(f"not canonical JSON: {decoded.errors[0].message}")
    return canonical_json(decoded.body)


def content_text(
    event_id: str,
    type_: str,
    occurred_at: dt.datetime,
    user_id: str,
    body_hash: str,
    extra_json: str,
    data_json: str,
) -> bytes:
    """What an event says (everything but where and when it was stored):
    texts as netstrings (``len:bytes,``), the instant as microseconds since the
    Unix epoch followed by a comma. Built once per event ingested, before the
    append lock: one formatting."""
    e, t, u, b, x, d = (
        event_id.encode(),
        type_.encode(),
        user_id.encode(),
        body_hash.encode(),
        extra_json.encode(),
        data_json.encode(),
    )
    return b"%d:%b,%d:%b,%d,%d:%b,%d:%b,%d:%b,%d:%b," % (
        len(e),
        e,
        len(t),
        t,
        _micros(occurred_at),
        len(u),
        u,
        len(b),
        b,
        len(x),
        x,
        len(d),
        d,
    )


def entry_tail(origin: str, received_at: dt.datetime, source: str) -> bytes:
    """Where and when an event was stored, after its content in its hash: the
    same for every event of one append."""
    o, s = origin.encode(), source.encode()
    return b"%d:%b,%d,%d:%b," % (len(o), o, _micros(received_at), len(s), s)


def entry(position: int, content: bytes, tail: bytes) -> bytes:
    """An event's entry in its link: its position (8 bytes, big-endian) and
    its hash, the sha256 of its content text and tail. The position is bound
    by the link's digest of its entries."""
    return position.to_bytes(8, "big", signed=True) + hashlib.sha256(content + tail).digest()


def link_hash(
    previous_hash: str,
    link: int,
    first_position: int,
    last_position: int,
    events: int,
    events_digest: str,
    recorded_at: dt.datetime,
) -> str:
    """A link's chain hash: sha256 of the previous chain hash, then the
    link's numbers and the digest of its entries, comma-separated."""
    return hashlib.sha256(
        b"%s,%d,%d,%d,%d,%s,%d,"
        % (
            previous_hash.encode(),
            link,
            first_position,
            last_position,
            events,
            events_digest.encode(),
            _micros(recorded_at),
        )
    ).hexdigest()


def prepare_content(event: InboundEvent) -> None:
    """Compute what an inbound event stores and chains (before the append
    lock). An event whose data cannot be written is left for the append to
    refuse, as before the chain."""
    try:  # noqa: SIM105 - contextlib.suppress costs half a microsecond an event
        ensure_content(event)
    except (TypeError, ValueError):
        pass


def ensure_content(event: InboundEvent) -> None:
    if event.content:
        return
    event.data_json = canonical_json(event.data)
    event.extra_json = canonical_json(event.extra) if event.extra else "{}"
    event.content = content_text(
        event.event_id,
        event.type,
        event.occurred_at,
        event.user_id,
        event.body_hash,
        event.extra_json,
        event.data_json,
    )


# Stored rows, as the chain reads them back.

STORED_COLUMNS = (
    "position, event_id, origin, type, occurred_at, received_at, user_id, body_hash, source,"
    " extra::text, data::text"
)


def stored_entry(row: Sequence[Any]) -> bytes:
    """The entry of an event read back (a row of :data:`STORED_COLUMNS`)."""
    position, event_id, origin, type_, occurred_at, received_at, user_id, body_hash, source = row[
        :9
    ]
    extra = "{}" if row[9] == "{}" else stored_json(row[9])
    content = content_text(
        event_id, type_, occurred_at, user_id, body_hash, extra, stored_json(row[10])
    )
    return entry(position, content, entry_tail(origin, received_at, source))


# Recording.


def take_positions(count: int) -> list[int]:
    """Positions for the rows of an append, from the log's own sequence (a
    rolled-back append leaves its positions unused: the log has gaps)."""
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT min(p), max(p) FROM ({_TAKE}) t", [count])  # noqa: S608 - constant
        low, high = cursor.fetchone()
        if high - low + 1 == count:
            return list(range(low, high + 1))
        # Another session took positions meanwhile (not an appender: they
        # queue on the lock): take others, each one known (those stay unused).
        cursor.execute(_TAKE, [count])
        return sorted(row[0] for row in cursor.fetchall())


@dataclass(frozen=True)
class Head:
    """The last link: what an auditor keeps is ``kept`` (hash@position)."""

    link: int
    position: int
    hash: str
    recorded_at: dt.datetime

    @property
    def kept(self) -> str:
        return f"{self.hash}@{self.position}"

    def line(self) -> str:
        recorded = self.recorded_at.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")
        return f"{self.kept} link {self.link} recorded {recorded}"


def head(*, before: dt.datetime | None = None) -> Head | None:
    """The chain head now, or the last link recorded before ``before``
    (the head of a UTC day is the one before the next day begins)."""
    with connection.cursor() as cursor:
        if before is None:
            cursor.execute(
                "SELECT link, last_position, chain_hash, recorded_at FROM ledger_loglink"
                " ORDER BY link DESC LIMIT 1"
            )
        else:
            cursor.execute(
                "SELECT link, last_position, chain_hash, recorded_at FROM ledger_loglink"
                " WHERE recorded_at < %s ORDER BY recorded_at DESC, link DESC LIMIT 1",
                [before],
            )
        row = cursor.fetchone()
    return Head(*row) if row else None


def parse_kept(text: str) -> tuple[int, str]:
    """``HASH@POSITION`` as ``chain_head`` prints it: (position, hash)."""
    digest, sep, position = text.strip().partition("@")
    digest = digest.lower()
    if not sep or len(digest) != 64 or not position.isdigit():
        raise ValueError(f"{text!r} is not HASH@POSITION (64 hex digits, '@', a position)")
    int(digest, 16)  # hex, or ValueError
    return int(position), digest


def record_append(
    positions: Sequence[int], entries: Iterable[bytes], recorded_at: dt.datetime
) -> None:
    """Record the link of the rows an append just wrote at ``positions``
    (ascending) with their ``entries``. The caller holds the append lock.

    Rows between the head and them that no link covers (written around the
    event store) are read back and chained first, in links of their own."""
    current = _head_or_genesis()
    if positions[0] > current.position + 1:
        # Usually a gap (a rolled-back append), unless someone wrote around us.
        current = _chain_stored(current, upto=positions[0] - 1, recorded_at=recorded_at)
    _insert_link(current, positions[-1], b"".join(entries), recorded_at)


def seal(recorded_at: dt.datetime, *, max_events: int = LINK_EVENTS) -> Head | None:
    """Chain every event written beyond the head without a link: the history
    from before the chain existed (ledger migration 0014), or rows a writer
    copied in around the event store (a replay's facts). Takes the append lock."""
    from ledger.event_store import take_append_lock

    take_append_lock()
    with connection.cursor() as cursor:
        cursor.execute("SELECT max(position) FROM ledger_event")
        top = cursor.fetchone()[0]
    current = _head_or_genesis()
    if top is not None and top > current.position:
        _chain_stored(current, upto=top, recorded_at=recorded_at, max_events=max_events)
    return head()


def _head_or_genesis() -> Head:
    return head() or Head(0, 0, GENESIS_HASH, _EPOCH)


def _chain_stored(
    current: Head, *, upto: int, recorded_at: dt.datetime, max_events: int = LINK_EVENTS
) -> Head:
    """Links for the rows stored in (head, upto], read back; the new head."""
    raw = connection.connection
    assert raw is not None
    entries: list[bytes] = []
    last = current.position
    with raw.cursor(name="chain_stored") as cursor:
        cursor.itersize = 2_000
        cursor.execute(
            f"SELECT {STORED_COLUMNS} FROM ledger_event"  # noqa: S608 - constant columns
            " WHERE position > %s AND position <= %s ORDER BY position",
            [current.position, upto],
        )
        for row in cursor:
            entries.append(stored_entry(row))
            last = row[0]
            if len(entries) == max_events:
                current = _insert_link(current, last, b"".join(entries), recorded_at)
                entries = []
    if entries:
        current = _insert_link(current, last, b"".join(entries), recorded_at)
    return current


def _insert_link(current: Head, last: int, entries: bytes, recorded_at: dt.datetime) -> Head:
    link, first = current.link + 1, current.position + 1
    events = len(entries) // ENTRY_BYTES
    digest = hashlib.sha256(entries).hexdigest()
    chain_hash = link_hash(current.hash, link, first, last, events, digest, recorded_at)
    with connection.cursor() as cursor:
        # The primary key refuses a second link of the same number: the chain
        # cannot fork, even for a writer that skipped the append lock.
        cursor.execute(
            "INSERT INTO ledger_loglink (link, first_position, last_position, events, entries,"
            " events_digest, previous_hash, chain_hash, recorded_at)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
            [link, first, last, events, entries, digest, current.hash, chain_hash, recorded_at],
        )
    return Head(link, last, chain_hash, recorded_at)


def entries_of(data: bytes) -> Iterator[tuple[int, bytes]]:
    """A link's stored entries as (position, entry)."""
    for offset in range(0, len(data), ENTRY_BYTES):
        chunk = data[offset : offset + ENTRY_BYTES]
        yield int.from_bytes(chunk[:8], "big", signed=True), chunk
