"""How draft referral terms are backtested (replay.forecasts): placed on the
window, settled and distributed by the program's own jobs, their figures read.

Referral commissions need nothing history does not hold: the relations are
the recorded registrations, the rates come from the recorded MX holdings,
the invalidations from the recorded risk measures, and every fill of the
window is one. The draft's terms take effect at the window's first instant;
``settle_referrals`` and ``distribute_referral_commissions`` run as Beat
runs them, each day of the window settled after it ends and paid the next
day. The live community-partner flags and the live terms of a program the
draft does not name are copied into the scratch database (they are ops
configuration, not facts the backtest copies). The pool is funded there
without limit, so that every commission is paid: the cost is compared with
the draft's top-ups in the report.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from ledger.money import for_people
from referrals import services
from referrals.jobs import POOL_PROGRAM
from referrals.models import CommunityPartner, Program
from replay import forecasts
from replay.forecasts import Context, Figures, Refused, Rows, Series, Window, per_asset, per_day

SECTION = "referral_programs"
# ``--live`` names the live referral program as a whole.
LIVE_NAME = "referrals"

ASSUMPTIONS = (
    "referees trade as they did: every fill of the window is settled with the draft's terms"
    " after its day ends and paid the next day, by the program's own jobs",
    "relations, MX holdings and invalidations are the recorded ones; community partners"
    " are the live flags, as they stood over the window",
    "the draft's terms take effect at the window's first instant; a program the draft does"
    " not name keeps its live terms",
    "the referral pool is funded without limit in the scratch database, so every commission"
    " is paid; the cost is compared with the draft's top-ups",
    "cost per day: the commissions of that day's fills (paid the day after)",
)


def place(section: Any, context: Context) -> Any:
    """The draft's terms, one entry per program, in force from the window's start."""
    if not isinstance(section, list) or not section:
        raise Refused(f"{SECTION}: a backtest takes a list of terms, one per program")
    placed, seen = [], set()
    for index, entry in enumerate(section):
        if not isinstance(entry, dict) or entry.get("program") not in Program.values:
            raise Refused(f"{SECTION}[{index}].program: futures or spot")
        if entry["program"] in seen:
            raise Refused(
                f"{SECTION}[{index}]: a backtest takes one set of terms per program"
                f" ({entry['program']} is named twice)"
            )
        seen.add(entry["program"])
        placed.append({**entry, "effective_from": context.window.start.isoformat()})
    return placed


class ReferralForecast:
    jobs: tuple[str, ...] = ("settle_referrals", "distribute_referral_commissions")

    def __init__(self, context: Context) -> None:
        self.context = context
        self.name = "referral terms"

    def finish(self) -> dt.datetime:
        # The last day is settled at 00:15 and paid at 01:00 the day after.
        return self.context.window.end + dt.timedelta(hours=1)

    def budget_key(self) -> tuple[str, str]:
        return POOL_PROGRAM, "USDT"

    def wants(self, job: str, at: dt.datetime) -> bool:
        # Runs before the window's first day ends settle and pay days before it.
        return at >= self.context.window.start + dt.timedelta(days=1)

    def act(self, at: dt.datetime) -> None:
        """Referees need no assumed behaviour: their fills are the record."""

    def figures(self, rows: Rows) -> Figures:
        return referral_figures(rows, self.context.window, self.name)


def _copy_live_terms(drafted: set[str], context: Context) -> None:
    """The live terms of the programs the draft does not name, saved as they are."""
    for program, effective_from, validity_days, tiers, partner_rate in context.source(
        "SELECT program, effective_from, validity_days, tiers, partner_rate"
        " FROM referrals_programterms WHERE NOT (program = ANY(%(drafted)s))"
        " ORDER BY program, effective_from",
        {"drafted": sorted(drafted)},
    ):
        services.save_terms(
            program=program,
            effective_from=effective_from,
            validity_days=validity_days,
            tiers=tiers,
            partner_rate=partner_rate,
        )


def _copy_live_partners(context: Context) -> None:
    """The live community-partner flags that began before the window's end, each
    with its start and end (a flag ended after the window stays open here)."""
    end = context.window.end
    CommunityPartner.objects.bulk_create(
        CommunityPartner(
            user_id=user_id,
            since=since,
            until=until if until is not None and until < end else None,
            note=note,
        )
        for user_id, since, until, note in context.source(
            "SELECT user_id, since, until, note FROM referrals_communitypartner"
            " WHERE since < %(end)s ORDER BY user_id, since",
            {"end": end},
        )
    )


def _fee_assets(context: Context) -> list[str]:
    """Every fee asset of the window's fills: the assets commissions are paid in."""
    window = context.window
    return [
        str(asset)
        for (asset,) in context.source(
            "SELECT DISTINCT data->>'fee_asset' FROM ledger_event WHERE origin = 'exchange'"
            " AND type = 'trade.filled' AND occurred_at >= %(start)s AND occurred_at < %(end)s"
            " AND data->>'fee_asset' IS NOT NULL ORDER BY 1",
            {"start": window.start, "end": window.end},
        )
    ]


