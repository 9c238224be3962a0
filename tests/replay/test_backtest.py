"""Backtest: a draft campaign run over a hand-built history, figures worked out by hand.

History (all users known since 2026-01-01): ``u_1``, ``u_2`` and ``u_3`` main
accounts, ``u_sub`` a sub-account, ``u_bad`` disqualified from campaigns on
2026-10-01. The draft invites ``u_1``, ``u_2``, ``u_sub`` and ``u_bad``
(``u_3`` trades but is not invited); window 2026-11-03 to 2026-11-04.

- Participants (RULES.md 1, eligibility): ``u_1`` and ``u_2``; ``u_sub`` is a
  sub-account, ``u_bad`` disqualified, ``u_3`` not invited: **2**.
- 11-03: ``u_1`` opens for 2,000 and closes 13 losing orders (notional 100,
  loss 20 each): valid volume 3,300, past the target of 1,000: a coverage spin
  (one-entry card table: the 8% card) and a daily spin. 11-04: ``u_1`` closes
  one more losing order (notional 100, loss 20) and ``u_2`` trades 500 (under
  the target): one daily spin each. Daily spins: **3**, 7 USDT each = 21.
- Covered orders (RULES.md 1, draw): ``u_1`` has n = 14 losing orders in
  scope (the order of 11-02 is before registration and before the window):
  k = round_half_up(8% x 14 = 1.12) = **1**, rebated its loss of 20 capped at
  15 = 15. Cost **36 USDT**; the proposed budget of 30 runs out on 11-04.
"""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command
from django.db import connection
from django.test import Client

from campaigns import rules, services
from campaigns.models import Campaign
from config.celery import app as celery_app
from ledger.ingestion import ingest
from replay.models import Backtest, BacktestStatus
from tests import events
from tests.support import world

pytestmark = pytest.mark.django_db(transaction=True)

SEED = "ab" * 32
SLUG = "spring-draft"
DRAFT = f"""
campaigns:
  - slug: {SLUG}
    title: Spring loss coverage
    starts_at: "2027-03-01T00:00:00Z"
    ends_at: "2027-03-15T00:00:00Z"
    volume_target: "1000"
    cap_per_order: "15"
    cards: [{{percent: "8", weight: 1}}]
    prizes: [{{amount: "7", weight: 1}}]
    invitations: [u_1, u_2, u_sub, u_bad]
funding_accounts:
  - program: "campaign:{SLUG}"
    asset: USDT
    top_ups: [{{key: spring-initial, amount: "30"}}]
"""


def _users(clock: world.Clock) -> None:
    clock("2026-10-20T00:00:00Z")
    ingest(
        [
            *(events.registered(u, occurred_at=world.REGISTERED) for u in ("u_1", "u_2", "u_3")),
            events.registered(
                "u_sub", account_type="sub", parent_user_id="u_1", occurred_at=world.REGISTERED
            ),
            events.registered("u_bad", occurred_at=world.REGISTERED),
            events.risk("u_bad", occurred_at="2026-10-01T00:00:00Z"),
        ],
        source="test",
    )


def _fills(clock: world.Clock) -> None:
    clock("2026-11-05T00:00:00Z")
    losing = [
        events.fill(
            "u_1",
            order_id=f"L{n:02d}",
            realized_pnl="-20",
            notional="100",
            occurred_at=f"2026-11-03T02:{n:02d}:00Z",
        )
        for n in range(1, 14)
    ]
    ingest(
        [
            events.fill(
                "u_1", order_id="old", realized_pnl="-20", occurred_at="2026-11-02T10:00:00Z"
            ),
            events.fill(
                "u_1",
                order_id="vol",
                action="open",
                notional="2000",
                occurred_at="2026-11-03T01:00:00Z",
            ),
            *losing,
            events.fill(
                "u_1",
                order_id="L14",
                realized_pnl="-20",
                notional="100",
                occurred_at="2026-11-04T09:00:00Z",
            ),
            events.fill(
                "u_2",
                order_id="u2",
                realized_pnl="5",
                notional="500",
                occurred_at="2026-11-04T10:00:00Z",
            ),
            events.fill(
                "u_3",
                order_id="u3",
                realized_pnl="-50",
                notional="9000",
                occurred_at="2026-11-03T05:00:00Z",
            ),
            events.fill(
                "u_sub",
                order_id="s",
                realized_pnl="-50",
                notional="9000",
                occurred_at="2026-11-03T05:00:00Z",
            ),
        ],
        source="test",
    )


