"""Backtests of draft referral terms and draft Earn terms over hand-built
histories, figures worked out by hand from RULES.md (sections 3 and 4).
Window: 2026-11-03 to 2026-11-04 in both.

**Referrals.** ``r_a`` refers ``e_1`` and ``e_3``, ``r_b`` refers ``e_2``.
MX: ``r_a`` 15,000 from 10-01 and 100,000 from 11-04 12:00; ``r_b`` 120,000
from 10-01. ``r_b`` is a live community partner since 10-15. Live terms
(from 10-01): futures 10% / 20% from 10,000 / 30% from 100,000, no partner
rate; spot 30% flat. The draft's futures terms: 10% / 25% from 10,000 / 40%
from 100,000, partner rate 50% (spot is not in the draft: its live 30% stays).
The rate is the referrer's as of the end of the fill's day.

- 11-03 ``e_1`` futures fee 2 USDT: ``r_a`` 15,000 MX -> 25%: 0.5
- 11-03 ``e_2`` futures fee 4 USDT: ``r_b`` partner -> 50%: 2
- 11-03 ``e_1`` margin fee 5, and a futures fill with fee 0: nothing
- 11-04 ``e_1`` futures fee 1 USDT: ``r_a`` 100,000 MX at the day's end -> 40%: 0.4
- 11-04 ``e_3`` spot fee 3 USDT: live spot terms 30%: 0.9
- 11-04 ``e_2`` futures fee 0.001 ETH: partner 50%: 0.0005 ETH
- 11-02 and 11-05 fills (fee 10, 7) are outside the window.

Commissions (rows, one per referee, day, program and asset): **5**, 5 fills;
futures USDT 3 rows = 0.5 + 2 + 0.4 = **2.9**, spot USDT **0.9**, futures ETH
**0.0005**. Cost per day USDT: 11-03 0.5 + 2 = **2.5**, 11-04 0.4 + 0.9 =
**1.3**, total **3.8**: the budget of 3 USDT runs out on **11-04**. Payouts:
11-03 ``r_a`` and ``r_b`` in USDT, 11-04 ``r_a`` USDT and ``r_b`` ETH: **4**
payouts to **2** referrers. Live, only 11-03 was settled, with the live
futures terms: ``r_a`` 20% x 2 = 0.4, ``r_b`` 30% x 4 = 1.2: **1.6** (its 11-02
commission of 10% x 10 = 1 is outside the window).

**Earn.** Draft: USDT only, threshold 50,000, boosted principal 10,000 at 20%,
base 5%, snapshots at 00:00, 08:00, 16:00. Interest = portion x APR / 365,
rounded down to 8 places once per user and day.

- ``a_1`` active since 10-20, 36,500 USDT and a BTC long worth 60,000 (V >=
  50,000: boosted); 11-03: P 36,500: 10,000 x 0.20 / 365 + 26,500 x 0.05 /
  365 = 2,000 / 365 + 1,325 / 365 = 3,325 / 365 = 9.109589041... ->
  **9.10958904**. At 11-04 09:00 the wallet falls to 20,000: P = lowest of
  36,500, 36,500, 20,000 = 20,000: 2,000 / 365 + 500 / 365 = 2,500 / 365 =
  6.849315068... -> **6.84931506**.
- ``a_2`` activates 11-03 10:00 with 7,300: 11-03 P = 0 (inactive at 00:00
  and 08:00); 11-04: 7,300 x 0.05 / 365 = **1**.
- ``a_3`` active since 10-20 with 3,650, deactivates 11-04 12:00: 11-03:
  3,650 x 0.05 / 365 = **0.5**; 11-04 P = 0 (inactive at 16:00).

Per day: 11-03 9.10958904 + 0.5 = **9.60958904**; 11-04 6.84931506 + 1 =
**7.84931506**; total **17.4589041**: the budget of 10 USDT runs out on
**11-04**. Users earning 3, at the boosted APR 1. Live (default terms: 15% on
25,000 from a mean position of 100,000, else 3%), 11-03 accrued only: ``a_1``
V 60,000 < 100,000: 36,500 x 0.03 / 365 = 3; ``a_3`` 3,650 x 0.03 / 365 = 0.3:
**3.3**.
"""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from django.core.management import CommandError, call_command

from earn.models import EarnTerms
from earn.services import set_active
from jobs.runner import run_job
from ledger.ingestion import ingest
from referrals import services as referral_services
from referrals.models import ProgramTerms, ReferralCode
from tests import events
from tests.earn.conftest import btc_long
from tests.replay.test_backtest import _figures, _row_counts
from tests.support import world

pytestmark = pytest.mark.django_db(transaction=True)

WINDOW = ("--from", "2026-11-03", "--to", "2026-11-04")