def programs(section: Any, context: Context) -> list[forecasts.Program]:
    _copy_live_terms({str(entry["program"]) for entry in section}, context)
    _copy_live_partners(context)
    forecasts.fund_without_limit(POOL_PROGRAM, _fee_assets(context))
    return [ReferralForecast(context)]


def referral_figures(rows: Rows, window: Window, name: str) -> Figures:
    """The commissions of the window's days, their payouts and referrers, by the
    same SQL in the scratch database (the draft) and the live one (``--live``)."""
    params = {"first": window.first_day, "last": window.last_day}
    by_program = rows(
        "SELECT program, asset, count(*), sum(fills), sum(amount) FROM referrals_commission"
        " WHERE day >= %(first)s AND day <= %(last)s AND status = 'settled' GROUP BY 1, 2 ORDER BY 1, 2",
        params,
    )
    ((referees, referrers, invalid),) = rows(
        "SELECT count(DISTINCT referee_id) FILTER (WHERE status = 'settled'),"
        " count(DISTINCT referrer_id) FILTER (WHERE status = 'settled'),"
        " count(*) FILTER (WHERE status = 'invalid')"
        " FROM referrals_commission WHERE day >= %(first)s AND day <= %(last)s",
        params,
    )
    ((paid_referrers, payouts),) = rows(
        "SELECT count(DISTINCT referrer_id), count(*) FROM referrals_commissionpayout"
        " WHERE day >= %(first)s AND day <= %(last)s AND amount > 0",
        params,
    )
    paid = rows(
        "SELECT asset, sum(amount) FROM referrals_commissionpayout"
        " WHERE day >= %(first)s AND day <= %(last)s GROUP BY 1 ORDER BY 1",
        params,
    )
    settled = rows(
        "SELECT day, asset, count(*), sum(amount) FROM referrals_commission"
        " WHERE day >= %(first)s AND day <= %(last)s AND status = 'settled' GROUP BY 1, 2",
        params,
    )
    cost = per_asset(window, [(day, asset, amount) for day, asset, _n, amount in settled])
    commissions_per_day = per_day(window, [(day, n) for day, _asset, n, _amount in settled])
    # The pool's first asset is always charted, even when nothing is owed in it.
    cost.setdefault("USDT", [Decimal(0)] * len(window.days))
    totals: dict[str, Decimal] = {}
    for _program, asset, _count, _fills, amount in by_program:
        totals[asset] = totals.get(asset, Decimal(0)) + Decimal(amount)
    return Figures(
        name=name,
        figures=[
            ("commissions", f"{sum(int(r[2]) for r in by_program):,}"),
            *(
                (f"  {program} {asset}", f"{int(count):,}, {for_people(Decimal(amount), asset)}")
                for program, asset, count, _fills, amount in by_program
            ),
            ("fills earning", f"{sum(int(r[3]) for r in by_program):,}"),
            ("referees earning", f"{referees:,}"),
            ("referrers earning", f"{referrers:,}"),
            ("invalid rebates", f"{invalid:,}"),
            *(
                (f"commissions {asset}", for_people(amount, asset))
                for asset, amount in sorted(totals.items())
            ),
            ("referrers paid", f"{paid_referrers:,} ({payouts:,} payouts)"),
            *((f"paid {asset}", for_people(Decimal(amount), asset)) for asset, amount in paid),
        ],
        cost=cost,
        series=[
            Series(
                "commissions", "Commissions, by the day of the fills", "rows", commissions_per_day
            )
        ],
    )


def live(name: str, context: Context) -> Figures | None:
    if name != LIVE_NAME:
        return None
    return referral_figures(context.source, context.window, LIVE_NAME)


forecasts.register(
    forecasts.Forecast(
        section=SECTION,
        assumptions=ASSUMPTIONS,
        place=place,
        programs=programs,
        live=live,
    )
)
