"""Reads of the support view and the ops dashboard.

Support view: everything the product knows about one user, section by
section. Every section is bounded: its latest ``limit`` rows and the count of
all of them, never an unbounded list.

Ops dashboard: per campaign or program, series per UTC day computed by SQL
aggregates over a bounded range of days. Its health half (jobs, payouts,
ingestion, projections) is ``support.health``.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django.db import connection
from django.db.models import Count, QuerySet, Sum

from campaigns import rules as campaign_rules
from campaigns.models import (
    Campaign,
    CoverageDraw,
    DailySpin,
    DailyVolume,
    Invitation,
    Participant,
    Reward,
    SpinAllowance,
)
from campaigns.selectors import budget, disqualified_since, issued_keys, reward_status
from earn.jobs import POOL_PROGRAM as EARN_PROGRAM
from earn.models import Activation, DailyInterest, EarnDistribution, Snapshot
from ledger.models import (
    Account,
    AccountKind,
    ExchangeUser,
    QuarantinedInput,
    RiskMeasure,
)
from ledger.money import for_people, format_amount
from ledger.selectors import user_credits
from referrals.jobs import POOL_PROGRAM as REFERRAL_PROGRAM
from referrals.models import Commission, CommissionPayout, ReferralCode, Relation
from referrals.selectors import with_state

# The jobs' health lives in support.health; callers of the old name keep it.
from support.health import job_health as job_health
from vouchers.models import Consumption, Voucher, VoucherProgram
from vouchers.selectors import payout_status, program_budget, voucher_status

SECTION_LIMIT = 25
MAX_DAYS = 366
DEFAULT_DAYS = 30


# --- the support view --------------------------------------------------------------


@dataclass(frozen=True)
class Column:
    key: str
    header: str
    # How the page shows the value: text, user (a link to that user's support
    # view), json (a cause or error list, compact), amount, time.
    kind: str = "text"


@dataclass
class Section:
    """One table of the support view: the latest rows and how many there are in all."""

    key: str
    group: str
    title: str
    columns: tuple[Column, ...]
    rows: list[dict[str, Any]]
    total: int

    @property
    def truncated(self) -> bool:
        return self.total > len(self.rows)

    def table(self) -> list[list[dict[str, Any]]]:
        """The rows as cells in column order, each with the column's kind."""
        return [
            [{"kind": column.kind, "value": row.get(column.key)} for column in self.columns]
            for row in self.rows
        ]


@dataclass
class UserOverview:
    user_id: str
    account: ExchangeUser | None
    referral_code: str | None
    sections: list[Section] = field(default_factory=list)

    def section(self, key: str) -> Section:
        return next(section for section in self.sections if section.key == key)


def _cols(*spec: tuple[str, str] | tuple[str, str, str]) -> tuple[Column, ...]:
    return tuple(Column(*item) for item in spec)


def _bounded(
    queryset: QuerySet[Any], limit: int, row: Callable[[Any], dict[str, Any]]
) -> tuple[list[dict[str, Any]], int]:
    """The first ``limit`` rows of an ordered queryset, shaped, and the count of all."""
    objects = list(queryset[:limit])
    total = len(objects) if len(objects) < limit else queryset.order_by().count()
    return [row(obj) for obj in objects], total


def _json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False, default=str)


def user_overview(user_id: str, *, now: dt.datetime, limit: int = SECTION_LIMIT) -> UserOverview:
    """Everything about one user for support: account facts, campaigns, vouchers,
    referrals, Earn, ledger credits and quarantined input, each row with its cause."""
    overview = UserOverview(
        user_id=user_id,
        account=ExchangeUser.objects.filter(user_id=user_id).first(),
        referral_code=ReferralCode.objects.filter(user_id=user_id)
        .values_list("code", flat=True)
        .first(),
    )
    for build in (
        _risk_measures,
        _sub_accounts,
        _participations,
        _invitations,
        _campaign_rewards,
        _vouchers,
        _consumptions,
        _referred_by,
        _referees,
        _commissions_earned,
        _commissions_generated,
        _commission_payouts,
        _earn_activations,
        _earn_interest,
        _earn_snapshots,
        _credits,
        _quarantine,
    ):
        overview.sections.append(build(user_id, now, limit))
    return overview


def _risk_measures(user_id: str, now: dt.datetime, limit: int) -> Section:
    rows, total = _bounded(
        RiskMeasure.objects.filter(user_id=user_id).order_by("-occurred_at", "-id"),
        limit,
        lambda m: {
            "measure": m.measure,
            "since": m.occurred_at,
            "reason": m.reason,
            "event_id": m.event_id,
        },
    )
    columns = _cols(
        ("measure", "measure"),
        ("since", "in force since", "time"),
        ("reason", "reason"),
        ("event_id", "cause (risk.flagged event)"),
    )
    return Section("risk_measures", "Account", "Risk measures", columns, rows, total)