def _live_campaign(clock: world.Clock) -> None:
    """A live campaign over the same days, with ``u_1`` registered (and nothing drawn yet)."""
    clock("2026-11-01T00:00:00Z")
    live = services.create_campaign(
        slug="autumn",
        title="Autumn",
        starts_at=world.instant("2026-11-03T00:00:00Z"),
        ends_at=world.instant("2026-11-05T00:00:00Z"),
        registration_opens_at=world.instant("2026-11-01T00:00:00Z"),
        registration_closes_at=world.instant("2026-11-05T00:00:00Z"),
    )
    services.invite(live, ["u_1"], source="test")
    services.register(live, "u_1")


def _row_counts() -> dict[str, int]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT table_name FROM information_schema.tables"
            " WHERE table_schema = 'public' AND table_type = 'BASE TABLE' ORDER BY 1"
        )
        tables = [name for (name,) in cursor.fetchall()]
        counts = {}
        for table in tables:
            cursor.execute(f'SELECT count(*) FROM "{table}"')  # noqa: S608 - names from the catalogue
            counts[table] = int(cursor.fetchone()[0])
    return counts


def _figures(part: dict[str, Any]) -> dict[str, str]:
    return {label: value for label, value in part["figures"]}


def _covered_order() -> str:
    """The order the draw covers: the smallest ticket of u_1's 14 (rules.draw_orders)."""
    orders = [rules.LosingOrder(f"L{n:02d}", Decimal(20)) for n in range(1, 15)]
    result = rules.draw_orders(
        seed=SEED,
        slug=SLUG,
        user_id="u_1",
        percent=Decimal(8),
        first_losing_orders=orders,
        cap=Decimal(15),
    )
    assert result.covered == 1
    return result.chosen[0][0].order_id


