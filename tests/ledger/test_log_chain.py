"""The event log is a hash chain (ledger.chain, ledger migration 0014).

Every append records one link; ``verify_log`` recomputes the chain and names
the first position where it breaks. The attacks are made as the database
owner, who can disable the append-only triggers: that is what the chain is for.
Expected hashes are worked out here with hashlib from the canonical texts.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import itertools
import threading
from collections.abc import Callable
from typing import Any

import psycopg
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection, connections
from django.test import Client
from prometheus_client.parser import text_string_to_metric_families

from ledger.chain import (
    GENESIS_HASH,
    STORED_COLUMNS,
    head,
    link_hash,
    seal,
    stored_entry,
    stored_json,
)
from ledger.chain_verification import verify_log
from ledger.event_store import DomainEvent, append_domain_events
from ledger.ingestion import ingest
from ledger.models import Event, LogLink
from tests import events

Connect = Callable[[str], psycopg.Connection[Any]]

RECEIVED = "2026-11-20T10:00:30Z"
RECEIVED_US = 1795168830_000000
OCCURRED_US = 1795168800_000000


@pytest.fixture
def frozen(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FROZEN_NOW", RECEIVED)


def _links() -> list[LogLink]:
    return list(LogLink.objects.order_by("link"))


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _verify(*args: str) -> str:
    out = io.StringIO()
    call_command("verify_log", "--no-progress", *args, stdout=out)
    return out.getvalue()


def _broken(*args: str) -> str:
    out = io.StringIO()
    with pytest.raises(CommandError, match="the log's chain breaks at position"):
        call_command("verify_log", "--no-progress", *args, stdout=out)
    return out.getvalue()


def _fills(count: int, prefix: str) -> list[dict[str, Any]]:
    return [
        events.fill("u_1", order_id=f"{prefix}-{n}", event_id=f"{prefix}-{n}") for n in range(count)
    ]


@pytest.mark.django_db
def test_a_link_holds_each_event_hash_and_chains_to_the_one_before(frozen: None) -> None:
    ingest([events.registered("u_1", occurred_at="2026-11-20T10:00:00Z")], source="test")
    event = Event.objects.get()
    # Netstrings; the data as canonical JSON (keys sorted, no spaces).
    data = '{"account_type":"main","parent_user_id":null,"referral_code":null}'
    content = (
        f"{len(event.event_id)}:{event.event_id},15:user.registered,{OCCURRED_US},3:u_1,"
        f"64:{event.body_hash},2:{{}},{len(data)}:{data},"
    )
    tail = f"8:exchange,{RECEIVED_US},4:test,"
    entry = event.position.to_bytes(8, "big") + hashlib.sha256((content + tail).encode()).digest()
    digest = hashlib.sha256(entry).hexdigest()
    [link] = _links()
    assert (link.link, link.first_position, link.last_position, link.events) == (
        1,
        1,
        event.position,
        1,
    )
    assert bytes(link.entries) == entry
    assert link.events_digest == digest
    assert link.previous_hash == GENESIS_HASH
    assert link.chain_hash == _sha(f"{GENESIS_HASH},1,1,{event.position},1,{digest},{RECEIVED_US},")
    with connection.cursor() as cursor:  # what the log stores is what was hashed
        cursor.execute("SELECT data::text FROM ledger_event WHERE position = %s", [event.position])
        assert stored_json(cursor.fetchone()[0]) == data

    # The next append chains to it, whatever the door or origin.
    append_domain_events(
        [
            DomainEvent(
                "decided:1", "ledger.account_funded", dt.datetime(2026, 11, 20, tzinfo=dt.UTC), {}
            )
        ]
    )
    first, second = _links()
    assert (second.link, second.first_position, second.events) == (2, event.position + 1, 1)
    assert second.previous_hash == first.chain_hash
    assert second.chain_hash == _sha(
        f"{first.chain_hash},2,{event.position + 1},{second.last_position},1,"
        f"{second.events_digest},{RECEIVED_US},"
    )


@pytest.mark.django_db
def test_numbers_and_texts_hash_the_same_once_stored(frozen: None) -> None:
    # jsonb keeps a number's value and scale, not its spelling, and orders
    # keys its own way: the chain hashes what any spelling is stored as.
    body = (
        r'{"event_id":"odd-1","type":"user.registered","occurred_at":"2026-11-20T10:00:00Z",'
        r'"user_id":"u_\u00e9\t1","trace":{"z":1.50e1,"a":[-0.0,1E+2,0.000001e-3,-7],'
        r'"b":"\u2028\u001e\"q\""},"data":{"account_type":"main","parent_user_id":null,'
        r'"referral_code":null}}'
    )
    assert ingest([body], source="test").summary()["accepted"] == 1
    assert [link.events for link in _links()] == [1]
    with connection.cursor() as cursor:
        cursor.execute("SELECT extra::text FROM ledger_event")
        extra = cursor.fetchone()[0]
    assert stored_json(extra) == (
        '{"trace":{"a":[0.0,100,0.000000001,-7],"b":"\u2028\\u001e\\"q\\"","z":15.0}}'
    )
    assert verify_log().breach is None


@pytest.mark.django_db
def test_verify_log_is_ok_on_a_log_of_inbound_and_domain_appends(frozen: None) -> None:
    ingest(_fills(3, "a"), source="rest")
    append_domain_events(
        [
            DomainEvent(
                f"d:{n}", "ledger.account_funded", dt.datetime(2026, 11, 20, tzinfo=dt.UTC), {}
            )
            for n in range(2)
        ]
    )
    ingest([*_fills(4, "b"), {"type": "nonsense"}], source="stream")  # one quarantined
    ingest(_fills(2, "a"), source="file")  # duplicates: nothing appended, no link
    links = _links()
    assert [link.events for link in links] == [3, 2, 4]
    for before, after in itertools.pairwise(links):
        assert after.first_position == before.last_position + 1
        assert after.previous_hash == before.chain_hash
    last = Event.objects.order_by("position").last()
    assert last is not None
    result = verify_log()
    assert (result.breach, result.links, result.events) == (None, 3, 9)
    assert result.head == head()
    assert _verify() == (
        f"OK: 3 links, 9 events, positions 1-{last.position}; head"
        f" {links[-1].chain_hash}@{last.position} link 3 recorded {RECEIVED}\n"
    )


@pytest.mark.django_db
def test_events_appended_outside_the_store_are_chained_by_the_next_seal_in_links_of_a_bounded_size(
    frozen: None,
) -> None:
    # As events written before the chain existed (the migration's genesis) or
    # by a writer that does not link (a replay's COPY).
    with connection.cursor() as cursor:
        for n in range(5):
            cursor.execute(
                "INSERT INTO ledger_event (event_id, type, occurred_at, received_at, user_id,"
                " data, extra, body_hash, source) VALUES (%s, 't', now(), now(), '', '{}', '{}',"
                " '', 'old')",
                [f"old-{n}"],
            )
    assert verify_log().breach is not None  # nothing covers them yet
    sealed = seal(dt.datetime(2026, 11, 20, tzinfo=dt.UTC), max_events=2)
    links = _links()
    assert [link.events for link in links] == [2, 2, 1]
    last = Event.objects.order_by("position").last()
    assert last is not None and sealed is not None
    assert (sealed.link, sealed.position, sealed.hash) == (3, last.position, links[-1].chain_hash)
    assert verify_log().breach is None


@pytest.mark.django_db(transaction=True)
def test_two_concurrent_appenders_chain_every_event_once() -> None:
    start = threading.Barrier(2)
    failures: list[BaseException] = []

    def append(door: str) -> None:
        try:
            start.wait()
            for batch in range(6):
                if door == "domain":
                    append_domain_events(
                        [
                            DomainEvent(
                                f"{door}:{batch}:{n}",
                                "ledger.account_funded",
                                dt.datetime(2026, 11, 20, tzinfo=dt.UTC),
                                {"n": n},
                            )
                            for n in range(20)
                        ]
                    )
                else:
                    ingest(_fills(20, f"{door}-{batch}"), source="rest")
        except BaseException as exc:  # reported below
            failures.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=append, args=(door,)) for door in ("rest", "domain")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    links = _links()
    assert len(links) == 12 and sum(link.events for link in links) == Event.objects.count() == 240
    assert verify_log().breach is None


@pytest.fixture
def chained() -> list[Event]:
    """Three appends committed: links 1, 2, 3 of 3 events each."""
    for batch in range(3):
        ingest(_fills(3, f"c{batch}"), source="rest")
    return list(Event.objects.order_by("position"))


def _as_owner(connect_as: Connect, table: str, *statements: tuple[str, list[Any]]) -> None:
    """Run statements as the owner with the table's append-only trigger off."""
    owner = connect_as("owner")
    owner.execute(f"ALTER TABLE {table} DISABLE TRIGGER {table}_append_only")
    for sql, params in statements:
        owner.execute(sql, params)
    owner.execute(f"ALTER TABLE {table} ENABLE TRIGGER {table}_append_only")
    owner.commit()