def _sub_accounts(user_id: str, now: dt.datetime, limit: int) -> Section:
    rows, total = _bounded(
        ExchangeUser.objects.filter(parent_user_id=user_id).order_by("-registered_at", "user_id"),
        limit,
        lambda u: {
            "user_id": u.user_id,
            "account_type": u.account_type,
            "registered_at": u.registered_at,
        },
    )
    columns = _cols(
        ("user_id", "user", "user"),
        ("account_type", "account type"),
        ("registered_at", "registered", "time"),
    )
    return Section("sub_accounts", "Account", "Sub-accounts", columns, rows, total)


def _participations(user_id: str, now: dt.datetime, limit: int) -> Section:
    queryset = (
        Participant.objects.filter(user_id=user_id)
        .select_related("campaign")
        .order_by("-registered_at", "-id")
    )
    participants = list(queryset[:limit])
    campaign_ids = [p.campaign_id for p in participants]
    # One aggregate per table for the page's campaigns, not one query per row.
    volumes = dict(
        DailyVolume.objects.filter(campaign_id__in=campaign_ids, user_id=user_id)
        .values("campaign_id")
        .annotate(total=Sum("volume"))
        .values_list("campaign_id", "total")
    )
    used = dict(
        DailySpin.objects.filter(campaign_id__in=campaign_ids, user_id=user_id)
        .values("campaign_id")
        .annotate(n=Count("id"))
        .values_list("campaign_id", "n")
    )
    allowances = {
        a.campaign_id: a
        for a in SpinAllowance.objects.filter(campaign_id__in=campaign_ids, user_id=user_id)
    }
    draws = {
        d.campaign_id: d
        for d in CoverageDraw.objects.filter(campaign_id__in=campaign_ids, user_id=user_id)
    }
    rows = []
    for p in participants:
        allowance = allowances.get(p.campaign_id)
        draw = draws.get(p.campaign_id)
        rows.append(
            {
                "campaign": p.campaign.slug,
                "registered_at": p.registered_at,
                "valid_volume": volumes.get(p.campaign_id) or Decimal(0),
                "volume_target": p.campaign.volume_target,
                "coverage_spin_at": allowance.coverage_granted_at if allowance else None,
                "card": f"{p.card_percent.normalize():f}%" if p.card_percent is not None else "",
                "card_drawn_at": p.card_drawn_at,
                "daily_earned": allowance.daily_earned if allowance else 0,
                "daily_used": used.get(p.campaign_id, 0),
                "draw": f"{draw.covered} of {draw.losing_orders} orders covered" if draw else "",
            }
        )
    total = len(rows) if len(rows) < limit else queryset.order_by().count()
    columns = _cols(
        ("campaign", "campaign"),
        ("registered_at", "registered", "time"),
        ("valid_volume", "valid volume", "amount"),
        ("volume_target", "target", "amount"),
        ("coverage_spin_at", "coverage spin granted", "time"),
        ("card", "card"),
        ("card_drawn_at", "card drawn", "time"),
        ("daily_earned", "daily spins earned"),
        ("daily_used", "daily spins used"),
        ("draw", "coverage draw"),
    )
    return Section("participations", "Campaigns", "Participation", columns, rows, total)


def _invitations(user_id: str, now: dt.datetime, limit: int) -> Section:
    rows, total = _bounded(
        Invitation.objects.filter(user_id=user_id)
        .select_related("campaign")
        .order_by("-invited_at", "-id"),
        limit,
        lambda i: {"campaign": i.campaign.slug, "invited_at": i.invited_at, "source": i.source},
    )
    columns = _cols(
        ("campaign", "campaign"), ("invited_at", "invited", "time"), ("source", "cause (source)")
    )
    return Section("invitations", "Campaigns", "Invitations", columns, rows, total)


def _campaign_rewards(user_id: str, now: dt.datetime, limit: int) -> Section:
    queryset = (
        Reward.objects.filter(user_id=user_id)
        .select_related("campaign")
        .order_by("-earned_at", "-id")
    )
    rewards = list(queryset[:limit])
    issued = issued_keys([r.idempotency_key for r in rewards])
    disqualified_at = disqualified_since(user_id) if rewards else None
    rows = [
        {
            "campaign": r.campaign.slug,
            "kind": r.kind,
            "reference": r.reference,
            "amount": r.amount,
            "earned_at": r.earned_at,
            "status": reward_status(
                r, issued=r.idempotency_key in issued, disqualified_at=disqualified_at
            ),
            "key": r.idempotency_key,
        }
        for r in rewards
    ]
    total = len(rows) if len(rows) < limit else queryset.order_by().count()
    columns = _cols(
        ("campaign", "campaign"),
        ("kind", "kind"),
        ("reference", "cause (order id or spin number)"),
        ("amount", "amount", "amount"),
        ("earned_at", "earned", "time"),
        ("status", "status"),
        ("key", "idempotency key"),
    )
    return Section("campaign_rewards", "Campaigns", "Rewards", columns, rows, total)


