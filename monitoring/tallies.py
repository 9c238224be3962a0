"""Running tallies of ingestion outcomes, kept in the ingesting transaction.

Why a tally table and not a count at scrape time: the event log holds millions
of rows and has no index on ``type`` (on purpose: it was the largest index to
keep up on every append, see ``ledger.models.Event``), so counting it by type
scans the whole log. A window ("events of the last hour") would need an index
on ``received_at`` that appends would pay for too, and would not be a counter
Prometheus can take rates of. Ingestion already knows every outcome of a
batch; adding them to a few rows here is one statement per batch, taken under
the append lock that serialises log writers anyway, so it adds no contention.
It commits or rolls back with the batch, so the tallies never count an input
twice or miss one, however many processes ingest.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from django.db import connection

from ledger.contract import EVENT_TYPES

ACCEPTED = "accepted"
DUPLICATE = "duplicate"
REJECTED = "rejected"

_KNOWN_TYPES = frozenset(EVENT_TYPES)


def record_ingestion(
    *,
    source: str,
    accepted: Iterable[str] = (),
    duplicate: Iterable[str] = (),
    rejected: Iterable[tuple[str, str]] = (),
) -> None:
    """Add one batch's outcomes: event types accepted and duplicated, and
    ``(event type, reason)`` of each input rejected. Runs in the caller's
    transaction."""
    tally: Counter[tuple[str, str, str]] = Counter()
    for event_type in accepted:
        tally[(_label(event_type), ACCEPTED, "")] += 1
    for event_type in duplicate:
        tally[(_label(event_type), DUPLICATE, "")] += 1
    for event_type, reason in rejected:
        tally[(_label(event_type), REJECTED, reason)] += 1
    if not tally:
        return
    # Sorted rows: two transactions adding to the same rows lock them in the
    # same order, so they queue instead of deadlocking.
    keys = sorted(tally)
    with connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO monitoring_ingestcount (source, event_type, outcome, reason, count)
            SELECT %s, t.event_type, t.outcome, t.reason, t.n
            FROM unnest(%s::text[], %s::text[], %s::text[], %s::bigint[])
                AS t(event_type, outcome, reason, n)
            ON CONFLICT (source, event_type, outcome, reason)
            DO UPDATE SET count = monitoring_ingestcount.count + EXCLUDED.count
            """,
            [
                source,
                [key[0] for key in keys],
                [key[1] for key in keys],
                [key[2] for key in keys],
                [tally[key] for key in keys],
            ],
        )


def _label(event_type: str) -> str:
    # A rejected input may claim any type; only the contract's become labels.
    return event_type if event_type in _KNOWN_TYPES else ""
