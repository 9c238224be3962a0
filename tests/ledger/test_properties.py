"""Any batch, delivered in any order, split in any way, with any duplicates,
gives the same read models; a rebuild from the log reproduces them exactly."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from django.core.management import call_command
from django.db import transaction
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledger.ingestion import ingest
from tests import events
from tests.ledger.read_models import snapshot

USERS = ["u_1", "u_2", "u_3"]
ORDERS = ["o_1", "o_2"]
TIMES = [f"2026-11-20T10:00:0{s}Z" for s in range(4)]
AMOUNTS = ["-12.5", "-0.01", "0", "3", "250.75", "-1000"]


def _fact(kind: int, user: str, order: str, time: str, amount: str, n: int) -> dict[str, Any]:
    event_id = f"e-{n:04d}"
    if kind == 0:
        return events.fill(
            user,
            order_id=order,
            realized_pnl=amount,
            occurred_at=time,
            event_id=event_id,
            promo_funding=["bonus"] if n % 5 == 0 else [],
        )
    if kind == 1:
        return events.fill(user, order_id=order, action="open", occurred_at=time, event_id=event_id)
    if kind == 2:
        return events.wallet(
            user, available=amount.lstrip("-"), occurred_at=time, event_id=event_id
        )
    if kind == 3:
        return events.holding(user, amount=amount.lstrip("-"), occurred_at=time, event_id=event_id)
    if kind == 4:
        return events.registered(
            user, account_type=["main", "institutional"][n % 2], occurred_at=time, event_id=event_id
        )
    return events.positions(user, occurred_at=time, event_id=event_id)


facts = st.lists(
    st.tuples(
        st.integers(0, 5),
        st.sampled_from(USERS),
        st.sampled_from(ORDERS),
        st.sampled_from(TIMES),
        st.sampled_from(AMOUNTS),
    ),
    min_size=1,
    max_size=25,
).map(lambda rows: [_fact(*row, n) for n, row in enumerate(rows)])


@contextlib.contextmanager
def _undone() -> Iterator[None]:
    """What is done inside is rolled back (a savepoint): the log starts empty again."""
    with transaction.atomic():
        yield
        transaction.set_rollback(True)


@pytest.mark.django_db
@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(batch=facts, data=st.data())
def test_delivery_order_duplicates_and_batching_do_not_matter(
    batch: list[dict[str, Any]], data: Any
) -> None:
    with _undone():
        ingest(batch, source="test")
        expected = snapshot()

    with _undone():
        duplicates = data.draw(st.lists(st.sampled_from(batch), max_size=10))
        shuffled = data.draw(st.permutations(batch + duplicates))
        cut = data.draw(st.integers(0, len(shuffled)))
        first = ingest(shuffled[:cut], source="test")
        second = ingest(shuffled[cut:], source="test")
        assert first.rejected + second.rejected == 0
        assert first.accepted + second.accepted == len(batch)
        assert snapshot() == expected

        call_command("rebuild_projections", verbosity=0)
        assert snapshot() == expected


@pytest.mark.django_db
def test_rebuild_reproduces_read_models_exactly() -> None:
    batch = [
        events.registered("u_1", occurred_at="2026-11-20T08:00:00Z"),
        events.fill("u_1", order_id="a", realized_pnl="-40", occurred_at="2026-11-20T09:00:00Z"),
        events.fill("u_1", order_id="a", realized_pnl="15", occurred_at="2026-11-20T09:00:05Z"),
        events.wallet("u_1", available="500", occurred_at="2026-11-20T09:10:00Z"),
        events.holding("u_1", amount="12000", occurred_at="2026-11-20T09:20:00Z"),
        events.positions("u_1", occurred_at="2026-11-20T09:30:00Z"),
    ]
    for event in batch:
        ingest([event], source="test")
    before = snapshot()
    assert before["closed_orders"][0][5] == Decimal("-25")
    call_command("rebuild_projections", verbosity=0)
    assert snapshot() == before