def _vouchers(user_id: str, now: dt.datetime, limit: int) -> Section:
    rows, total = _bounded(
        Voucher.objects.filter(user_id=user_id)
        .select_related("program")
        .order_by("-arrived_at", "-id"),
        limit,
        lambda v: {
            "id": v.pk,
            "program": v.program.slug,
            "face_value": v.face_value,
            "remaining": v.remaining,
            "arrived_at": v.arrived_at,
            "expires_at": v.expires_at,
            "status": voucher_status(v, now),
            "source": v.source,
            "grant_key": v.grant_key,
        },
    )
    columns = _cols(
        ("id", "voucher"),
        ("program", "program"),
        ("face_value", "face value", "amount"),
        ("remaining", "remaining", "amount"),
        ("arrived_at", "arrived", "time"),
        ("expires_at", "expires", "time"),
        ("status", "status"),
        ("source", "cause (source)"),
        ("grant_key", "grant key"),
    )
    return Section("vouchers", "Vouchers", "Vouchers", columns, rows, total)


def _consumptions(user_id: str, now: dt.datetime, limit: int) -> Section:
    rows, total = _bounded(
        Consumption.objects.filter(user_id=user_id).order_by("-closed_at", "-id"),
        limit,
        lambda c: {
            "order_id": c.order_id,
            "voucher": c.voucher_id,
            "closed_at": c.closed_at,
            "loss": c.loss,
            "amount": c.amount,
            "payout": payout_status(c),
            "paid_at": c.paid_at,
            "payout_key": c.payout_key,
        },
    )
    columns = _cols(
        ("order_id", "cause (losing order)"),
        ("voucher", "voucher"),
        ("closed_at", "closed", "time"),
        ("loss", "loss", "amount"),
        ("amount", "compensation", "amount"),
        ("payout", "payout"),
        ("paid_at", "paid", "time"),
        ("payout_key", "payout key"),
    )
    return Section("consumptions", "Vouchers", "Consumptions", columns, rows, total)


_RELATION_COLUMNS = (
    ("code", "code"),
    ("registered_at", "since", "time"),
    ("refusal", "refused (why)"),
    ("event_id", "cause (user.registered event)"),
)


def _relation_row(r: Relation) -> dict[str, Any]:
    return {
        "referrer": r.referrer_id,
        "referee": r.referee_id,
        "code": r.code,
        "registered_at": r.registered_at,
        "refusal": r.refusal,
        "event_id": r.event_id,
    }


def _referred_by(user_id: str, now: dt.datetime, limit: int) -> Section:
    rows, total = _bounded(Relation.objects.filter(referee_id=user_id), limit, _relation_row)
    columns = _cols(("referrer", "referrer", "user"), *_RELATION_COLUMNS)
    return Section("referred_by", "Referrals", "Referred by (as referee)", columns, rows, total)


def _referees(user_id: str, now: dt.datetime, limit: int) -> Section:
    rows, total = _bounded(
        Relation.objects.filter(referrer_id=user_id).order_by("-registered_at", "referee_id"),
        limit,
        _relation_row,
    )
    columns = _cols(("referee", "referee", "user"), *_RELATION_COLUMNS)
    return Section("referees", "Referrals", "Referees (as referrer)", columns, rows, total)


def _commission_row(c: Any) -> dict[str, Any]:
    return {
        "day": c.day,
        "run": c.run,
        "program": c.program,
        "referrer": c.referrer_id,
        "referee": c.referee_id,
        "asset": c.asset,
        "fills": c.fills,
        "fees": c.fees,
        "rate": c.rate,
        "amount": c.amount,
        "state": "invalid rebate" if c.state == "invalid" else c.state,
    }


_COMMISSION_COLUMNS = (
    ("day", "day"),
    ("run", "settlement run"),
    ("program", "program"),
    ("asset", "asset"),
    ("fills", "fills"),
    ("fees", "fees", "amount"),
    ("rate", "rate"),
    ("amount", "commission", "amount"),
    ("state", "status"),
)


def _commissions_earned(user_id: str, now: dt.datetime, limit: int) -> Section:
    rows, total = _bounded(
        with_state(Commission.objects.filter(referrer_id=user_id)).order_by("-day", "-id"),
        limit,
        _commission_row,
    )
    columns = _cols(("referee", "cause (referee's fills)", "user"), *_COMMISSION_COLUMNS)
    return Section(
        "commissions_earned", "Referrals", "Commissions earned (as referrer)", columns, rows, total
    )


def _commissions_generated(user_id: str, now: dt.datetime, limit: int) -> Section:
    rows, total = _bounded(
        with_state(Commission.objects.filter(referee_id=user_id)).order_by("-day", "-id"),
        limit,
        _commission_row,
    )
    columns = _cols(("referrer", "paid to referrer", "user"), *_COMMISSION_COLUMNS)
    return Section(
        "commissions_generated",
        "Referrals",
        "Commissions from this user's fills (as referee)",
        columns,
        rows,
        total,
    )


