"""How a draft campaign is backtested (replay.forecasts): placed on the window,
its users' behaviour assumed, its figures read.

History holds no registrations or spins of a campaign that never ran, so the
forecast assumes them: every eligible user (the invited ones, or for an open
campaign every futures trader of the window) registers when registration
opens, and spins as soon as a spin is available (the coverage spin once
granted, each daily spin the day it is earned), with the backtest's seed in
place of the campaign's. Registration goes through ``services.register_many``
(each user decided as a registration is); cards are drawn set-based, as the
same ``campaign.card_drawn`` events a spin appends, after the same checks: a
forecast of 100,000 users cannot afford a service call per spin. Daily
spins, a million in such a forecast, are recorded in the spins table alone
(``_record_daily_spins``).
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from decimal import Decimal
from typing import Any

from django.db import connection, transaction
from django.db.models import F

from campaigns import rules, services
from campaigns.models import Campaign, Invitation
from config import clock
from ledger.event_store import DomainEvent, append_domain_events
from ledger.money import for_people
from replay import forecasts
from replay.forecasts import Context, Figures, Refused, Rows, Series, Window

CHUNK = 5_000
FUTURES = ("usdt_m", "usdc_m", "coin_m")

ASSUMPTIONS = (
    "every eligible user registers when registration opens: the invited users, or for an"
    " open campaign every futures trader of the window (known, main account, not disqualified)",
    "each participant spins as soon as a spin is available: the coverage spin once the"
    " volume target is reached, a daily spin on each day that earns one (spins are"
    " refreshed on the backtest's step, so volume of a campaign's last step earns a spin"
    " that is void)",
    "cards, prizes and covered orders are drawn with the backtest's seed, not the campaign's",
    "the campaign is moved onto the window: it starts on the first day at 00:00 UTC and ends"
    " after the last; registration opens and closes as long before the start and end as the"
    " draft says, within the window",
    "cost per day: a daily prize on the day it is won, a coverage rebate on the day its"
    " order first closed (it is paid after the draw); bonuses are not issued",
)


def _instant(value: Any, where: str) -> dt.datetime:
    if isinstance(value, dt.datetime) and value.tzinfo:
        return value.astimezone(dt.UTC)
    try:
        return clock.parse_instant(str(value))
    except ValueError as problem:
        raise Refused(f"{where}: {problem}") from None


def place(section: Any, context: Context) -> Any:
    """The draft's one campaign with its dates moved onto the window."""
    if not isinstance(section, list) or len(section) != 1 or not isinstance(section[0], dict):
        raise Refused("campaigns: a backtest takes a draft of one campaign")
    entry = dict(section[0])
    for name in ("slug", "title", "starts_at", "ends_at"):
        if name not in entry:
            raise Refused(f"campaigns[0].{name}: required in a draft campaign")
    starts = _instant(entry["starts_at"], "campaigns[0].starts_at")
    ends = _instant(entry["ends_at"], "campaigns[0].ends_at")
    opens = _instant(entry.get("registration_opens_at", starts), "registration_opens_at")
    closes = _instant(entry.get("registration_closes_at", ends), "registration_closes_at")
    start, end = context.window.start, context.window.end
    placed_opens = max(start, start + (opens - starts))
    placed_closes = min(end, end - (ends - closes))
    if placed_closes <= placed_opens:
        raise Refused("campaigns[0]: on this window, registration would never be open")
    entry.update(
        starts_at=start.isoformat(),
        ends_at=end.isoformat(),
        registration_opens_at=placed_opens.isoformat(),
        registration_closes_at=placed_closes.isoformat(),
    )
    return [entry]


