"""``verify_log``: the log's chain recomputed from the stored rows (ledger.chain).

One snapshot, two server-side cursors walked together in position order: the
links, and the events. Each link must follow the one before (its number, its
first position, the previous chain hash it records), its hashes must follow
from its fields, and its entries must be those of the events now in its
range, recomputed from their columns; no event may lie outside every link.
The first disagreement is named: the event changed in place, deleted, or
slipped into a gap, or the link itself. Memory holds one link's entries (at
most 100,000 of 40 bytes) and a few thousand rows.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from django.db import connection, transaction

from ledger.chain import (
    ENTRY_BYTES,
    GENESIS_HASH,
    STORED_COLUMNS,
    Head,
    entries_of,
    head,
    link_hash,
    stored_entry,
)

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class Break:
    """Where the chain stops agreeing with the log."""

    position: int
    link: int
    what: str  # changed, deleted, inserted, link, unchained, expected
    message: str
    event_id: str = ""


@dataclass
class Verification:
    links: int = 0
    events: int = 0
    head: Head | None = None
    breach: Break | None = None
    # Kept heads (position, hash) found in the chain.
    confirmed: list[tuple[int, str]] = field(default_factory=list)


@dataclass(frozen=True)
class _Link:
    link: int
    first: int
    last: int
    events: int
    entries: bytes
    events_digest: str
    previous_hash: str
    chain_hash: str
    recorded_at: dt.datetime


def verify_log(
    *, expect: dict[int, str] | None = None, progress: Progress | None = None
) -> Verification:
    """Recompute the chain from its first link, in one snapshot; stop at the
    first break. ``expect``: heads kept earlier (position -> hash) that must
    be links of this chain. ``progress(position, head_position)`` is called
    after each link."""
    expected = dict(expect or {})
    result = Verification()
    # A transaction of its own sees one snapshot throughout; inside a caller's
    # (a test), the caller's.
    own = not connection.in_atomic_block
    with transaction.atomic():
        if own:
            with connection.cursor() as cursor:
                cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
        result.head = head()
        top = result.head.position if result.head else 0
        select = f"SELECT {STORED_COLUMNS} FROM ledger_event"  # noqa: S608 - constant
        with _rows("verify_log_events", select, 2_000) as events:
            result.breach = _walk(result, events, expected, top, progress)
        if result.breach is None and expected:
            position, digest = min(expected.items())
            result.breach = Break(
                position,
                0,
                "expected",
                f"no link ends at position {position}: the head {digest}@{position} kept"
                " earlier is not one of this chain's",
            )
    return result


@contextmanager
def _rows(name: str, select: str, itersize: int) -> Iterator[Iterator[Any]]:
    """The rows of ``select`` in position order, through a server-side cursor."""
    raw = connection.connection
    assert raw is not None
    with raw.cursor(name=name) as cursor:
        cursor.itersize = itersize
        cursor.execute(f"{select} ORDER BY 1")
        yield iter(cursor)


def _walk(
    result: Verification,
    events: Iterator[Any],
    expected: dict[int, str],
    top: int,
    progress: Progress | None,
) -> Break | None:
    previous = _Link(0, 0, 0, 0, b"", "", "", GENESIS_HASH, dt.datetime.min.replace(tzinfo=dt.UTC))
    pending = next(events, None)
    with _rows(
        "verify_log_links",
        "SELECT link, first_position, last_position, events, entries, events_digest,"
        " previous_hash, chain_hash, recorded_at FROM ledger_loglink",
        4,  # a row holds up to 4 MB of entries
    ) as links:
        for row in links:
            number, first, last, count, entries, digest, previous_hash, chain_hash, recorded = row
            link = _Link(
                number,
                first,
                last,
                count,
                bytes(entries),
                digest,
                previous_hash,
                chain_hash,
                recorded,
            )
            breach = _link_breach(link, previous)
            if breach is None and pending is not None and pending[0] < link.first:
                breach = _outside(pending, top)  # a position before the first link
            if breach is None:
                breach, pending = _compare(link, pending, events)
            if breach is None:
                breach = _kept(link, expected, result)
            if breach is not None:
                return breach
            result.links += 1
            result.events += link.events
            previous = link
            if progress:
                progress(link.last, top)
    return _outside(pending, top) if pending is not None else None


def _link_breach(link: _Link, previous: _Link) -> Break | None:
    """A link that does not follow the one before it, or was changed itself."""
    if link.link != previous.link + 1 or link.first != previous.last + 1:
        return Break(
            previous.last + 1,
            link.link,
            "link",
            f"link {link.link} covers positions from {link.first}, after link"
            f" {previous.link} ending at {previous.last}: a link is missing or was changed",
        )
    if link.previous_hash != previous.chain_hash:
        return Break(
            previous.first if previous.link else link.first,
            previous.link,
            "link",
            f"link {link.link} records {link.previous_hash} as the chain hash before it, but"
            f" link {previous.link} (positions {previous.first}-{previous.last}) hashes to"
            f" {previous.chain_hash}: link {previous.link}, or the events it covers, was"
            " rewritten",
        )
    digest_ok = (
        len(link.entries) == link.events * ENTRY_BYTES
        and hashlib.sha256(link.entries).hexdigest() == link.events_digest
    )
    hash_ok = link.chain_hash == link_hash(
        link.previous_hash,
        link.link,
        link.first,
        link.last,
        link.events,
        link.events_digest,
        link.recorded_at,
    )
    if not (digest_ok and hash_ok):
        return Break(
            link.first,
            link.link,
            "link",
            f"link {link.link} (from position {link.first}) was changed: its hashes no longer"
            " follow from its fields",
        )
    return None


def _compare(link: _Link, pending: Any, events: Iterator[Any]) -> tuple[Break | None, Any]:
    """Walk a link's entries beside the events now in its range, in position
    order, to the first that differs; returns it and the first event after."""
    for position, kept in entries_of(link.entries):
        if pending is None or pending[0] > position:
            return Break(
                position,
                link.link,
                "deleted",
                f"position {position}: the event chained there (link {link.link}) is gone",
            ), pending
        if pending[0] < position:
            return _inserted(pending, link), pending
        if stored_entry(pending) != kept:
            return Break(
                position,
                link.link,
                "changed",
                f"position {position}: event {pending[1]} was changed after link {link.link}"
                " chained it",
                pending[1],
            ), pending
        pending = next(events, None)
    if pending is not None and pending[0] <= link.last:
        return _inserted(pending, link), pending
    return None, pending


def _inserted(row: Any, link: _Link) -> Break:
    return Break(
        row[0],
        link.link,
        "inserted",
        f"position {row[0]}: event {row[1]} is not in the chain (link {link.link} covers this"
        " position without it): inserted afterwards",
        row[1],
    )


def _kept(link: _Link, expected: dict[int, str], result: Verification) -> Break | None:
    """A head kept earlier at this link's position must be its chain hash."""
    if link.last not in expected:
        return None
    kept = expected.pop(link.last)
    if kept != link.chain_hash:
        return Break(
            link.last,
            link.link,
            "expected",
            f"link {link.link} at position {link.last} has the chain hash {link.chain_hash},"
            f" not {kept} as kept earlier: the log was rewritten at or before position"
            f" {link.last}",
        )
    result.confirmed.append((link.last, kept))
    return None


def _outside(row: Any, top: int) -> Break:
    """An event no link covers."""
    return Break(
        row[0],
        0,
        "unchained",
        f"position {row[0]}: event {row[1]} is past the chain head ({top}) or before its first"
        " link: appended without a link, outside the event store",
        row[1],
    )