def _commission_payouts(user_id: str, now: dt.datetime, limit: int) -> Section:
    rows, total = _bounded(
        CommissionPayout.objects.filter(referrer_id=user_id).order_by("-day", "asset"),
        limit,
        lambda p: {
            "day": p.day,
            "asset": p.asset,
            "commissions": p.commissions,
            "carried_in": p.carried_in,
            "amount": p.amount,
            "carried_out": p.carried_out,
            "payout_key": p.payout_key,
        },
    )
    columns = _cols(
        ("day", "distribution day"),
        ("asset", "asset"),
        ("commissions", "commissions covered", "amount"),
        ("carried_in", "carried in", "amount"),
        ("amount", "paid", "amount"),
        ("carried_out", "carried out", "amount"),
        ("payout_key", "payout key"),
    )
    return Section("commission_payouts", "Referrals", "Commission payouts", columns, rows, total)


def _earn_activations(user_id: str, now: dt.datetime, limit: int) -> Section:
    rows, total = _bounded(
        Activation.objects.filter(user_id=user_id).order_by("-occurred_at", "-event_id"),
        limit,
        lambda a: {
            "occurred_at": a.occurred_at,
            "change": "activated" if a.active else "deactivated",
            "event_id": a.event_id,
        },
    )
    columns = _cols(
        ("occurred_at", "at", "time"), ("change", "change"), ("event_id", "cause (event)")
    )
    return Section("earn_activations", "Futures Earn", "Activations", columns, rows, total)


def _earn_interest(user_id: str, now: dt.datetime, limit: int) -> Section:
    queryset = DailyInterest.objects.filter(user_id=user_id).order_by("-day", "asset")
    interest = list(queryset[:limit])
    paid_days = set(
        EarnDistribution.objects.filter(day__in={row.day for row in interest}).values_list(
            "day", flat=True
        )
    )
    rows = [
        {
            "day": row.day,
            "asset": row.asset,
            "snapshots": row.snapshots,
            "principal": row.principal,
            "position_value": row.position_value,
            "boosted": f"{for_people(row.boosted_portion)} at {row.boosted_apr.normalize():f}",
            "base": f"{for_people(row.base_portion)} at {row.base_apr.normalize():f}",
            "interest": row.interest,
            "status": "paid" if row.day in paid_days else "accrued",
        }
        for row in interest
    ]
    total = len(rows) if len(rows) < limit else queryset.order_by().count()
    columns = _cols(
        ("day", "day"),
        ("asset", "asset"),
        ("snapshots", "snapshots while active"),
        ("principal", "P (lowest principal)", "amount"),
        ("position_value", "V (mean position value)", "amount"),
        ("boosted", "boosted portion at APR"),
        ("base", "base portion at APR"),
        ("interest", "interest", "amount"),
        ("status", "status"),
    )
    return Section("earn_interest", "Futures Earn", "Daily interest", columns, rows, total)


def _earn_snapshots(user_id: str, now: dt.datetime, limit: int) -> Section:
    rows, total = _bounded(
        Snapshot.objects.filter(user_id=user_id).order_by("-at", "asset"),
        limit,
        lambda s: {
            "at": s.at,
            "asset": s.asset,
            "principal": s.principal,
            "position_value": s.position_value,
        },
    )
    columns = _cols(
        ("at", "snapshot", "time"),
        ("asset", "asset"),
        ("principal", "principal", "amount"),
        ("position_value", "position value", "amount"),
    )
    return Section("earn_snapshots", "Futures Earn", "Snapshots", columns, rows, total)


def _delivery(payout: Any) -> str:
    if payout.acked_at is not None:
        return "applied by the wallet"
    if payout.published_at is not None:
        return "published"
    return "pending"


def _credits(user_id: str, now: dt.datetime, limit: int) -> Section:
    rows, total = _bounded(
        user_credits(user_id),
        limit,
        lambda p: {
            "created_at": p.created_at,
            "kind": p.kind,
            "amount": p.amount,
            "asset": p.asset,
            "account_kind": p.account_kind,
            "expires_at": p.expires_at,
            "delivery": _delivery(p),
            "cause": _json(p.transaction.cause),
            "key": p.idempotency_key,
        },
    )
    columns = _cols(
        ("created_at", "credited", "time"),
        ("kind", "kind"),
        ("amount", "amount", "amount"),
        ("asset", "asset"),
        ("account_kind", "account"),
        ("expires_at", "expires", "time"),
        ("delivery", "payout instruction"),
        ("cause", "cause", "json"),
        ("key", "idempotency key"),
    )
    return Section("credits", "Ledger", "Credits and payout instructions", columns, rows, total)


def quarantine_pattern(user_id: str) -> str:
    """A PostgreSQL regular expression finding ``"user_id": "<id>"`` in raw input.

    Quarantined input has no user column (it may not even parse), so the raw
    text is searched; quotes may be escaped once (an entry kept as the fields
    of a stream message holds the event as a JSON string)."""
    return r'"user_id\\?"\s*:\s*\\?"' + re.escape(user_id) + r'\\?"'


def _quarantine(user_id: str, now: dt.datetime, limit: int) -> Section:
    rows, total = _bounded(
        QuarantinedInput.objects.filter(raw__regex=quarantine_pattern(user_id)).order_by(
            "-received_at", "-id"
        ),
        limit,
        lambda q: {
            "id": q.pk,
            "received_at": q.received_at,
            "source": q.source,
            "event_type": q.event_type,
            "event_id": q.event_id,
            "reason": q.reason,
            "errors": _json(q.errors),
            "status": q.status,
        },
    )
    columns = _cols(
        ("id", "entry"),
        ("received_at", "received", "time"),
        ("source", "door"),
        ("event_type", "type"),
        ("event_id", "event id"),
        ("reason", "cause"),
        ("errors", "errors", "json"),
        ("status", "status"),
    )
    return Section("quarantine", "Quarantine", "Quarantined input", columns, rows, total)