class CampaignForecast:
    jobs: tuple[str, ...] = ("refresh_spins", "void_unused_spins", "draw_coverage")

    def __init__(self, campaign: Campaign, context: Context) -> None:
        self.campaign = campaign
        self.context = context
        self.name = f"campaign {campaign.slug}"
        self.registered = False
        self.spun_until = dt.datetime.min.replace(tzinfo=dt.UTC)

    def finish(self) -> dt.datetime:
        return self.campaign.ends_at + self.campaign.lateness

    def budget_key(self) -> tuple[str, str]:
        return self.campaign.funding_program, self.campaign.asset

    def wants(self, job: str, at: dt.datetime) -> bool:
        c = self.campaign
        if job == "refresh_spins":
            return c.registration_opens_at <= at
        return at >= c.ends_at + c.lateness  # the void and the draw

    def act(self, at: dt.datetime) -> None:
        c = self.campaign
        if not self.registered and c.registration_opens_at <= at < c.registration_closes_at:
            self._register_everyone(at)
            self.registered = True
        if c.starts_at <= at < c.ends_at:
            self._spin_everything(at)

    def figures(self, rows: Rows) -> Figures:
        found = campaign_figures(rows, self.campaign.slug, self.context.window)
        assert found is not None
        return found

    def _register_everyone(self, at: dt.datetime) -> None:
        """Everyone who may register now does (services.register_many decides
        each as a registration does): the invited, or every futures trader."""
        c = self.campaign
        if c.invitation_only:
            candidates = list(
                Invitation.objects.filter(campaign=c)
                .order_by("user_id")
                .values_list("user_id", flat=True)
            )
        else:
            candidates = [
                user_id
                for (user_id,) in self.context.source(
                    "SELECT DISTINCT user_id FROM ledger_event WHERE origin = 'exchange'"
                    " AND type = 'trade.filled' AND occurred_at >= %(start)s"
                    " AND occurred_at < %(end)s AND data->>'market' = ANY(%(markets)s)"
                    " ORDER BY user_id",
                    {"start": c.starts_at, "end": c.ends_at, "markets": list(FUTURES)},
                )
            ]
        services.register_many(c, candidates)

    def _spin_everything(self, at: dt.datetime) -> None:
        """Every spin available now, used: only allowances refreshed since the
        last spins can hold one (every earlier one was used then)."""
        c = self.campaign
        with connection.cursor() as cursor:
            cursor.execute(
                """
                SELECT a.user_id, a.coverage_granted_at IS NOT NULL AND p.card_percent IS NULL,
                    s.used, a.daily_earned
                FROM campaigns_spinallowance a
                JOIN campaigns_participant p
                    ON p.campaign_id = a.campaign_id AND p.user_id = a.user_id,
                LATERAL (SELECT count(*) AS used FROM campaigns_dailyspin d
                         WHERE d.campaign_id = a.campaign_id AND d.user_id = a.user_id) s
                WHERE a.campaign_id = %(campaign)s AND a.refreshed_at > %(since)s
                  AND NOT EXISTS (SELECT 1 FROM ledger_riskmeasure m
                      WHERE m.user_id = a.user_id AND m.measure = 'disqualify_campaigns')
                ORDER BY a.user_id
                """,
                {"campaign": c.pk, "since": self.spun_until},
            )
            available = cursor.fetchall()
        self.spun_until = at
        cards = rules.parse_table(c.card_table, "percent")
        prizes = rules.parse_table(c.prize_table, "amount")
        drawn = []
        spins = []
        for user_id, coverage, used, earned in available:
            if coverage:
                percent = rules.card_for(c.seed, c.slug, user_id, cards)
                drawn.append(
                    DomainEvent(
                        event_id=f"campaign.card_drawn:{c.slug}:{user_id}",
                        type="campaign.card_drawn",
                        occurred_at=at,
                        user_id=user_id,
                        data={"campaign": c.slug, "percent": str(percent)},
                    )
                )
            for number in range(used + 1, earned + 1):
                amount = rules.daily_prize_for(c.seed, c.slug, user_id, number, prizes)
                spins.append((c.pk, user_id, number, amount, at))
        with transaction.atomic():
            _append(drawn)
            _record_daily_spins(c, spins)


def _record_daily_spins(campaign: Campaign, spins: list[tuple[Any, ...]]) -> None:
    """Daily spins go straight into the spins table, not through the log: a
    forecast of 100,000 users spins over a million times, the prize is a
    function of the seed, and nothing in a scratch database reads the events
    back (the figures read this table; bonuses are not issued)."""
    if not spins:
        return
    raw = connection.connection
    assert raw is not None
    with (
        raw.cursor() as cursor,
        cursor.copy(
            "COPY campaigns_dailyspin (campaign_id, user_id, number, amount, spun_at) FROM STDIN"
        ) as copy,
    ):
        for row in spins:
            copy.write_row(row)
    # As a spin does: the prizes won so far, which the admin shows against the funding.
    won = sum((row[3] for row in spins), Decimal(0))
    Campaign.objects.filter(pk=campaign.pk).update(prizes_committed=F("prizes_committed") + won)


def _append(events: Any) -> None:
    batch: list[DomainEvent] = []
    for event in events:
        batch.append(event)
        if len(batch) == CHUNK:
            append_domain_events(batch)
            batch = []
    if batch:
        append_domain_events(batch)


def _per_day(window: Window, found: list[tuple[Any, ...]]) -> tuple[list[Decimal], list[Decimal]]:
    """(day, count, amount) rows as two lists over the window's days."""
    index = {day: i for i, day in enumerate(window.days)}
    counts = [Decimal(0)] * len(index)
    amounts = [Decimal(0)] * len(index)
    for day, count, amount in found:
        if day in index:
            counts[index[day]] += Decimal(count)
            amounts[index[day]] += Decimal(amount or 0)
    return counts, amounts