@pytest.mark.django_db(transaction=True)
def test_an_event_altered_in_place_by_the_owner_is_named(
    chained: list[Event], connect_as: Connect
) -> None:
    assert verify_log().breach is None
    altered = chained[4]  # in link 2
    _as_owner(
        connect_as,
        "ledger_event",
        (
            "UPDATE ledger_event SET data = jsonb_set(data, '{realized_pnl}', '\"10\"')"
            " WHERE position = %s",
            [altered.position],
        ),
    )
    breach = verify_log().breach
    assert breach is not None
    assert (breach.position, breach.event_id, breach.link, breach.what) == (
        altered.position,
        altered.event_id,
        2,
        "changed",
    )
    assert _broken() == (
        f"BROKEN at position {altered.position}: position {altered.position}: event"
        f" {altered.event_id} was changed after link 2 chained it\n"
        "(verified before it: 1 links, 3 events)\n"
    )


@pytest.mark.django_db(transaction=True)
def test_a_deleted_event_is_named(chained: list[Event], connect_as: Connect) -> None:
    gone = chained[6]  # the first of link 3
    _as_owner(
        connect_as,
        "ledger_event",
        ("DELETE FROM ledger_event WHERE position = %s", [gone.position]),
    )
    breach = verify_log().breach
    assert breach is not None
    assert (breach.position, breach.link, breach.what) == (gone.position, 3, "deleted")


