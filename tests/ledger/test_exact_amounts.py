"""Contract-valid amounts (20 integer digits, 18 decimals) are carried exactly
in the read models: their sums never overflow and are never rounded."""

from __future__ import annotations

from decimal import Decimal

import pytest

from ledger.ingestion import ingest
from ledger.models import ClosedOrder
from tests import events

pytestmark = pytest.mark.django_db

HALF = "60000000000000000000"  # 6e19: 20 integer digits, the contract allows it


def _two_closing_fills() -> list[dict[str, object]]:
    return [
        events.fill(
            "u_big",
            order_id="o_big",
            notional=HALF,
            realized_pnl=f"-{HALF}.000000000000000001",
            occurred_at=f"2026-11-20T10:00:0{n}Z",
            event_id=f"big-{n}",
        )
        for n in (1, 2)
    ]


@pytest.mark.parametrize("batches", [1, 2], ids=["one batch", "two batches"])
def test_two_closing_fills_of_6e19_make_one_order_of_exactly_1_2e20(batches: int) -> None:
    fills = _two_closing_fills()
    ordinary = events.fill("u_1", order_id="o_1", notional="1000", realized_pnl="-10")
    if batches == 1:
        reports = [ingest([*fills, ordinary], source="test")]
    else:
        reports = [ingest([fills[0]], source="test"), ingest([fills[1], ordinary], source="test")]
    assert sum(r.summary()["accepted"] for r in reports) == 3
    order = ClosedOrder.objects.get(user_id="u_big", order_id="o_big")
    assert order.closing_notional == Decimal("120000000000000000000")
    assert order.realized_pnl == Decimal("-120000000000000000000.000000000000000002")
    # The loss is the sum's absolute value, every digit of it (39 significant digits).
    assert str(order.loss) == "120000000000000000000.000000000000000002"
    assert order.closing_fills == 2
    # The user beside them is folded as ever.
    assert ClosedOrder.objects.get(user_id="u_1").loss == Decimal("10")
