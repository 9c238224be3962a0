"""Valid volume of contract-valid fills is summed exactly, whatever its size:
two fills of 6e19 make a day of exactly 1.2e20 (beyond NUMERIC(38, 18))."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from decimal import Decimal

from campaigns import services
from campaigns.jobs import refresh_spins
from campaigns.models import Campaign, DailyVolume, SpinAllowance
from ledger.ingestion import ingest
from tests import events
from tests.campaigns.conftest import instant

HALF = "60000000000000000000"


def test_two_fills_of_6e19_make_a_valid_volume_of_exactly_1_2e20(
    campaign: Campaign, clock: Callable[[str], dt.datetime]
) -> None:
    clock("2026-11-02T00:00:00Z")
    services.register(campaign, "u_1")
    services.register(campaign, "u_2")
    day = "2026-11-03T10:00:00Z"
    report = ingest(
        [
            events.fill("u_1", order_id="a", action="open", notional=HALF, occurred_at=day),
            events.fill("u_1", order_id="b", action="open", notional=HALF, occurred_at=day),
            events.fill("u_2", order_id="c", action="open", notional="1000", occurred_at=day),
        ],
        source="test",
    )
    assert report.summary() == {"accepted": 3, "duplicate": 0, "rejected": 0}
    assert sorted(DailyVolume.objects.values_list("user_id", "volume")) == [
        ("u_1", Decimal("120000000000000000000")),
        ("u_2", Decimal("1000")),
    ]
    assert refresh_spins(at=instant("2026-11-04T00:05:00Z")) == {"participants_refreshed": 2}
    huge = SpinAllowance.objects.get(user_id="u_1")
    assert huge.valid_volume == Decimal("120000000000000000000")
    assert huge.coverage_granted_at is not None and huge.daily_earned == 1
    # The user beside them reaches the target of 1,000 exactly, as ever.
    assert SpinAllowance.objects.get(user_id="u_2").valid_volume == Decimal("1000")
