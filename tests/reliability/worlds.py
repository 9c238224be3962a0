"""The worlds the payout jobs are raced in, one per job, built through the
programs' own services, ingestion and jobs, with every amount owed known by
construction.

    DATABASE_URL=<a migrated, empty database> python -m tests.reliability.worlds vouchers

Each builder leaves the job's payable items recorded and unpaid, and returns
per user, asset and account what the rules owe, summed here from the amounts
the builder chose (RULES.md arithmetic, not the job code). The suite then
writes it beside the program's own record of the items and refuses the world
unless the two agree to the last digit (``harness.record_world``).

The days: D-1 = 2026-11-19, D = 2026-11-20, D+1 = 2026-11-21 (the incident's
days). Vouchers, referrals and Earn owe money for each of the three days; the
campaign ran 2026-11-01 to 11-08 and was drawn at 11-08 01:00.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import random
import sys
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from decimal import ROUND_DOWN, Decimal
from typing import Any

from tests.reliability.harness import D0, D1, D2

DAYS = (D0, D1, D2)
CHUNK = 5_000
SOURCE = "reliability"
UNIT = Decimal("0.00000001")

Owed = dict[tuple[str, str, str], Decimal]


def _set_clock(text: str) -> dt.datetime:
    os.environ["FROZEN_NOW"] = text
    return _instant(text)


def _instant(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


def _chunks(items: Sequence[Any], size: int = CHUNK) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _ingest(events: Sequence[dict[str, Any]]) -> None:
    from ledger.ingestion import ingest

    for part in _chunks(events):
        summary = ingest(part, source=SOURCE).summary()
        if summary["accepted"] != len(part):
            raise RuntimeError(f"the world's events were not all accepted: {summary}")


def _event(event_id: str, type_: str, at: str, user: str, data: dict[str, Any]) -> dict[str, Any]:
    return {"event_id": event_id, "type": type_, "occurred_at": at, "user_id": user, "data": data}


def _registered(user: str, *, at: str = "2026-01-01T00:00:00Z", code: str | None = None) -> dict:
    return _event(
        f"reg-{user}",
        "user.registered",
        at,
        user,
        {"account_type": "main", "parent_user_id": None, "referral_code": code},
    )


def _fill(
    event_id: str,
    user: str,
    at: str,
    *,
    order: str,
    action: str = "close",
    pnl: Decimal = Decimal(0),
    notional: str = "1000",
    fee: Decimal = Decimal("0.5"),
    fee_asset: str = "USDT",
) -> dict[str, Any]:
    return _event(
        event_id,
        "trade.filled",
        at,
        user,
        {
            "order_id": order,
            "symbol": "BTC_USDT",
            "market": "usdt_m",
            "action": action,
            "side": "long",
            "quantity": "0.01",
            "price": "100000",
            "notional": notional,
            "fee": format(fee, "f"),
            "fee_asset": fee_asset,
            "fee_rate": "0.0005",
            "realized_pnl": format(pnl, "f") if action == "close" else "0",
            "origin": "manual",
            "promo_funding": [],
        },
    )


def _fund(program: str, asset: str, amount: int) -> None:
    from ledger.bookkeeping import fund_account, open_funding_account

    fund_account(
        account=open_funding_account(program=program, asset=asset),
        amount=Decimal(amount),
        idempotency_key=f"reliability-{program}-{asset}",
        by="reliability",
    )


def _amount(rng: random.Random, low: int, high: int, places: int) -> Decimal:
    """A random amount in [low, high) with exactly ``places`` decimal places."""
    return Decimal(rng.randrange(low * 10**places, high * 10**places)).scaleb(-places)


def _floor(amount: Decimal) -> Decimal:
    return amount.quantize(UNIT, rounding=ROUND_DOWN)


# --- vouchers ----------------------------------------------------------------------------


def vouchers(users: int = 5_100) -> Owed:
    """``users`` users, each granted one 100 USDT voucher on 11-18 and losing two
    orders on two of the three days, 1.50-40.00 USDT each (one user in ten with
    losses of 11 decimal places): every loss is covered in full, so each
    user is owed the sum of their losses. 10,200 consumptions."""
    from jobs.runner import run_job
    from vouchers import services

    _set_clock("2026-11-18T00:00:00Z")
    ids = [f"v_{n:05d}" for n in range(users)]
    _ingest([_registered(u) for u in ids])
    program = services.save_program(slug="race", title="Race vouchers")
    services.save_template(
        program=program, code="hundred", face_value=Decimal(100), validity_days=10
    )
    _fund(program.funding_program, "USDT", 10_000_000)
    _set_clock("2026-11-18T12:00:00Z")
    report = services.grant_vouchers(
        [services.Grant(f"race:{u}", u, "race", "hundred") for u in ids], source=SOURCE
    )
    if report.granted != users:
        raise RuntimeError(f"vouchers granted: {report.granted} of {users}")
    rng = random.Random(2026_11_20)
    owed: Owed = defaultdict(Decimal)
    fills = []
    for n, user in enumerate(ids):
        fine = n % 10 == 0
        for k in range(2):
            day = DAYS[(n + k) % 3]
            loss = _amount(rng, 1, 40, 11) if fine else _amount(rng, 2, 40, 2)
            loss = max(loss, Decimal("1.5"))  # an eligible order loses more than 1 USDT
            at = f"{day}T{10 + k:02d}:{(n // 60) % 60:02d}:{n % 60:02d}Z"
            fills.append(_fill(f"vo-{n}-{k}", user, at, order=f"vo-{n}-{k}", pnl=-loss))
            owed[(user, "USDT", "spot")] += loss
    _ingest(fills)
    _set_clock("2026-11-22T00:00:30Z")
    run_job("consume_vouchers", at=_instant("2026-11-22T00:00:00Z"))
    return owed


# --- campaigns ---------------------------------------------------------------------------


def campaigns(users: int = 2_600) -> Owed:
    """One campaign (11-01 to 11-08, one 8% card, daily prizes of 7 USDT) and
    ``users`` invited and registered users, each losing 7 orders of the same
    loss (2-400 USDT; one in ten of 11 decimal places) over three days of
    100 USDT of volume each: 3 daily prizes (21 USDT) and one order covered
    (8% of 7 rounds to 1), rebated its loss rounded down. One user in fifty is
    disqualified after spinning: their rewards are void. 10,192 rewards owed."""
    from campaigns import services
    from jobs.runner import run_job
    from ledger.event_store import DomainEvent, append_domain_events

    _set_clock("2026-10-20T00:00:00Z")
    ids = [f"c_{n:05d}" for n in range(users)]
    _ingest([_registered(u) for u in ids])
    campaign = services.create_campaign(
        slug="race",
        title="Race loss coverage",
        starts_at=_instant("2026-11-01T00:00:00Z"),
        ends_at=_instant("2026-11-08T00:00:00Z"),
        registration_opens_at=_instant("2026-10-25T00:00:00Z"),
        registration_closes_at=_instant("2026-11-08T00:00:00Z"),
        volume_target=Decimal(500),
        lateness=dt.timedelta(hours=1),
        card_table=[{"percent": "8", "weight": 1}],
        prize_table=[{"amount": "7", "weight": 1}],
    )
    _fund(campaign.funding_program, "USDT", 10_000_000)
    services.invite(campaign, ids, source=SOURCE)
    registered_at = _set_clock("2026-11-01T00:00:00Z")
    for part in _chunks(ids):
        append_domain_events(
            [
                DomainEvent(
                    f"campaign.registered:race:{u}",
                    "campaign.registered",
                    registered_at,
                    {"campaign": "race"},
                    user_id=u,
                )
                for u in part
            ]
        )
    rng = random.Random(2026_11_8)
    losses = {}
    fills = []
    for n, user in enumerate(ids):
        loss = _amount(rng, 2, 400, 11 if n % 10 == 0 else 2)
        losses[user] = loss
        for k, day in enumerate(("02", "02", "02", "03", "03", "04", "04")):
            at = f"2026-11-{day}T{10 + k:02d}:{(n // 60) % 60:02d}:{n % 60:02d}Z"
            fills.append(
                _fill(f"co-{n}-{k}", user, at, order=f"co-{n}-{k}", pnl=-loss, notional="100")
            )
    _ingest(fills)
    _set_clock("2026-11-07T23:55:00Z")
    run_job("refresh_spins", at=_instant("2026-11-07T23:55:00Z"))
    from campaigns.models import SpinAllowance

    allowances = SpinAllowance.objects.filter(
        campaign=campaign, coverage_granted_at__isnull=False, daily_earned=3
    ).count()
    if allowances != users:
        raise RuntimeError(f"{allowances} of {users} users earned their spins")
    # The events the spin endpoint appends (one user's spins through the
    # service are what tests/campaigns test; here there are 10,400).
    spin_at = _set_clock("2026-11-07T23:56:00Z")
    spins = []
    for user in ids:
        spins.append(
            DomainEvent(
                f"campaign.card_drawn:race:{user}",
                "campaign.card_drawn",
                spin_at,
                {"campaign": "race", "percent": "8"},
                user_id=user,
            )
        )
        spins += [
            DomainEvent(
                f"campaign.daily_prize_won:race:{user}:{number}",
                "campaign.daily_prize_won",
                spin_at,
                {"campaign": "race", "number": number, "amount": "7"},
                user_id=user,
            )
            for number in (1, 2, 3)
        ]
    for part in _chunks(spins):
        append_domain_events(part)
    disqualified = {u for n, u in enumerate(ids) if n % 50 == 7}
    _set_clock("2026-11-08T00:30:00Z")
    _ingest(
        [
            _event(
                f"risk-{u}",
                "risk.flagged",
                "2026-11-08T00:30:00Z",
                u,
                {"reason": "abuse", "measures": ["disqualify_campaigns"]},
            )
            for u in sorted(disqualified)
        ]
    )
    _set_clock("2026-11-08T01:00:00Z")
    run_job("draw_coverage", at=_instant("2026-11-08T01:00:00Z"))
    return {
        (u, "USDT", "futures_bonus"): 3 * Decimal(7) + _floor(min(losses[u], Decimal(500)))
        for u in ids
        if u not in disqualified
    }


# --- referrals ---------------------------------------------------------------------------

# MX held -> futures commission rate (RULES.md 3)
TIERS: tuple[tuple[Decimal, Decimal], ...] = (
    (Decimal(500), Decimal("0.10")),
    (Decimal(20_000), Decimal("0.20")),
    (Decimal(150_000), Decimal("0.30")),
)


def referrals(referrers: int = 1_300, referees: int = 3_400) -> Owed:
    """``referrers`` referrers holding MX in each of the three futures tiers
    (10%, 20%, 30%) and ``referees`` referees, each with one futures fill a
    day on the three days (fees of 6 decimals in USDT; one referee in seven
    pays in ETH, 7 decimals; one in twenty pays fees of 10 decimals): each
    referrer is owed the sum of fee x rate of their referees' fills. The
    three days settled: 10,200 commissions."""
    from jobs.runner import run_job
    from referrals.models import ReferralCode

    _set_clock("2026-11-18T00:00:00Z")
    bosses = [f"r_{n:05d}" for n in range(referrers)]
    _ingest([_registered(u) for u in bosses])
    _ingest(
        [
            _event(
                f"mx-{u}",
                "holding.updated",
                "2026-11-18T06:00:00Z",
                u,
                {"asset": "MX", "amount": str(TIERS[n % 3][0])},
            )
            for n, u in enumerate(bosses)
        ]
    )
    codes = dict(ReferralCode.objects.filter(user_id__in=bosses).values_list("user_id", "code"))
    rate = {u: TIERS[n % 3][1] for n, u in enumerate(bosses)}
    ids = [f"e_{n:05d}" for n in range(referees)]
    _ingest(
        [
            _registered(u, at="2026-03-01T00:00:00Z", code=codes[bosses[n % referrers]])
            for n, u in enumerate(ids)
        ]
    )
    rng = random.Random(2026_11_21)
    owed: Owed = defaultdict(Decimal)
    fills = []
    for n, user in enumerate(ids):
        boss = bosses[n % referrers]
        asset = "ETH" if n % 7 == 3 else "USDT"
        for k, day in enumerate(DAYS):
            if n % 20 == 0:
                fee = _amount(rng, 0, 5, 10)
            elif asset == "ETH":
                fee = _amount(rng, 0, 1, 7)
            else:
                fee = _amount(rng, 0, 5, 6)
            fee = max(fee, Decimal("0.000001"))
            at = f"{day}T12:{(n // 60) % 60:02d}:{n % 60:02d}Z"
            fills.append(
                _fill(
                    f"rf-{n}-{k}",
                    user,
                    at,
                    order=f"rf-{n}-{k}",
                    action="open",
                    fee=fee,
                    fee_asset=asset,
                )
            )
            owed[(boss, asset, "spot")] += fee * rate[boss]
    _ingest(fills)
    _fund("referrals", "USDT", 10_000_000)
    _fund("referrals", "ETH", 100_000)
    for day in DAYS:
        after = dt.date.fromisoformat(day) + dt.timedelta(days=1)
        _set_clock(f"{after.isoformat()}T00:15:00Z")
        run_job("settle_referrals", day=dt.date.fromisoformat(day))
    return owed


# --- earn --------------------------------------------------------------------------------


def interest(principal: Decimal, value: Decimal) -> Decimal:
    """RULES.md 4 with the default terms, for a day whose three snapshots agree."""
    boosted = min(principal, Decimal(25_000)) if value >= 100_000 else Decimal(0)
    base = principal - boosted
    return _floor((boosted * Decimal("0.15") + base * Decimal("0.03")) / 365)


def earn(users: int = 1_700) -> Owed:
    """``users`` users active from 11-18 20:00, each with one USDT and one USDC
    principal (whole USDT 1,000-60,000, USDC 500-20,000) and one BTC position
    (half of them worth 100,000 or more: the boosted tier) reported at 21:00
    and unchanged since: each day's interest is the same, computed here from
    RULES.md. The three days accrued: 10,200 daily interests."""
    from jobs.runner import run_job
    from ledger.event_store import DomainEvent, append_domain_events

    activated = _set_clock("2026-11-18T20:00:00Z")
    ids = [f"n_{n:05d}" for n in range(users)]
    _ingest([_registered(u) for u in ids])
    for part in _chunks(ids):
        append_domain_events(
            [
                DomainEvent(
                    f"earn.activated:{u}:{activated.isoformat()}",
                    "earn.activated",
                    activated,
                    {},
                    user_id=u,
                )
                for u in part
            ]
        )
    rng = random.Random(2026_11_18)
    owed: Owed = {}
    reports = []
    at = "2026-11-18T21:00:00Z"
    for n, user in enumerate(ids):
        value = Decimal(rng.randrange(100_000, 300_000) if n % 2 else rng.randrange(1, 99_999))
        principals = {
            "USDT": Decimal(rng.randrange(1_000, 60_000)),
            "USDC": Decimal(rng.randrange(500, 20_000)),
        }
        for asset, principal in principals.items():
            reports.append(
                _event(
                    f"w-{user}-{asset}",
                    "futures_wallet.updated",
                    at,
                    user,
                    {
                        "asset": asset,
                        "available": str(principal),
                        "locked_in_orders": "0",
                        "margin_used": "0",
                        "bonus": "0",
                    },
                )
            )
            owed[(user, asset, "spot")] = 3 * interest(principal, value)
        reports.append(
            _event(
                f"p-{user}",
                "futures_positions.updated",
                at,
                user,
                {
                    "positions": [
                        {
                            "symbol": "BTC_USDT",
                            "market": "usdt_m",
                            "side": "long",
                            "quantity": "1",
                            "avg_entry_price": str(value),
                        }
                    ]
                },
            )
        )
    _set_clock(at)
    _ingest(reports)
    _fund("earn", "USDT", 10_000_000)
    _fund("earn", "USDC", 10_000_000)
    for day in DAYS:
        after = dt.date.fromisoformat(day) + dt.timedelta(days=1)
        _set_clock(f"{after.isoformat()}T00:20:00Z")
        run_job("accrue_earn_interest", day=dt.date.fromisoformat(day))
    return owed


BUILDERS: dict[str, Callable[[], Owed]] = {
    "vouchers": vouchers,
    "campaigns": campaigns,
    "referrals": referrals,
    "earn": earn,
}


def main() -> None:
    """Build the world named by argv[1]; write what it owes to the file argv[2]
    (JSON: [user, asset, account kind, amount] rows)."""
    name, out = sys.argv[1], sys.argv[2]
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()
    owed = BUILDERS[name]()
    with open(out, "w") as file:
        json.dump([[*key, str(amount)] for key, amount in sorted(owed.items())], file)


if __name__ == "__main__":
    main()
