"""Writes of the campaigns app: campaigns, invitations, registration, spins.

Every user action is a domain event appended to the log (``campaign.registered``,
``campaign.card_drawn``, ``campaign.daily_prize_won``) and folded by
``campaigns/projections.py``; the event id is derived from the cause, so a
repeated request records nothing twice.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.db import connection, transaction
from django.db.models import Count, F

from access.errors import DomainError
from campaigns import rules, selectors
from campaigns.models import Campaign, DailySpin, Participant, SpinAllowance
from config import clock
from ledger.bookkeeping import open_funding_account
from ledger.event_store import (
    DomainEvent,
    append_domain_events,
    take_append_lock,
)
from ledger.money import for_people

logger = logging.getLogger(__name__)

RULE_FIELDS = (
    "starts_at",
    "ends_at",
    "asset",
    "volume_target",
    "card_table",
    "losing_order_limit",
    "cap_per_order",
    "daily_min_volume",
    "prize_table",
    "lateness",
    "bonus_validity_days",
    "issuance_deadline_days",
    "excluded_symbols",
    "funding_program",
)


class CampaignRefusal(DomainError):
    def __init__(self, code: str, message: str, *, reasons: list[str] | None = None) -> None:
        self.code = code
        super().__init__(message, fields={"reasons": reasons} if reasons else None)
        self.reasons = reasons or []


class BudgetExhausted(CampaignRefusal):
    def __init__(self, campaign_id: int, message: str) -> None:
        super().__init__("budget_exhausted", message)
        self.campaign_id = campaign_id


# --- campaigns -------------------------------------------------------------------


def validate_rules(fields: dict[str, Any]) -> None:
    """Refuse a campaign whose rules contradict RULES.md section 1 (ValueError naming the field)."""
    if fields["ends_at"] <= fields["starts_at"]:
        raise ValueError("ends_at: must be after starts_at")
    if fields["registration_closes_at"] <= fields["registration_opens_at"]:
        raise ValueError("registration_closes_at: must be after registration_opens_at")
    for name, key in (("card_table", "percent"), ("prize_table", "amount")):
        table = fields.get(name)
        if table is None:
            continue
        try:
            parsed = rules.parse_table(table, key)
        except (KeyError, TypeError, ValueError, ArithmeticError):
            raise ValueError(f'{name}: a list of {{"{key}": "...", "weight": N}}') from None
        if not parsed or any(entry.weight <= 0 or entry.value <= 0 for entry in parsed):
            raise ValueError(f"{name}: values and weights must be positive")
        if name == "prize_table" and any(not 1 <= entry.value <= 100 for entry in parsed):
            raise ValueError("prize_table: every prize is between 1 and 100")
        if name == "card_table" and any(entry.value > 100 for entry in parsed):
            raise ValueError("card_table: a card covers at most 100%")


@transaction.atomic
def create_campaign(*, slug: str, **fields: Any) -> Campaign:
    """A new campaign with a fresh secret seed (its hash is public from now on)
    and its funding account."""
    fields.setdefault("funding_program", f"campaign:{slug}")
    validate_rules(fields)
    seed = rules.new_seed()
    campaign = Campaign.objects.create(
        slug=slug, seed=seed, seed_hash=rules.seed_hash(seed), created_at=clock.now(), **fields
    )
    open_funding_account(program=campaign.funding_program, asset=campaign.asset)
    return campaign


@transaction.atomic
def update_campaign(campaign: Campaign, **fields: Any) -> list[str]:
    """Change a campaign; its rules are frozen once it has started (history must
    be computed with the rules that were announced). Returns the changed fields."""
    changed = [name for name, value in fields.items() if getattr(campaign, name) != value]
    frozen = [name for name in changed if name in RULE_FIELDS]
    if frozen and clock.now() >= campaign.starts_at:
        raise ValueError(f"{campaign.slug} has started; its rules are frozen: {', '.join(frozen)}")
    for name in changed:
        setattr(campaign, name, fields[name])
    validate_rules(
        {
            name: getattr(campaign, name)
            for name in (*RULE_FIELDS, "registration_opens_at", "registration_closes_at")
        }
    )
    if changed:
        campaign.save()
        open_funding_account(program=campaign.funding_program, asset=campaign.asset)
    return changed


# --- invitations -----------------------------------------------------------------


def invitation_ids_from_csv(text: str) -> Iterator[str]:
    """User ids from a CSV: the column ``user_id`` if there is a header, else the first column."""
    reader = csv.reader(io.StringIO(text))
    first = next(reader, None)
    if first is None:
        return
    header = [cell.strip().lower() for cell in first]
    if "user_id" in header:
        column = header.index("user_id")
    else:
        column = 0
        yield from _cell(first, 0)
    for row in reader:
        yield from _cell(row, column)


def _cell(row: list[str], column: int) -> Iterator[str]:
    if len(row) > column:
        value = row[column].strip()
        if value:
            if len(value) > 64:
                raise ValueError(f"user id longer than 64 characters: {value[:70]!r}")
            yield value


# Invited users per ``campaign.invited`` event.
INVITE_CHUNK = 5_000


def invite(campaign: Campaign, user_ids: Iterable[str], *, source: str) -> int:
    """Add users to the invitation list (set-based: COPY, then one INSERT). Returns
    how many were new; inviting someone twice changes nothing."""
    now = clock.now()
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            "CREATE TEMP TABLE IF NOT EXISTS invite_upload (user_id text) ON COMMIT DROP"
        )
        cursor.execute("TRUNCATE invite_upload")
        raw = connection.connection
        assert raw is not None
        with (
            raw.cursor() as copy_cursor,
            copy_cursor.copy("COPY invite_upload (user_id) FROM STDIN") as copy,
        ):
            for user_id in user_ids:
                copy.write_row((user_id,))
        cursor.execute(
            """
            INSERT INTO campaigns_invitation (campaign_id, user_id, invited_at, source)
            SELECT DISTINCT %s, user_id, %s, %s FROM invite_upload
            ON CONFLICT (campaign_id, user_id) DO NOTHING
            RETURNING user_id
            """,
            [campaign.pk, now, source[:100]],
        )
        invited = sorted(user_id for (user_id,) in cursor.fetchall())
        # The list decides who may register: it is in the log, in chunks
        # named by their first user (replay invites each chunk again).
        append_domain_events(
            [
                DomainEvent(
                    event_id=f"campaign.invited:{campaign.slug}:{now.isoformat()}:{chunk[0]}",
                    type="campaign.invited",
                    occurred_at=now,
                    data={"campaign": campaign.slug, "source": source[:100], "users": chunk},
                )
                for chunk in (
                    invited[start : start + INVITE_CHUNK]
                    for start in range(0, len(invited), INVITE_CHUNK)
                )
            ]
        )
        return len(invited)


# --- registration ------------------------------------------------------------------


def register(campaign: Campaign, user_id: str) -> tuple[Participant, bool]:
    """Register a user ("Register Now"). Idempotent: a registered user gets their
    registration back. An ineligible user is refused with every reason."""
    existing = Participant.objects.filter(campaign=campaign, user_id=user_id).first()
    if existing is not None:
        return existing, False
    _, refused = register_many(campaign, [user_id])
    if user_id in refused:
        reasons = refused[user_id]
        raise CampaignRefusal(
            "not_eligible",
            "not eligible: " + "; ".join(rules.REASON_MESSAGES[r] for r in reasons),
            reasons=reasons,
        )
    return Participant.objects.get(campaign=campaign, user_id=user_id), True


def register_many(
    campaign: Campaign, user_ids: Iterable[str]
) -> tuple[list[str], dict[str, list[str]]]:
    """Register users now, each as :func:`register` would, in one append.
    Returns those newly registered, and the refused with their reasons
    (users registered already are neither)."""
    now = clock.now()
    users = list(dict.fromkeys(user_ids))
    registered, refused = [], {}
    for user_id, verdict in selectors.eligibilities(campaign, users, now).items():
        if verdict.registered:
            continue
        if verdict.eligible:
            registered.append(user_id)
        else:
            refused[user_id] = verdict.reasons
    append_domain_events(
        [
            DomainEvent(
                event_id=f"campaign.registered:{campaign.slug}:{user_id}",
                type="campaign.registered",
                occurred_at=now,
                user_id=user_id,
                data={"campaign": campaign.slug},
            )
            for user_id in registered
        ]
    )
    return registered, refused


# --- spins ---------------------------------------------------------------------------


@dataclass(frozen=True)
class SpinOutcome:
    kind: str
    card_percent: Decimal | None = None
    number: int | None = None
    amount: Decimal | None = None


def spin(campaign: Campaign, user_id: str, kind: str) -> SpinOutcome:
    """Use one spin of ``kind`` (``coverage`` or ``daily``) and return what it won.

    The participant's row is locked for the whole spin, so parallel requests
    for one available spin give one win and clear refusals."""
    [outcome] = spin_many(campaign, [(user_id, kind)])
    if isinstance(outcome, CampaignRefusal):
        raise outcome
    return outcome


def spin_many(
    campaign: Campaign, spins: list[tuple[str, str]]
) -> list[SpinOutcome | CampaignRefusal]:
    """The spins (user, ``coverage`` or ``daily``) one after the other, each
    decided as :func:`spin` decides it, in one transaction and one append:
    what each won, or why it was refused. A daily prize refused for the
    budget raises the campaign's alert."""
    for _, kind in spins:
        if kind not in ("coverage", "daily"):
            raise CampaignRefusal("invalid_kind", 'kind must be "coverage" or "daily"')
    now = clock.now()
    alerts: list[BudgetExhausted] = []
    with transaction.atomic():
        # The log's append lock before any row lock: ingestion takes it first and
        # then its projectors update these rows, so the other order deadlocks.
        take_append_lock()
        users = sorted({user_id for user_id, _ in spins})
        participants = {
            p.user_id: p
            for p in Participant.objects.select_for_update()
            .filter(campaign=campaign, user_id__in=users)
            .order_by("user_id")
        }
        allowances = {
            a.user_id: a for a in SpinAllowance.objects.filter(campaign=campaign, user_id__in=users)
        }
        disqualified = selectors.disqualified_users(users)
        spinner = _Spinner(campaign, now, allowances)
        outcomes: list[SpinOutcome | CampaignRefusal] = []
        for user_id, kind in spins:
            participant = participants.get(user_id)
            try:
                if participant is None:
                    raise CampaignRefusal("not_registered", "register for the campaign first")
                if now >= campaign.ends_at:
                    raise CampaignRefusal(
                        "campaign_ended", "the campaign has ended; unused spins are void"
                    )
                if now < campaign.starts_at:
                    raise CampaignRefusal("campaign_not_started", "the campaign has not started")
                if user_id in disqualified:
                    raise CampaignRefusal("disqualified", "the user is excluded from campaigns")
                outcomes.append(spinner.spin(participant, kind))
            except BudgetExhausted as exhausted:
                alerts.append(exhausted)
                outcomes.append(exhausted)
            except CampaignRefusal as refusal:
                outcomes.append(refusal)
        spinner.commit()
    for alert in alerts:
        record_budget_alert(alert.campaign_id, str(alert))
    return outcomes