def campaign_figures(rows: Rows, slug: str, window: Window) -> Figures | None:
    """The campaign's figures over the window, by the same SQL in the scratch
    database (the draft) and in the live one (``--live``). Per-day figures
    count only the window's days."""
    found = rows(
        "SELECT id, asset, funding_program FROM campaigns_campaign WHERE slug = %(slug)s",
        {"slug": slug},
    )
    if not found:
        return None
    campaign, asset, program = found[0]
    params = {"campaign": campaign, "start": window.start, "end": window.end}
    ((invited,),) = rows(
        "SELECT count(*) FROM campaigns_invitation WHERE campaign_id = %(campaign)s", params
    )
    ((participants,),) = rows(
        "SELECT count(*) FROM campaigns_participant WHERE campaign_id = %(campaign)s"
        " AND registered_at < %(end)s",
        params,
    )
    cards = Counter(
        {
            Decimal(percent): int(n)
            for percent, n in rows(
                "SELECT card_percent, count(*) FROM campaigns_participant"
                " WHERE campaign_id = %(campaign)s AND card_percent IS NOT NULL"
                " AND card_drawn_at < %(end)s GROUP BY 1",
                params,
            )
        }
    )
    ((losing, covered),) = rows(
        "SELECT coalesce(sum(losing_orders), 0), coalesce(sum(covered), 0)"
        " FROM campaigns_coveragedraw WHERE campaign_id = %(campaign)s",
        params,
    )
    spins, prizes = _per_day(
        window,
        rows(
            "SELECT (spun_at AT TIME ZONE 'UTC')::date, count(*), sum(amount)"
            " FROM campaigns_dailyspin WHERE campaign_id = %(campaign)s"
            " AND spun_at >= %(start)s AND spun_at < %(end)s GROUP BY 1",
            params,
        ),
    )
    rebated, rebates = _per_day(
        window,
        rows(
            "SELECT (o.first_close_at AT TIME ZONE 'UTC')::date, count(*), sum(r.amount)"
            " FROM campaigns_reward r JOIN ledger_closedorder o"
            " ON o.user_id = r.user_id AND o.order_id = r.reference"
            " WHERE r.campaign_id = %(campaign)s AND r.kind = 'coverage_rebate'"
            " AND o.first_close_at >= %(start)s AND o.first_close_at < %(end)s GROUP BY 1",
            params,
        ),
    )
    ((funded,),) = rows(
        "SELECT coalesce(sum(p.amount), 0) FROM ledger_posting p"
        " JOIN ledger_account a ON a.id = p.account_id"
        " WHERE a.kind = 'funding' AND a.program = %(program)s AND a.asset = %(asset)s"
        " AND p.amount > 0",
        {"program": program, "asset": asset},
    )
    drawn = sum(cards.values())
    total_prizes, total_rebates = sum(prizes, Decimal(0)), sum(rebates, Decimal(0))
    return Figures(
        name=f"campaign {slug}",
        figures=[
            ("invited", f"{invited:,}"),
            ("participants", f"{participants:,}"),
            ("coverage spins (cards drawn)", f"{drawn:,}"),
            *(
                (f"  {for_people(percent)}% cards", f"{n:,} ({Decimal(100 * n) / drawn:.1f}%)")
                for percent, n in sorted(cards.items())
            ),
            ("daily spins", f"{int(sum(spins)):,}"),
            ("losing orders in scope (n)", f"{losing:,}"),
            ("covered orders (k)", f"{covered:,}"),
            ("coverage rebates", f"{int(sum(rebated)):,}, {for_people(total_rebates, asset)}"),
            ("daily prizes", f"{int(sum(spins)):,}, {for_people(total_prizes, asset)}"),
            (
                "rewards",
                f"{int(sum(rebated) + sum(spins)):,}, "
                f"{for_people(total_rebates + total_prizes, asset)}",
            ),
            ("funded in the ledger", for_people(Decimal(funded), asset)),
        ],
        cost={asset: [a + b for a, b in zip(prizes, rebates, strict=True)]},
        series=[
            Series("covered", "Covered orders, by the day they closed", "orders", rebated),
            Series("spins", "Daily spins", "spins", spins),
        ],
    )


def programs(section: Any, context: Context) -> list[forecasts.Program]:
    campaign = Campaign.objects.get(slug=str(section[0]["slug"]))
    # The backtest's own seed, never the campaign's: a draft's real seed stays secret.
    Campaign.objects.filter(pk=campaign.pk).update(
        seed=context.seed, seed_hash=rules.seed_hash(context.seed)
    )
    campaign.refresh_from_db()
    return [CampaignForecast(campaign, context)]


def live(slug: str, context: Context) -> Figures | None:
    return campaign_figures(context.source, slug, context.window)


forecasts.register(
    forecasts.Forecast(
        section="campaigns",
        assumptions=ASSUMPTIONS,
        place=place,
        programs=programs,
        live=live,
    )
)