# --- the ops dashboard: subjects and ranges ----------------------------------------------


@dataclass(frozen=True)
class Subject:
    """What a dashboard is about: a campaign, a voucher program, the referral
    program or Futures Earn."""

    key: str
    label: str
    kind: str


def subjects(limit: int = 200) -> list[Subject]:
    """Every campaign (newest first) and program the dashboard can chart."""
    found = [
        Subject(f"campaign:{slug}", f"Campaign {slug}: {title}", "campaign")
        for slug, title in Campaign.objects.order_by("-starts_at", "slug").values_list(
            "slug", "title"
        )[:limit]
    ]
    found += [
        Subject(f"vouchers:{slug}", f"Voucher program {slug}: {title}", "vouchers")
        for slug, title in VoucherProgram.objects.order_by("slug").values_list("slug", "title")[
            :limit
        ]
    ]
    found += [
        Subject("referrals", "Referral commissions", "referrals"),
        Subject("earn", "Futures Earn", "earn"),
    ]
    return found


def default_range(subject: Subject, today: dt.date) -> tuple[dt.date, dt.date]:
    """The days the charts show until someone picks others: always around today.

    A campaign: its life (registration opening to the end plus its issuance
    deadline), stretched to reach today when today falls outside it, so that an
    upcoming or finished campaign is seen beside the present. A program: the
    last 30 days. Never more than ``MAX_DAYS``: the days nearest today are kept.
    """
    if subject.kind != "campaign":
        return today - dt.timedelta(days=DEFAULT_DAYS - 1), today
    campaign = Campaign.objects.get(slug=subject.key.split(":", 1)[1])
    opens = campaign.registration_opens_at.astimezone(dt.UTC).date()
    closes = (
        (campaign.ends_at + dt.timedelta(days=campaign.issuance_deadline_days))
        .astimezone(dt.UTC)
        .date()
    )
    first, last = min(opens, today), max(closes, today)
    span = dt.timedelta(days=MAX_DAYS - 1)
    if last - first > span:
        if today - first >= span:
            # Long over: the year up to today.
            first = today - span
            last = today
        else:
            last = first + span
    return first, last


def default_subject(found: list[Subject], today: dt.date) -> Subject | None:
    """The subject the dashboard opens on: the newest campaign whose life holds
    today (registration opening to the issuance deadline), else the first one."""
    live = {
        f"campaign:{slug}"
        for slug, opens, ends, deadline in Campaign.objects.values_list(
            "slug", "registration_opens_at", "ends_at", "issuance_deadline_days"
        )
        if opens.astimezone(dt.UTC).date()
        <= today
        <= (ends + dt.timedelta(days=deadline)).astimezone(dt.UTC).date()
    }
    return next((s for s in found if s.key in live), found[0] if found else None)


# --- the ops dashboard: charts ------------------------------------------------------------


@dataclass(frozen=True)
class Dataset:
    label: str
    # Decimal strings, exact; the page turns them into numbers for drawing.
    data: list[str]


@dataclass(frozen=True)
class ChartSpec:
    key: str
    title: str
    unit: str
    kind: str  # "bar" or "line"
    datasets: list[Dataset]
    stacked: bool = False
    note: str = ""


@dataclass
class Dashboard:
    subject: Subject
    first_day: dt.date
    last_day: dt.date
    days: list[dt.date]
    charts: list[ChartSpec]
    figures: list[tuple[str, str]]

    def payload(self) -> dict[str, Any]:
        """What the page's script draws (rendered with json_script)."""
        return {
            "days": [day.isoformat() for day in self.days],
            "charts": [
                {
                    "key": chart.key,
                    "title": chart.title,
                    "unit": chart.unit,
                    "kind": chart.kind,
                    "stacked": chart.stacked,
                    "datasets": [{"label": d.label, "data": d.data} for d in chart.datasets],
                }
                for chart in self.charts
            ],
        }


@dataclass(frozen=True)
class _Range:
    first: dt.date
    last: dt.date
    days: list[dt.date]

    @property
    def params(self) -> dict[str, Any]:
        return {
            "first": self.first,
            "last": self.last,
            "start": dt.datetime.combine(self.first, dt.time.min, tzinfo=dt.UTC),
            "end": dt.datetime.combine(
                self.last + dt.timedelta(days=1), dt.time.min, tzinfo=dt.UTC
            ),
        }


def _day(column: str) -> str:
    return f"({column} AT TIME ZONE 'UTC')::date"