class _Spinner:
    """The spins of one transaction: decided one after the other, written at once."""

    def __init__(
        self,
        campaign: Campaign,
        now: dt.datetime,
        allowances: dict[str, SpinAllowance],
    ) -> None:
        self.campaign, self.now, self.allowances = campaign, now, allowances
        self.events: list[DomainEvent] = []
        self.cards_drawn: dict[str, Decimal] = {}
        self.used: dict[str, int] | None = None
        self.prizes = Decimal(0)
        self.available: Decimal | None = None
        self.committed = Decimal(0)

    def spin(self, participant: Participant, kind: str) -> SpinOutcome:
        if kind == "coverage":
            return self._coverage(participant)
        return self._daily(participant)

    def _coverage(self, participant: Participant) -> SpinOutcome:
        campaign, user_id = self.campaign, participant.user_id
        percent = self.cards_drawn.get(user_id, participant.card_percent)
        if percent is not None:
            raise CampaignRefusal(
                "card_already_drawn", f"the card is final: {for_people(percent)}%"
            )
        allowance = self.allowances.get(user_id)
        if allowance is None or allowance.coverage_granted_at is None:
            raise CampaignRefusal(
                "no_spin_available",
                f"no coverage spin yet: reach {for_people(campaign.volume_target, campaign.asset)}"
                " of valid volume (spins are refreshed every 5 minutes)",
            )
        percent = rules.card_for(
            campaign.seed, campaign.slug, user_id, rules.parse_table(campaign.card_table, "percent")
        )
        self.cards_drawn[user_id] = percent
        self.events.append(
            DomainEvent(
                event_id=f"campaign.card_drawn:{campaign.slug}:{user_id}",
                type="campaign.card_drawn",
                occurred_at=self.now,
                user_id=user_id,
                data={"campaign": campaign.slug, "percent": str(percent)},
            )
        )
        return SpinOutcome("coverage", card_percent=percent)

    def _daily(self, participant: Participant) -> SpinOutcome:
        campaign, user_id = self.campaign, participant.user_id
        if self.used is None:
            self.used = dict(
                DailySpin.objects.filter(campaign=campaign, user_id__in=list(self.allowances))
                .values("user_id")
                .annotate(n=Count("id"))
                .values_list("user_id", "n")
            )
        allowance = self.allowances.get(user_id)
        earned = allowance.daily_earned if allowance else 0
        used = self.used.get(user_id, 0)
        if used >= earned:
            raise CampaignRefusal(
                "no_spin_available",
                "no daily spin left: trade at least"
                f" {for_people(campaign.daily_min_volume, campaign.asset)}"
                " of valid volume on a day to earn one",
            )
        number = used + 1
        amount = rules.daily_prize_for(
            campaign.seed,
            campaign.slug,
            user_id,
            number,
            rules.parse_table(campaign.prize_table, "amount"),
        )
        if self.available is None:
            # The campaign's row lock orders every prize against the funding.
            locked = Campaign.objects.select_for_update().get(pk=campaign.pk)
            account = selectors.funding_account(locked)
            self.available = account.balance if account else Decimal(0)
            self.committed = locked.prizes_committed
        if self.committed + self.prizes + amount > self.available:
            raise BudgetExhausted(
                campaign.pk,
                f"campaign {campaign.slug}: a daily prize of {for_people(amount, campaign.asset)}"
                " would take prizes won to"
                f" {for_people(self.committed + self.prizes + amount, campaign.asset)},"
                f" above the funding of {for_people(self.available, campaign.asset)}",
            )
        self.prizes += amount
        self.used[user_id] = number
        self.events.append(
            DomainEvent(
                event_id=f"campaign.daily_prize_won:{campaign.slug}:{user_id}:{number}",
                type="campaign.daily_prize_won",
                occurred_at=self.now,
                user_id=user_id,
                data={"campaign": campaign.slug, "number": number, "amount": str(amount)},
            )
        )
        return SpinOutcome("daily", number=number, amount=amount)

    def commit(self) -> None:
        if self.prizes:
            Campaign.objects.filter(pk=self.campaign.pk).update(
                prizes_committed=F("prizes_committed") + self.prizes
            )
        append_domain_events(self.events)


def record_budget_alert(campaign_id: int, message: str) -> None:
    """Flag the campaign for ops (shown in the admin) and log an error."""
    logger.error("budget alert: %s", message)
    Campaign.objects.filter(pk=campaign_id).update(
        budget_alert=message[:2000], budget_alert_at=clock.now()
    )
