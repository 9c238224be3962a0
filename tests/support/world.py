"""A small world with numbers worked out by hand, built through the apps' own
services and jobs at frozen instants (RULES.md's rules give every figure):

- users: ``r_1`` refers ``u_1``, who refers ``e_1``; ``u_sub`` is a sub-account
  of ``u_1``; ``u_2`` is disqualified from campaigns on 2026-11-12.
- campaign ``winter`` (funded 100,000 USDT on 2026-10-20; 8% cards, 7 USDT
  prizes): ``u_1`` and ``u_2`` register on 11-02. On 11-03 ``u_1`` trades 3,300
  of valid volume (an opening fill of 2,000 and 13 losing orders of 100
  notional, 20 USDT loss each); on 11-04 ``u_2`` trades 50. On 11-05 ``u_1``
  draws the 8% card and both spin one daily prize of 7. The draw covers
  round_half_up(8% x 13) = 1 order: a rebate of 20. On 11-16 ``u_1`` is issued
  27 (20 + 7); ``u_2``'s prize is void.
- voucher program ``welcome``: on 11-20 ``u_1`` gets a 50 voucher and ``u_2`` a
  30 one; ``u_1``'s order closed at 11:00 loses 12, compensated 12, paid 11-21.
- referrals, day 11-20: ``e_1``'s fill (fee 0.5) earns ``u_1`` 10% = 0.05;
  ``u_1``'s voucher order (fee 0.5) earns ``r_1`` 0.05; both paid 11-21.
- Earn: ``u_1`` active from 11-19 with 25,000 USDT principal and 100,000 of
  positions: 25,000 x 15% / 365 = 10.2739726 for 11-20, paid 11-21.
- quarantine: two inputs of ``u_1`` (one invalid, one unprocessable stream
  entry) and one of ``u_10``.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from decimal import Decimal

from campaigns import services as campaign_services
from campaigns.models import Campaign
from earn.services import set_active
from jobs.runner import run_job
from ledger.bookkeeping import fund_account, open_funding_account
from ledger.ingestion import ingest, quarantine_unprocessable
from referrals.models import ReferralCode
from tests import events
from tests.earn.conftest import btc_long
from tests.vouchers.conftest import make_program
from vouchers import services as voucher_services

Clock = Callable[[str], dt.datetime]
REGISTERED = "2026-01-01T00:00:00Z"
START = "2026-10-20T00:00:00Z"
END = "2026-11-21T03:00:00Z"


def instant(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


def _code(user_id: str) -> str:
    return ReferralCode.objects.get(user_id=user_id).code


def users() -> None:
    """The user directory and its referral relations (codes work for later registrations)."""
    ingest([events.registered("r_1", occurred_at=REGISTERED)], source="test")
    ingest(
        [
            events.registered("u_1", referral_code=_code("r_1"), occurred_at=REGISTERED),
            events.registered("u_2", occurred_at=REGISTERED),
            events.registered(
                "u_sub", account_type="sub", parent_user_id="u_1", occurred_at=REGISTERED
            ),
        ],
        source="test",
    )
    ingest(
        [events.registered("e_1", referral_code=_code("u_1"), occurred_at=REGISTERED)],
        source="test",
    )


def fund(program: str, asset: str, amount: str) -> None:
    fund_account(
        account=open_funding_account(program=program, asset=asset),
        amount=Decimal(amount),
        idempotency_key=f"{program}-{asset}-budget",
        by="finance",
    )


def pools() -> None:
    """Funding of the programs other than campaigns (made at START)."""
    make_program(funding="10000")
    fund("referrals", "USDT", "1000")
    fund("earn", "USDT", "1000")
    fund("earn", "USDC", "1000")


def campaign_life(campaign: Campaign, clock: Clock) -> None:
    """Registration to issuance of ``winter``; ``u_1`` and ``u_2`` are invited."""
    clock("2026-11-02T00:00:00Z")
    campaign_services.register(campaign, "u_1")
    campaign_services.register(campaign, "u_2")
    clock("2026-11-05T00:00:00Z")
    start = instant("2026-11-03T01:00:00Z")
    ingest(
        [
            events.fill(
                "u_1",
                order_id="vol",
                action="open",
                notional="2000",
                occurred_at="2026-11-03T00:00:00Z",
            ),
            *[
                events.fill(
                    "u_1",
                    order_id=f"L{n:02d}",
                    realized_pnl="-20",
                    notional="100",
                    occurred_at=(start + dt.timedelta(minutes=n)).isoformat(),
                )
                for n in range(1, 14)
            ],
            events.fill(
                "u_2",
                order_id="small",
                action="open",
                notional="50",
                occurred_at="2026-11-04T00:00:00Z",
            ),
        ],
        source="test",
    )
    run_job("refresh_spins", at=instant("2026-11-05T00:05:00Z"))
    campaign_services.spin(campaign, "u_1", "coverage")
    campaign_services.spin(campaign, "u_1", "daily")
    campaign_services.spin(campaign, "u_2", "daily")
    clock("2026-11-12T00:00:00Z")
    ingest([events.risk("u_2", occurred_at="2026-11-12T00:00:00Z")], source="test")
    run_job("draw_coverage", at=clock("2026-11-15T01:00:00Z"))
    run_job("issue_campaign_bonuses", at=clock("2026-11-16T09:30:00Z"))


def programs_life(clock: Clock) -> None:
    """Vouchers, referrals and Earn of 2026-11-20, paid on 11-21, then quarantine."""
    clock("2026-11-19T12:00:00Z")
    set_active("u_1", True)
    ingest(
        [
            events.wallet("u_1", available="25000", occurred_at="2026-11-19T12:00:00Z"),
            events.positions("u_1", items=[btc_long("100000")], occurred_at="2026-11-19T12:00:00Z"),
        ],
        source="test",
    )
    for hour in (0, 8):  # each taken once its 5-minute lateness window is over
        run_job("earn_snapshot", at=clock(f"2026-11-20T{hour:02d}:05:00Z"))
    clock("2026-11-20T10:00:00Z")
    voucher_services.grant_vouchers(
        [
            voucher_services.Grant("g-u1", "u_1", "welcome", "fifty"),
            voucher_services.Grant("g-u2", "u_2", "welcome", "thirty"),
        ],
        source="test",
    )
    clock("2026-11-20T11:30:00Z")
    ingest(
        [
            events.fill(
                "u_1", order_id="v1", realized_pnl="-12", occurred_at="2026-11-20T11:00:00Z"
            ),
            events.fill("e_1", order_id="e1", action="open", occurred_at="2026-11-20T11:00:00Z"),
        ],
        source="test",
    )
    run_job("consume_vouchers", at=clock("2026-11-20T12:00:00Z"))
    run_job("earn_snapshot", at=clock("2026-11-20T16:05:00Z"))
    day = dt.date(2026, 11, 20)
    clock("2026-11-21T00:15:00Z")
    run_job("settle_referrals", day=day)
    clock("2026-11-21T00:20:00Z")
    run_job("accrue_earn_interest", day=day)
    clock("2026-11-21T00:30:00Z")
    run_job("pay_voucher_compensation", day=day)
    clock("2026-11-21T00:40:00Z")
    run_job("distribute_earn_interest", day=day)
    clock("2026-11-21T01:00:00Z")
    run_job("distribute_referral_commissions", day=day)
    clock("2026-11-21T02:00:00Z")
    ingest(
        [
            events.fill("u_1", order_id="bad", notional="lots", occurred_at="2026-11-21T01:59:00Z"),
            events.fill(
                "u_10", order_id="bad", notional="lots", occurred_at="2026-11-21T01:59:00Z"
            ),
        ],
        source="stream",
    )
    # A stream entry without an "event" field, kept as its fields: the event
    # is a JSON string inside, its quotes escaped.
    quarantine_unprocessable(
        {"payload": json.dumps({"user_id": "u_1", "type": "trade.filled"})},
        source="stream",
        message="failed 5 deliveries",
    )
    clock(END)


def build(clock: Clock) -> Campaign:
    """The whole world, campaign included."""
    from tests.campaigns.conftest import make_campaign

    clock(START)
    users()
    pools()
    campaign = make_campaign("winter")
    campaign_services.invite(campaign, ["u_1", "u_2"], source="test")
    campaign_life(campaign, clock)
    programs_life(clock)
    return campaign