REFERRAL_DRAFT = """
referral_programs:
  - program: futures
    effective_from: "2027-01-01T00:00:00Z"
    validity_days: 1080
    tiers: [{min_mx: "0", rate: "0.10"}, {min_mx: "10000", rate: "0.25"}, {min_mx: "100000", rate: "0.40"}]
    partner_rate: "0.50"
funding_accounts:
  - program: referrals
    asset: USDT
    top_ups: [{key: referrals-2027, amount: "3"}]
"""

EARN_DRAFT = """
earn_terms:
  - effective_from: "2027-01-01"
    assets: [USDT]
    position_threshold: "50000"
    boosted_principal: "10000"
    boosted_apr: "0.20"
    base_apr: "0.05"
funding_accounts:
  - program: earn
    asset: USDT
    top_ups: [{key: earn-2027, amount: "10"}]
"""


def _backtest(tmp_path: Path, draft: str, live: str) -> dict[str, Any]:
    """Run the draft over the window and return its report; the live
    database's row counts are the same after as before."""
    path = tmp_path / "draft.yaml"
    path.write_text(draft)
    out = tmp_path / "report.json"
    before = _row_counts()
    call_command("backtest", str(path), *WINDOW, "--seed", "programs", "--live", live,
                 "--json", str(out))  # fmt: skip
    assert _row_counts() == before, "the live database was written to"
    report: dict[str, Any] = json.loads(out.read_text())
    return report


# --- referrals -----------------------------------------------------------------------


def _referral_history(clock: world.Clock) -> None:
    clock("2026-10-01T00:00:00Z")
    ingest(
        [events.registered(u, occurred_at=world.REGISTERED) for u in ("r_a", "r_b")], source="test"
    )

    def code(user: str) -> str:
        return ReferralCode.objects.get(user_id=user).code

    ingest(
        [
            events.registered("e_1", referral_code=code("r_a"), occurred_at=world.REGISTERED),
            events.registered("e_2", referral_code=code("r_b"), occurred_at=world.REGISTERED),
            events.registered("e_3", referral_code=code("r_a"), occurred_at=world.REGISTERED),
            events.holding("r_a", amount="15000", occurred_at="2026-10-01T00:00:00Z"),
            events.holding("r_b", amount="120000", occurred_at="2026-10-01T00:00:00Z"),
        ],
        source="test",
    )
    start = world.instant("2026-10-01T00:00:00Z")
    referral_services.save_terms(
        program="futures",
        effective_from=start,
        validity_days=1080,
        tiers=[
            {"min_mx": "0", "rate": "0.10"},
            {"min_mx": "10000", "rate": "0.20"},
            {"min_mx": "100000", "rate": "0.30"},
        ],
        partner_rate=None,
    )
    referral_services.save_terms(
        program="spot",
        effective_from=start,
        validity_days=None,
        tiers=[{"min_mx": "0", "rate": "0.30"}],
        partner_rate=None,
    )
    clock("2026-10-15T00:00:00Z")
    referral_services.set_partner("r_b", partner=True, by="ops", note="community")
    clock("2026-11-05T12:00:00Z")

    def futures(user: str, n: int, fee: str, at: str, **kw: Any) -> dict[str, Any]:
        return events.fill(user, order_id=f"{user}-{n}", action="open", fee=fee,
                           occurred_at=at, **kw)  # fmt: skip

    ingest(
        [
            futures("e_1", 0, "10", "2026-11-02T10:00:00Z"),
            futures("e_1", 1, "2", "2026-11-03T09:00:00Z"),
            futures("e_2", 1, "4", "2026-11-03T10:00:00Z"),
            futures("e_1", 2, "5", "2026-11-03T11:00:00Z", market="margin"),
            futures("e_1", 3, "0", "2026-11-03T12:00:00Z"),
            futures("e_1", 4, "1", "2026-11-04T09:00:00Z"),
            futures("e_3", 1, "3", "2026-11-04T10:00:00Z", market="spot"),
            futures("e_2", 2, "0.001", "2026-11-04T11:00:00Z", fee_asset="ETH"),
            futures("e_1", 5, "7", "2026-11-05T01:00:00Z"),
            events.holding("r_a", amount="100000", occurred_at="2026-11-04T12:00:00Z"),
        ],
        source="test",
    )
    # Live, only 11-03 is settled so far (with the live terms).
    run_job("settle_referrals", day=dt.date(2026, 11, 3))