def test_backtest_of_a_draft_campaign_reports_the_figures_worked_out_by_hand(
    clock: world.Clock, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _users(clock)
    _live_campaign(clock)
    _fills(clock)
    draft = tmp_path / "draft.yaml"
    draft.write_text(DRAFT)
    out = tmp_path / "report.json"
    before = _row_counts()

    call_command(
        "backtest", str(draft), "--from", "2026-11-03", "--to", "2026-11-04",
        "--seed", SEED, "--live", "autumn", "--json", str(out),
    )  # fmt: skip

    assert _row_counts() == before, "the live database was written to"
    assert not Campaign.objects.filter(slug=SLUG).exists()
    text = capsys.readouterr().out
    assert text.startswith("FORECAST")
    assert "runs out on 2026-11-04" in text
    report = json.loads(out.read_text())
    assert report["forecast"] is True and report["seed"] == SEED
    figures = _figures(report["draft"])
    assert figures["invited"] == "4"
    assert figures["participants"] == "2"
    assert figures["coverage spins (cards drawn)"] == "1"
    assert figures["  8% cards"] == "1 (100.0%)"
    assert figures["daily spins"] == "3"
    assert figures["losing orders in scope (n)"] == "14"
    assert figures["covered orders (k)"] == "1"
    assert figures["coverage rebates"] == "1, 15 USDT"
    assert figures["daily prizes"] == "3, 21 USDT"
    assert figures["rewards"] == "4, 36 USDT"
    # Per day: u_1's first daily spin on 11-03, the other two on 11-04; the
    # rebate on the day its order closed.
    covered_on_first_day = _covered_order() != "L14"
    assert report["draft"]["cost_per_day"]["USDT"] == (
        ["22", "14"] if covered_on_first_day else ["7", "29"]
    )
    assert report["draft"]["total"] == {"USDT": "36"}
    assert report["budget"] == {"USDT": "30"}
    assert report["runs_out"] == {"USDT": "2026-11-04"}
    covered = next(s for s in report["draft"]["series"] if s["key"] == "covered")
    assert covered["values"] == (["1", "0"] if covered_on_first_day else ["0", "1"])
    assert report["job_failures"] == []
    live = _figures(report["live"])
    assert live["participants"] == "1" and live["rewards"] == "0, 0 USDT"


def test_a_section_backtest_does_not_forecast_is_refused_before_anything_is_made(
    tmp_path: Path,
) -> None:
    draft = tmp_path / "vouchers.yaml"
    draft.write_text("voucher_programs:\n  - slug: welcome\n    title: Welcome\n")
    with pytest.raises(CommandError, match="does not forecast the section 'voucher_programs'"):
        call_command("backtest", str(draft), "--from", "2026-11-03", "--to", "2026-11-04")


def test_a_draft_campaign_without_dates_is_refused_before_anything_is_made(
    tmp_path: Path,
) -> None:
    draft = tmp_path / "undated.yaml"
    draft.write_text("campaigns:\n  - slug: undated\n    title: Undated\n")
    with pytest.raises(CommandError, match=r"campaigns\[0\]\.starts_at: required"):
        call_command("backtest", str(draft), "--from", "2026-11-03", "--to", "2026-11-04")


def test_ops_start_a_backtest_in_the_admin_and_its_page_shows_the_charts(
    clock: world.Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    _users(clock)
    _fills(clock)
    # No worker in tests: the task runs when the request commits.
    monkeypatch.setitem(celery_app.conf, "task_always_eager", True)
    client = Client()
    client.force_login(User.objects.create_superuser("ops-backtest", password="a-long-password-1"))
    response = client.post(
        "/admin/replay/backtest/add/",
        {"draft": DRAFT, "first_day": "2026-11-03", "last_day": "2026-11-04", "seed": SEED,
         "live": "", "step_minutes": "60"},
    )  # fmt: skip
    assert response.status_code == 302, response.content.decode()[-2000:]
    run = Backtest.objects.get()
    assert run.status == BacktestStatus.SUCCEEDED, run.error
    assert run.requested_by == "ops-backtest"
    page = client.get(f"/admin/replay/backtest/{run.pk}/change/").content.decode()
    assert "FORECAST" in page
    for chart in ("chart-cost-USDT", "chart-budget-USDT", "chart-covered", "chart-spins"):
        assert f'id="{chart}"' in page
    assert 'id="dashboard-charts"' in page and "dashboard.js" in page
    assert "runs out on 2026-11-04" in page


def test_a_draft_the_admin_cannot_backtest_is_refused_in_the_form(db: None) -> None:
    client = Client()
    client.force_login(User.objects.create_superuser("ops-refused", password="a-long-password-1"))
    response = client.post(
        "/admin/replay/backtest/add/",
        {
            "draft": "earn: []",
            "first_day": "2026-11-03",
            "last_day": "2026-11-04",
            "step_minutes": "60",
        },
    )
    assert response.status_code == 200
    assert "does not forecast the section" in response.content.decode()
    assert not Backtest.objects.exists()


def test_operators_start_backtests_and_every_staff_role_reads_them(db: None) -> None:
    from django.contrib.auth.models import Group

    from access.roles import sync_staff_groups

    sync_staff_groups()
    for role, may_add in (("viewer", False), ("operator", True), ("finance", False)):
        user = User.objects.create_user(f"bt-{role}", password="a-long-password-1", is_staff=True)
        user.groups.add(Group.objects.get(name=role))
        client = Client()
        client.force_login(user)
        assert client.get("/admin/replay/backtest/").status_code == 200, role
        assert client.get("/admin/replay/backtest/add/").status_code == (200 if may_add else 403)