@pytest.mark.django_db(transaction=True)
def test_an_event_slipped_into_a_gap_or_past_the_head_is_named(connect_as: Connect) -> None:
    ingest(_fills(2, "g1"), source="rest")
    with connection.cursor() as cursor:  # a rolled-back append leaves a gap
        cursor.execute("SELECT nextval('ledger_event_position_seq')")
        gap = cursor.fetchone()[0]
    ingest(_fills(2, "g2"), source="rest")
    assert verify_log().breach is None
    forged = (
        "INSERT INTO ledger_event (position, event_id, type, occurred_at, received_at, user_id,"
        " data, extra, body_hash, source) VALUES (%s, %s, 't', now(), now(), '', '{}', '{}', '', 'x')"
    )
    owner = connect_as("owner")
    owner.execute(forged, [gap, "forged-in-gap"])
    owner.commit()
    breach = verify_log().breach
    assert breach is not None
    assert (breach.position, breach.event_id, breach.link, breach.what) == (
        gap,
        "forged-in-gap",
        2,
        "inserted",
    )


@pytest.mark.django_db(transaction=True)
def test_an_event_past_the_head_is_named(chained: list[Event], connect_as: Connect) -> None:
    last = chained[-1].position
    owner = connect_as("owner")
    owner.execute(
        "INSERT INTO ledger_event (position, event_id, type, occurred_at, received_at, user_id,"
        " data, extra, body_hash, source) VALUES (%s, 'late', 't', now(), now(), '', '{}', '{}',"
        " '', 'x')",
        [last + 100],
    )
    owner.commit()
    breach = verify_log().breach
    assert breach is not None
    assert (breach.position, breach.event_id, breach.what) == (last + 100, "late", "unchained")


@pytest.mark.django_db(transaction=True)
def test_a_tampered_link_is_named(chained: list[Event], connect_as: Connect) -> None:
    _as_owner(
        connect_as,
        "ledger_loglink",
        ("UPDATE ledger_loglink SET events_digest = %s WHERE link = 2", ["0" * 64]),
    )
    breach = verify_log().breach
    assert breach is not None
    assert (breach.position, breach.link, breach.what) == (chained[3].position, 2, "link")


@pytest.mark.django_db(transaction=True)
def test_history_rewritten_with_its_links_breaks_the_next_link_or_a_kept_head(
    chained: list[Event], connect_as: Connect
) -> None:
    kept = head()
    assert kept is not None
    assert _verify("--expect", kept.kept).startswith(f"kept head {kept.kept}: found in the chain\n")
    # The owner changes an event of link 3 (the head) and rewrites that link to
    # match, with the database's own functions: the chain alone cannot tell.
    _rewrite(connect_as, chained[7], link=3)
    assert verify_log().breach is None
    # The head kept before is no longer the chain's.
    breach = verify_log(expect={kept.position: kept.hash}).breach
    assert breach is not None
    assert (breach.position, breach.link, breach.what) == (kept.position, 3, "expected")
    _broken("--expect", kept.kept)
    # Rewriting link 2 the same way breaks link 3, which recorded link 2's hash.
    _rewrite(connect_as, chained[4], link=2)
    breach = verify_log().breach
    assert breach is not None
    assert (breach.position, breach.link, breach.what) == (chained[3].position, 2, "link")