def test_backtest_of_draft_referral_terms_settles_and_pays_the_window_by_hand(
    clock: world.Clock, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _referral_history(clock)
    live_terms = list(ProgramTerms.objects.values_list("program", "effective_from"))

    report = _backtest(tmp_path, REFERRAL_DRAFT, "referrals")

    text = capsys.readouterr().out
    assert text.startswith("FORECAST")
    assert "runs out on 2026-11-04" in text
    assert list(ProgramTerms.objects.values_list("program", "effective_from")) == live_terms
    assert report["section"] == "referral_programs" and report["job_failures"] == []
    figures = _figures(report["draft"])
    assert figures["commissions"] == "5"
    assert figures["  futures ETH"] == "1, 0.0005 ETH"
    assert figures["  futures USDT"] == "3, 2.9 USDT"
    assert figures["  spot USDT"] == "1, 0.9 USDT"
    assert figures["fills earning"] == "5"
    assert figures["referees earning"] == "3"
    assert figures["referrers earning"] == "2"
    assert figures["invalid rebates"] == "0"
    assert figures["commissions USDT"] == "3.8 USDT"
    assert figures["referrers paid"] == "2 (4 payouts)"
    assert figures["paid USDT"] == "3.8 USDT"
    assert figures["paid ETH"] == "0.0005 ETH"
    assert report["draft"]["cost_per_day"] == {"USDT": ["2.5", "1.3"], "ETH": ["0", "0.0005"]}
    assert report["draft"]["total"] == {"USDT": "3.8", "ETH": "0.0005"}
    assert report["budget"] == {"USDT": "3"}
    assert report["runs_out"] == {"USDT": "2026-11-04"}
    commissions = next(s for s in report["draft"]["series"] if s["key"] == "commissions")
    assert commissions["values"] == ["2", "3"]
    live = _figures(report["live"])
    assert live["  futures USDT"] == "2, 1.6 USDT"
    assert live["referrers paid"] == "0 (0 payouts)"
    assert report["live"]["cost_per_day"]["USDT"] == ["1.6", "0"]


# --- Earn ------------------------------------------------------------------------------


def _earn_history(clock: world.Clock) -> None:
    clock("2026-10-20T00:00:00Z")
    ingest(
        [
            *(events.registered(u, occurred_at=world.REGISTERED) for u in ("a_1", "a_2", "a_3")),
            events.wallet("a_1", available="36500", occurred_at="2026-10-20T00:00:00Z"),
            events.positions("a_1", items=[btc_long("60000")], occurred_at="2026-10-20T00:00:00Z"),
            events.wallet("a_2", available="7300", occurred_at="2026-10-20T00:00:00Z"),
            events.wallet("a_3", available="3650", occurred_at="2026-10-20T00:00:00Z"),
        ],
        source="test",
    )
    set_active("a_1", True)
    set_active("a_3", True)
    clock("2026-11-03T10:00:00Z")
    set_active("a_2", True)
    clock("2026-11-04T12:00:00Z")
    set_active("a_3", False)
    ingest(
        [events.wallet("a_1", available="20000", occurred_at="2026-11-04T09:00:00Z")],
        source="test",
    )
    # Live, only 11-03 is accrued so far (with the default terms).
    clock("2026-11-05T00:20:00Z")
    run_job("accrue_earn_interest", day=dt.date(2026, 11, 3))


def test_backtest_of_draft_earn_terms_accrues_and_pays_the_window_by_hand(
    clock: world.Clock, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _earn_history(clock)

    report = _backtest(tmp_path, EARN_DRAFT, "earn")

    text = capsys.readouterr().out
    assert "runs out on 2026-11-04" in text
    assert not EarnTerms.objects.exists()
    assert report["section"] == "earn_terms" and report["job_failures"] == []
    figures = _figures(report["draft"])
    assert figures["users active at a snapshot"] == "3"
    assert figures["users earning"] == "3"
    assert figures["  at the boosted APR"] == "1"
    assert figures["interest USDT"] == "4 days, 17.4589041 USDT"
    assert figures["paid USDT"] == "17.4589041 USDT"
    assert report["draft"]["cost_per_day"] == {"USDT": ["9.60958904", "7.84931506"]}
    assert report["draft"]["total"] == {"USDT": "17.4589041"}
    assert Decimal("9.60958904") <= Decimal(report["budget"]["USDT"]) == Decimal(10)
    assert report["runs_out"] == {"USDT": "2026-11-04"}
    earning = next(s for s in report["draft"]["series"] if s["key"] == "earning")
    assert earning["values"] == ["2", "2"]
    live = _figures(report["live"])
    assert live["users earning"] == "2" and live["  at the boosted APR"] == "0"
    assert report["live"]["cost_per_day"]["USDT"] == ["3.3", "0"]


# --- refusals ------------------------------------------------------------------------


def test_drafts_these_forecasts_cannot_place_are_refused_before_anything_is_made(
    tmp_path: Path,
) -> None:
    twice = tmp_path / "twice.yaml"
    twice.write_text(
        "referral_programs:\n"
        "  - {program: futures, tiers: [{min_mx: '0', rate: '0.1'}]}\n"
        "  - {program: futures, tiers: [{min_mx: '0', rate: '0.2'}]}\n"
    )
    with pytest.raises(CommandError, match="one set of terms per program"):
        call_command("backtest", str(twice), *WINDOW)
    two_terms = tmp_path / "earn.yaml"
    two_terms.write_text("earn_terms:\n  - {base_apr: '0.03'}\n  - {base_apr: '0.04'}\n")
    with pytest.raises(CommandError, match="one set of terms"):
        call_command("backtest", str(two_terms), *WINDOW)