def _series(days: Sequence[dt.date], sql: str, params: dict[str, Any]) -> dict[str, list[Decimal]]:
    """Run an aggregate returning (day, series, value) rows; one value per day
    and series, 0 on days without rows."""
    index = {day: i for i, day in enumerate(days)}
    series: dict[str, list[Decimal]] = {}
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        for day, key, value in cursor.fetchall():
            values = series.setdefault(str(key), [Decimal(0)] * len(days))
            if day in index:
                values[index[day]] += Decimal(value)
    return series


def _datasets(
    series: dict[str, list[Decimal]], labels: Iterable[tuple[str, str]], size: int
) -> list[Dataset]:
    return [
        Dataset(label, [format_amount(v) for v in series.get(key, [Decimal(0)] * size)])
        for key, label in labels
    ]


def dashboard(subject: Subject, first: dt.date, last: dt.date) -> Dashboard:
    """The charts of one campaign or program over the UTC days first..last."""
    if last < first:
        raise ValueError("the range ends before it starts")
    if (last - first).days + 1 > MAX_DAYS:
        raise ValueError(f"a range spans at most {MAX_DAYS} days")
    days = [first + dt.timedelta(days=n) for n in range((last - first).days + 1)]
    span = _Range(first, last, days)
    builders = {
        "campaign": _campaign_charts,
        "vouchers": _voucher_charts,
        "referrals": _referral_charts,
        "earn": _earn_charts,
    }
    charts, figures = builders[subject.kind](subject, span)
    return Dashboard(subject, first, last, days, charts, figures)


def _campaign_charts(
    subject: Subject, span: _Range
) -> tuple[list[ChartSpec], list[tuple[str, str]]]:
    campaign = Campaign.objects.get(slug=subject.key.split(":", 1)[1])
    params = {**span.params, "campaign": campaign.pk}
    size = len(span.days)
    people = _series(
        span.days,
        f"""
        SELECT {_day("invited_at")}, 'invited', count(*) FROM campaigns_invitation
        WHERE campaign_id = %(campaign)s AND invited_at >= %(start)s AND invited_at < %(end)s
        GROUP BY 1
        UNION ALL
        SELECT {_day("registered_at")}, 'registered', count(*) FROM campaigns_participant
        WHERE campaign_id = %(campaign)s AND registered_at >= %(start)s AND registered_at < %(end)s
        GROUP BY 1
        """,  # noqa: S608 - constant fragments only
        params,
    )
    volume = _series(
        span.days,
        """
        SELECT day, 'volume', sum(volume) FROM campaigns_dailyvolume
        WHERE campaign_id = %(campaign)s AND day >= %(first)s AND day <= %(last)s
        GROUP BY day
        """,
        params,
    )
    spins = _series(
        span.days,
        f"""
        SELECT {_day("card_drawn_at")}, 'coverage', count(*) FROM campaigns_participant
        WHERE campaign_id = %(campaign)s AND card_drawn_at >= %(start)s AND card_drawn_at < %(end)s
        GROUP BY 1
        UNION ALL
        SELECT {_day("spun_at")}, 'daily', count(*) FROM campaigns_dailyspin
        WHERE campaign_id = %(campaign)s AND spun_at >= %(start)s AND spun_at < %(end)s
        GROUP BY 1
        """,  # noqa: S608
        params,
    )
    cards = _series(
        span.days,
        f"""
        SELECT {_day("card_drawn_at")}, card_percent, count(*) FROM campaigns_participant
        WHERE campaign_id = %(campaign)s AND card_drawn_at >= %(start)s AND card_drawn_at < %(end)s
        GROUP BY 1, 2
        """,  # noqa: S608
        params,
    )
    # One series per card of the table, and any other card ever drawn; keyed
    # by the percent as the database spells it ("8.00").
    percents = {Decimal(key).normalize(): key for key in cards}
    for entry in campaign_rules.parse_table(campaign.card_table, "percent"):
        percents.setdefault(entry.value.normalize(), f"{entry.value:.2f}")
    rewards = _series(
        span.days,
        f"""
        SELECT {_day("earned_at")}, kind, sum(amount) FROM campaigns_reward
        WHERE campaign_id = %(campaign)s AND earned_at >= %(start)s AND earned_at < %(end)s
        GROUP BY 1, 2
        UNION ALL
        SELECT {_day("t.posted_at")}, 'issued', sum(p.amount)
        FROM ledger_ledgertransaction t JOIN ledger_posting p ON p.transaction_id = t.id
        WHERE t.kind IN ('campaign.coverage_rebate', 'campaign.daily_prize')
          AND t.posted_at >= %(start)s AND t.posted_at < %(end)s
          AND starts_with(t.idempotency_key, %(prefix)s) AND p.amount > 0
        GROUP BY 1
        """,  # noqa: S608
        {**params, "prefix": f"campaign:{campaign.slug}:"},
    )
    asset = campaign.asset
    charts = [
        ChartSpec(
            "registrations",
            "Invitations and registrations",
            "users",
            "bar",
            _datasets(people, [("invited", "invited"), ("registered", "registered")], size),
        ),
        ChartSpec(
            "volume",
            "Valid volume",
            asset,
            "bar",
            _datasets(volume, [("volume", "valid futures volume")], size),
        ),
        ChartSpec(
            "spins",
            "Spins used",
            "spins",
            "bar",
            _datasets(spins, [("coverage", "coverage spins"), ("daily", "daily spins")], size),
            stacked=True,
        ),
        ChartSpec(
            "cards",
            "Coverage cards drawn",
            "cards",
            "bar",
            _datasets(
                cards,
                [(percents[p], f"{p:f}% card") for p in sorted(percents)],
                size,
            ),
            stacked=True,
        ),
        ChartSpec(
            "rewards",
            "Rewards earned and issued",
            asset,
            "bar",
            _datasets(
                rewards,
                [
                    ("coverage_rebate", "coverage rebates earned"),
                    ("daily_prize", "daily prizes won"),
                    ("issued", "bonuses issued"),
                ],
                size,
            ),
        ),
        *_funding_charts(campaign.funding_program, span, assets=[asset]),
    ]
    figures = budget(campaign)
    return charts, [
        ("invited", str(Invitation.objects.filter(campaign=campaign).count())),
        ("registered", str(Participant.objects.filter(campaign=campaign).count())),
        ("funded", for_people(figures.funded, asset)),
        ("issued", for_people(figures.issued, asset)),
        ("left in the funding account", for_people(figures.available, asset)),
        ("daily prizes won", for_people(figures.prizes_committed, asset)),
        ("coverage rebates drawn", for_people(figures.rebates_drawn, asset)),
    ]