def _rewrite(connect_as: Connect, event: Event, *, link: int) -> None:
    """Change an event and make its link agree, as the owner would with the
    chain's own code."""
    _as_owner(
        connect_as,
        "ledger_event",
        ("UPDATE ledger_event SET user_id = 'u_2' WHERE position = %s", [event.position]),
    )
    owner = connect_as("owner")
    stored = owner.execute(
        "SELECT first_position, last_position, previous_hash, recorded_at FROM ledger_loglink"
        " WHERE link = %s",
        [link],
    ).fetchone()
    assert stored is not None
    first, last, previous, recorded = stored
    rows = owner.execute(
        f"SELECT {STORED_COLUMNS} FROM ledger_event"  # noqa: S608 - constant columns
        " WHERE position BETWEEN %s AND %s ORDER BY 1",
        [first, last],
    ).fetchall()
    entries = b"".join(stored_entry(row) for row in rows)
    digest = hashlib.sha256(entries).hexdigest()
    chain_hash = link_hash(previous, link, first, last, len(rows), digest, recorded)
    _as_owner(
        connect_as,
        "ledger_loglink",
        (
            "UPDATE ledger_loglink SET entries = %s, events_digest = %s, chain_hash = %s"
            " WHERE link = %s",
            [entries, digest, chain_hash, link],
        ),
    )


@pytest.mark.django_db
def test_a_kept_head_must_end_a_link(frozen: None) -> None:
    ingest(_fills(2, "k"), source="rest")
    current = head()
    assert current is not None
    breach = verify_log(expect={current.position - 1: current.hash}).breach
    assert breach is not None
    assert (breach.position, breach.what) == (current.position - 1, "expected")
    with pytest.raises(CommandError, match="is not HASH@POSITION"):
        call_command("verify_log", "--expect", "abc@12")


def _appended_at(monkeypatch: pytest.MonkeyPatch, *instants: str) -> list[LogLink]:
    """One append of two fills at each instant: a link each."""
    for n, instant in enumerate(instants):
        monkeypatch.setenv("FROZEN_NOW", instant)
        ingest(_fills(2, f"at{n}"), source="rest")
    return _links()


@pytest.mark.django_db
def test_chain_head_prints_the_head_now_and_at_the_end_of_a_day(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    first, second = _appended_at(monkeypatch, "2026-11-20T23:59:59.5Z", "2026-11-21T00:00:00Z")

    def printed(*args: str) -> str:
        out = io.StringIO()
        call_command("chain_head", *args, stdout=out)
        return out.getvalue()

    assert printed() == (
        f"{second.chain_hash}@{second.last_position} link 2 recorded 2026-11-21T00:00:00Z\n"
    )
    assert printed("--day", "2026-11-20") == (
        f"2026-11-20 {first.chain_hash}@{first.last_position} link 1"
        " recorded 2026-11-20T23:59:59.500000Z\n"
    )
    assert printed("--at", "2026-11-21T00:00:00.000001Z").startswith(second.chain_hash)
    with pytest.raises(CommandError, match="no link was recorded before 2026-11-20T00:00:00"):
        printed("--day", "2026-11-19")


@pytest.mark.django_db
def test_metrics_carry_the_chain_head_and_the_head_of_the_last_whole_day(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    first, second = _appended_at(monkeypatch, "2026-11-20T23:00:00Z", "2026-11-21T09:00:00Z")
    families = {
        family.name: family.samples
        for family in text_string_to_metric_families(Client().get("/metrics").content.decode())
    }
    assert [s.value for s in families["rewards_log_chained_position"]] == [second.last_position]
    assert [s.value for s in families["rewards_log_chain_links"]] == [2]
    [day_head] = families["rewards_log_chain_day_head_info"]
    assert (day_head.labels, day_head.value) == (
        {"day": "2026-11-20", "head": f"{first.chain_hash}@{first.last_position}", "link": "1"},
        1,
    )
