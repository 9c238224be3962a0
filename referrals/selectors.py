"""Reads of the referrals app: a user's code, standing, referees and commissions."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db.models import Case, Count, Exists, OuterRef, QuerySet, Sum, Value, When

from ledger.models import PaidItem
from ledger.selectors import holding_as_of, measure_since
from referrals import rules
from referrals.jobs import INVALIDATE, terms_for
from referrals.models import (
    Commission,
    CommissionStatus,
    CommunityPartner,
    ReferralCode,
    Relation,
)


def code_of(user_id: str) -> str | None:
    return ReferralCode.objects.filter(user_id=user_id).values_list("code", flat=True).first()


def link(code: str) -> str:
    """The shareable link: the configured base (REFERRAL_LINK_BASE) followed by the code."""
    return f"{settings.REFERRAL_LINK_BASE}{code}"


def user_of_code(code: str) -> str | None:
    """The owner of a code; codes are matched case-insensitively, as at registration."""
    return (
        ReferralCode.objects.filter(code=code.strip().upper())
        .values_list("user_id", flat=True)
        .first()
    )


def partner_flag(user_id: str, now: dt.datetime) -> CommunityPartner | None:
    """The user's community-partner flag going on now (the earliest), if any."""
    return CommunityPartner.going_on(user_id, now).order_by("since").first()


def is_partner(user_id: str, at: dt.datetime) -> bool:
    return CommunityPartner.in_force(user_id, at).exists()


def standing(user_id: str, at: dt.datetime) -> list[dict[str, Any]]:
    """Per program: the MX holding now, and the tier rate it gives."""
    mx = holding_as_of(user_id, "MX", at)
    partner = is_partner(user_id, at)
    result = []
    for program in ("futures", "spot"):
        terms = terms_for(program, at)
        partner_rate = Decimal(str(terms["partner_rate"])) if terms.get("partner_rate") else None
        rate = rules.tier_rate(
            rules.parse_tiers(terms["tiers"]), mx, partner_rate=partner_rate, partner=partner
        )
        result.append(
            {
                "program": program,
                "mx_holding": mx,
                "rate": rate,
                "community_partner": partner and partner_rate is not None,
            }
        )
    return result


def referees(user_id: str) -> QuerySet[Relation]:
    return Relation.objects.filter(referrer_id=user_id, refusal="").order_by("-registered_at")


def referee_status(relation: Relation, at: dt.datetime) -> dict[str, Any]:
    futures_until = rules.relation_valid_until(
        relation.registered_at, terms_for("futures", at)["validity_days"]
    )
    spot_until = rules.relation_valid_until(
        relation.registered_at, terms_for("spot", at)["validity_days"]
    )
    invalid_since = min(
        (
            t
            for t in (
                measure_since(relation.referrer_id, INVALIDATE),
                measure_since(relation.referee_id, INVALIDATE),
            )
            if t
        ),
        default=None,
    )
    if invalid_since is not None and invalid_since <= at:
        status = "invalid"
    elif (
        futures_until is not None
        and at >= futures_until
        and (spot_until is None or at < spot_until)
    ):
        status = "spot_only"
    elif futures_until is not None and at >= futures_until:
        status = "expired"
    else:
        status = "valid"
    return {
        "referee": rules.mask(relation.referee_id),
        "since": relation.registered_at,
        "futures_valid_until": futures_until,
        "spot_valid_until": spot_until,
        "status": status,
        "invalid_since": invalid_since,
    }


def with_state(commissions: QuerySet[Commission]) -> QuerySet[Any]:
    """Annotate ``state``: invalid (an invalid rebate), paid (a credit paid the
    row: ``ledger.PaidItem``), else settled (waiting for payment)."""
    paid = PaidItem.objects.filter(payer="referral.commission", item_id=OuterRef("id"))
    return commissions.annotate(
        state=Case(
            When(status=CommissionStatus.INVALID, then=Value("invalid")),
            When(Exists(paid), then=Value("paid")),
            default=Value("settled"),
        )
    )


def commissions_by_day(user_id: str) -> list[dict[str, Any]]:
    rows = (
        with_state(Commission.objects.filter(referrer_id=user_id))
        .values("day", "program", "asset", "state")
        .annotate(amount=Sum("amount"), referees=Count("referee_id", distinct=True))
        .order_by("-day", "program", "asset", "state")
    )
    return [{"status": row.pop("state"), **row} for row in (dict(row) for row in rows[:1000])]