def _voucher_charts(
    subject: Subject, span: _Range
) -> tuple[list[ChartSpec], list[tuple[str, str]]]:
    program = VoucherProgram.objects.get(slug=subject.key.split(":", 1)[1])
    params = {**span.params, "program": program.pk}
    size = len(span.days)
    vouchers = _series(
        span.days,
        f"""
        SELECT {_day("arrived_at")}, 'granted', count(*) FROM vouchers_voucher
        WHERE program_id = %(program)s AND arrived_at >= %(start)s AND arrived_at < %(end)s
        GROUP BY 1
        UNION ALL
        SELECT {_day("voided_at")}, 'voided', count(*) FROM vouchers_voucher
        WHERE program_id = %(program)s AND voided_at >= %(start)s AND voided_at < %(end)s
        GROUP BY 1
        UNION ALL
        SELECT {_day("expired_at")}, 'expired', count(*) FROM vouchers_voucher
        WHERE program_id = %(program)s AND expired_at >= %(start)s AND expired_at < %(end)s
        GROUP BY 1
        """,  # noqa: S608
        params,
    )
    compensation = _series(
        span.days,
        f"""
        SELECT {_day("c.closed_at")}, 'matched', sum(c.amount)
        FROM vouchers_consumption c JOIN vouchers_voucher v ON v.id = c.voucher_id
        WHERE v.program_id = %(program)s AND c.closed_at >= %(start)s AND c.closed_at < %(end)s
          AND c.released_at IS NULL  -- a released match was replaced by a later one
        GROUP BY 1
        UNION ALL
        SELECT {_day("c.paid_at")}, 'paid', sum(c.amount)
        FROM vouchers_consumption c JOIN vouchers_voucher v ON v.id = c.voucher_id
        WHERE v.program_id = %(program)s AND c.paid_at >= %(start)s AND c.paid_at < %(end)s
        GROUP BY 1
        UNION ALL
        SELECT {_day("c.cancelled_at")}, 'cancelled', sum(c.amount)
        FROM vouchers_consumption c JOIN vouchers_voucher v ON v.id = c.voucher_id
        WHERE v.program_id = %(program)s AND c.cancelled_at >= %(start)s
          AND c.cancelled_at < %(end)s AND c.released_at IS NULL
        GROUP BY 1
        """,  # noqa: S608
        params,
    )
    charts = [
        ChartSpec(
            "vouchers",
            "Vouchers granted, voided and expired",
            "vouchers",
            "bar",
            _datasets(
                vouchers,
                [
                    ("granted", "granted"),
                    ("voided", "voided"),
                    ("expired", "expired with money left"),
                ],
                size,
            ),
        ),
        ChartSpec(
            "compensation",
            "Compensation",
            program.asset,
            "bar",
            _datasets(
                compensation,
                [
                    ("matched", "matched (by order close day)"),
                    ("paid", "paid"),
                    ("cancelled", "cancelled"),
                ],
                size,
            ),
        ),
        *_funding_charts(program.funding_program, span, assets=[program.asset]),
    ]
    figures = program_budget(program)
    return charts, [
        ("vouchers granted", str(Voucher.objects.filter(program=program).count())),
        ("compensation paid", for_people(figures.paid, program.asset)),
        ("compensation owed (unpaid)", for_people(figures.owed, program.asset)),
        ("left in the funding account", for_people(figures.available, program.asset)),
    ]


def _referral_charts(
    subject: Subject, span: _Range
) -> tuple[list[ChartSpec], list[tuple[str, str]]]:
    params = span.params
    size = len(span.days)
    relations = _series(
        span.days,
        f"""
        SELECT {_day("registered_at")},
            CASE WHEN refusal = '' THEN 'relations' ELSE 'refused' END, count(*)
        FROM referrals_relation
        WHERE registered_at >= %(start)s AND registered_at < %(end)s
        GROUP BY 1, 2
        """,  # noqa: S608
        params,
    )
    commissions = _series(
        span.days,
        """
        SELECT day, asset || ' ' || status, sum(amount) FROM referrals_commission
        WHERE day >= %(first)s AND day <= %(last)s
        GROUP BY day, asset, status
        UNION ALL
        SELECT day, asset || ' paid', sum(amount) FROM referrals_commissionpayout
        WHERE day >= %(first)s AND day <= %(last)s
        GROUP BY day, asset
        """,
        params,
    )
    assets = sorted({key.split(" ", 1)[0] for key in commissions})
    charts = [
        ChartSpec(
            "relations",
            "Referral relations started",
            "referees",
            "bar",
            _datasets(relations, [("relations", "relations"), ("refused", "refused")], size),
        ),
        *(
            ChartSpec(
                f"commissions-{asset}",
                f"Commissions ({asset})",
                asset,
                "bar",
                _datasets(
                    commissions,
                    [
                        (f"{asset} settled", "settled (by fill day)"),
                        (f"{asset} invalid", "invalid rebates"),
                        (f"{asset} paid", "paid (distribution of that day)"),
                    ],
                    size,
                ),
            )
            for asset in assets
        ),
        *_funding_charts(REFERRAL_PROGRAM, span),
    ]
    return charts, [
        ("relations", str(Relation.objects.filter(refusal="").count())),
        (
            "referrers",
            str(Relation.objects.filter(refusal="").values("referrer_id").distinct().count()),
        ),
    ]


def _earn_charts(subject: Subject, span: _Range) -> tuple[list[ChartSpec], list[tuple[str, str]]]:
    params = span.params
    size = len(span.days)
    changes = _series(
        span.days,
        f"""
        SELECT {_day("occurred_at")},
            CASE WHEN active THEN 'activated' ELSE 'deactivated' END, count(*)
        FROM earn_activation
        WHERE occurred_at >= %(start)s AND occurred_at < %(end)s
        GROUP BY 1, 2
        """,  # noqa: S608
        params,
    )
    interest = _series(
        span.days,
        """
        SELECT day, asset, sum(interest) FROM earn_dailyinterest
        WHERE day >= %(first)s AND day <= %(last)s
        GROUP BY day, asset
        """,
        params,
    )
    charts = [
        ChartSpec(
            "activations",
            "Activations",
            "users",
            "bar",
            _datasets(changes, [("activated", "activated"), ("deactivated", "deactivated")], size),
        ),
        ChartSpec(
            "interest",
            "Daily interest accrued",
            "asset units",
            "bar",
            _datasets(interest, [(asset, asset) for asset in sorted(interest)], size),
        ),
        *_funding_charts(EARN_PROGRAM, span),
    ]
    return charts, []


def _funding_charts(
    program: str, span: _Range, assets: Sequence[str] | None = None
) -> list[ChartSpec]:
    """Per funding account of the program: the budget (everything funded to
    date) against what was used (everything debited to date), per day."""
    accounts = Account.objects.filter(kind=AccountKind.FUNDING, program=program)
    if assets is not None:
        accounts = accounts.filter(asset__in=assets)
    charts = []
    for account in accounts.order_by("asset"):
        series = _series(
            span.days,
            """
            WITH opening AS (
                SELECT coalesce(sum(amount) FILTER (WHERE amount > 0), 0) AS funded,
                    coalesce(-sum(amount) FILTER (WHERE amount < 0), 0) AS used
                FROM ledger_posting WHERE account_id = %(account)s AND posted_at < %(start)s
            ),
            per_day AS (
                SELECT (posted_at AT TIME ZONE 'UTC')::date AS day,
                    coalesce(sum(amount) FILTER (WHERE amount > 0), 0) AS funded,
                    coalesce(-sum(amount) FILTER (WHERE amount < 0), 0) AS used
                FROM ledger_posting
                WHERE account_id = %(account)s AND posted_at >= %(start)s AND posted_at < %(end)s
                GROUP BY 1
            ),
            running AS (
                SELECT d.day::date AS day,
                    o.funded + sum(coalesce(p.funded, 0)) OVER w AS funded,
                    o.used + sum(coalesce(p.used, 0)) OVER w AS used
                FROM generate_series(%(first)s::date, %(last)s::date, interval '1 day') AS d(day)
                CROSS JOIN opening o
                LEFT JOIN per_day p ON p.day = d.day::date
                WINDOW w AS (ORDER BY d.day)
            )
            SELECT day, 'funded', funded FROM running
            UNION ALL
            SELECT day, 'used', used FROM running
            """,
            {**span.params, "account": account.pk},
        )
        charts.append(
            ChartSpec(
                f"funding-{account.asset}",
                f"Funding used against budget ({account.asset})",
                account.asset,
                "line",
                _datasets(
                    series,
                    [("funded", "budget (funded to date)"), ("used", "used to date")],
                    len(span.days),
                ),
                note=f"account {account.code}",
            )
        )
    return charts
