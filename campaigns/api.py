"""REST endpoints of the campaigns: what the exchange's frontend shows a user,
and the eligibility question other services ask."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.http import Http404
from drf_spectacular.utils import PolymorphicProxySerializer, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from access.bodies import unknown_fields
from access.middleware import require_text, require_user_id
from access.openapi import ErrorSerializer
from access.permissions import IsExchangeUser, IsService, caller_user_id
from campaigns import rules, selectors, services
from campaigns.models import Campaign, CoverageDraw, Participant
from config import clock
from ledger.money import format_amount
from ledger.serializers import AmountField

# Campaign.slug's column: a longer slug names no campaign and is refused as such.
SLUG_MAX = 80


def _visible_campaign(slug: str, user_id: str) -> Campaign:
    require_text("slug", slug, max_length=SLUG_MAX)
    campaign = selectors.visible_campaigns(user_id).filter(slug=slug).first()
    if campaign is None:
        raise Http404(f"no campaign {slug!r} for this user")
    return campaign


def _participant(campaign: Campaign, user_id: str) -> Participant:
    participant = Participant.objects.filter(campaign=campaign, user_id=user_id).first()
    if participant is None:
        raise Http404("not registered for this campaign")
    return participant


def _phase(campaign: Campaign, now: dt.datetime) -> str:
    if now < campaign.starts_at:
        return "upcoming"
    if now < campaign.ends_at:
        return "running"
    return "drawn" if campaign.drawn_at else "ended"


def campaign_body(
    campaign: Campaign, now: dt.datetime, *, registered: bool | None = None
) -> dict[str, Any]:
    return {
        "slug": campaign.slug,
        "title": campaign.title,
        "description": campaign.description,
        "phase": _phase(campaign, now),
        "starts_at": campaign.starts_at,
        "ends_at": campaign.ends_at,
        "registration_opens_at": campaign.registration_opens_at,
        "registration_closes_at": campaign.registration_closes_at,
        "invitation_only": campaign.invitation_only,
        "registered": registered,
        "rules": {
            "asset": campaign.asset,
            "volume_target": format_amount(campaign.volume_target),
            "cards": [
                {"percent": format_amount(entry.value), "weight": entry.weight}
                for entry in rules.parse_table(campaign.card_table, "percent")
            ],
            "losing_order_limit": campaign.losing_order_limit,
            "cap_per_order": format_amount(campaign.cap_per_order),
            "daily_min_volume": format_amount(campaign.daily_min_volume),
            "prizes": [
                {"amount": format_amount(entry.value), "weight": entry.weight}
                for entry in rules.parse_table(campaign.prize_table, "amount")
            ],
            "excluded_symbols": list(campaign.excluded_symbols),
            "bonus_validity_days": campaign.bonus_validity_days,
            "issuance_deadline_days": campaign.issuance_deadline_days,
        },
        "draw": {
            "seed_sha256": campaign.seed_hash,
            "seed": campaign.seed if campaign.seed_revealed else None,
            "drawn_at": campaign.drawn_at,
        },
    }


class CardSerializer(serializers.Serializer):
    percent = AmountField()
    weight = serializers.IntegerField()


class PrizeSerializer(serializers.Serializer):
    amount = AmountField()
    weight = serializers.IntegerField()


class CampaignRulesSerializer(serializers.Serializer):
    asset = serializers.CharField()
    volume_target = AmountField()
    cards = CardSerializer(many=True, help_text="Coverage Cards and their draw weights.")
    losing_order_limit = serializers.IntegerField()
    cap_per_order = AmountField()
    daily_min_volume = AmountField()
    prizes = PrizeSerializer(many=True, help_text="Daily spin prizes and their draw weights.")
    excluded_symbols = serializers.ListField(child=serializers.CharField())
    bonus_validity_days = serializers.IntegerField()
    issuance_deadline_days = serializers.IntegerField()


class DrawCommitmentSerializer(serializers.Serializer):
    seed_sha256 = serializers.CharField(help_text="Published from the start.")
    seed = serializers.CharField(allow_null=True, help_text="Revealed after the draw.")
    drawn_at = serializers.DateTimeField(allow_null=True)


class CampaignSerializer(serializers.Serializer):
    slug = serializers.CharField()
    title = serializers.CharField()
    description = serializers.CharField()
    phase = serializers.ChoiceField(choices=["upcoming", "running", "ended", "drawn"])
    starts_at = serializers.DateTimeField()
    ends_at = serializers.DateTimeField(help_text="Exclusive.")
    registration_opens_at = serializers.DateTimeField()
    registration_closes_at = serializers.DateTimeField()
    invitation_only = serializers.BooleanField()
    registered = serializers.BooleanField(allow_null=True)
    rules = CampaignRulesSerializer()
    draw = DrawCommitmentSerializer()


class CampaignListSerializer(serializers.Serializer):
    results = CampaignSerializer(many=True)


class CampaignListView(APIView):
    permission_classes = [IsExchangeUser]

    @extend_schema(
        operation_id="list_campaigns",
        summary="Campaigns the caller can see",
        responses={200: CampaignListSerializer},
    )
    def get(self, request: Request) -> Response:
        user_id = caller_user_id(request)
        now = clock.now()
        registered = set(
            Participant.objects.filter(user_id=user_id).values_list("campaign_id", flat=True)
        )
        return Response(
            {
                "results": [
                    campaign_body(campaign, now, registered=campaign.pk in registered)
                    for campaign in selectors.visible_campaigns(user_id)
                ]
            }
        )


class CampaignDetailView(APIView):
    permission_classes = [IsExchangeUser]

    @extend_schema(
        operation_id="get_campaign",
        summary="A campaign's rules, dates and draw commitment",
        responses={200: CampaignSerializer},
    )
    def get(self, request: Request, slug: str) -> Response:
        user_id = caller_user_id(request)
        campaign = _visible_campaign(slug, user_id)
        registered = Participant.objects.filter(campaign=campaign, user_id=user_id).exists()
        return Response(campaign_body(campaign, clock.now(), registered=registered))


class EligibilitySerializer(serializers.Serializer):
    campaign = serializers.CharField()
    user_id = serializers.CharField()
    eligible = serializers.BooleanField()
    registered = serializers.BooleanField()
    reasons = serializers.ListField(
        child=serializers.ChoiceField(choices=list(rules.REASON_MESSAGES)),
        help_text="Every reason the user may not register; empty when eligible.",
    )
    messages = serializers.ListField(child=serializers.CharField())


def _eligibility(campaign: Campaign, user_id: str) -> Response:
    verdict = selectors.eligibility(campaign, user_id, clock.now())
    return Response(
        {
            "campaign": campaign.slug,
            "user_id": user_id,
            "eligible": verdict.eligible,
            "registered": verdict.registered,
            "reasons": verdict.reasons,
            "messages": [rules.REASON_MESSAGES[reason] for reason in verdict.reasons],
        }
    )


class EligibilityView(APIView):
    permission_classes = [IsExchangeUser]

    @extend_schema(
        operation_id="my_campaign_eligibility",
        summary="May I register? Yes, or every reason why not",
        responses={200: EligibilitySerializer},
    )
    def get(self, request: Request, slug: str) -> Response:
        user_id = caller_user_id(request)
        return _eligibility(_visible_campaign(slug, user_id), user_id)


class UserEligibilityView(APIView):
    """The same question asked by another service about any user: one
    operation per credential, so each takes one."""

    permission_classes = [IsService]

    @extend_schema(
        operation_id="campaign_eligibility",
        summary="May this user register? Yes, or every reason why not",
        responses={200: EligibilitySerializer},
    )
    def get(self, request: Request, slug: str, user_id: str) -> Response:
        require_user_id("user_id", user_id)
        require_text("slug", slug, max_length=SLUG_MAX)
        campaign = Campaign.objects.filter(slug=slug).first()
        if campaign is None:
            raise Http404(f"no campaign {slug!r}")
        return _eligibility(campaign, user_id)


class RegistrationSerializer(serializers.Serializer):
    campaign = serializers.CharField()
    registered_at = serializers.DateTimeField()


class RegistrationView(APIView):
    permission_classes = [IsExchangeUser]

    @extend_schema(
        operation_id="register_for_campaign",
        summary='"Register Now" (idempotent)',
        description="201 when registered now, 200 when already registered, 409 `not_eligible` with `fields.reasons`.",
        request=None,
        responses={201: RegistrationSerializer, 200: RegistrationSerializer},
    )
    def post(self, request: Request, slug: str) -> Response:
        user_id = caller_user_id(request)
        campaign = _visible_campaign(slug, user_id)
        participant, created = services.register(campaign, user_id)
        return Response(
            {"campaign": campaign.slug, "registered_at": participant.registered_at},
            status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
        )


class RewardSerializer(serializers.Serializer):
    kind = serializers.ChoiceField(choices=["coverage_rebate", "daily_prize"])
    reference = serializers.CharField(help_text="The covered order id, or the daily spin number.")
    amount = AmountField()
    earned_at = serializers.DateTimeField()
    status = serializers.ChoiceField(choices=["pending", "issued", "void"])
    issued_at = serializers.DateTimeField(allow_null=True)
    expires_at = serializers.DateTimeField(allow_null=True)


class MeSerializer(serializers.Serializer):
    campaign = serializers.CharField()
    registered_at = serializers.DateTimeField()
    valid_volume = AmountField()
    volume_target = AmountField()
    spins = inline_serializer(
        "SpinsAvailable",
        {"coverage": serializers.IntegerField(), "daily": serializers.IntegerField()},
    )
    card_percent = AmountField(allow_null=True)
    losing_orders_counted = serializers.IntegerField()
    losing_order_limit = serializers.IntegerField()
    daily_days_earned = serializers.IntegerField()
    daily_spins_used = serializers.IntegerField()
    covered_orders = serializers.IntegerField(allow_null=True)
    rewards = RewardSerializer(many=True)


class MeView(APIView):
    permission_classes = [IsExchangeUser]

    @extend_schema(
        operation_id="my_campaign_progress",
        summary="The caller's progress in a campaign",
        responses={200: MeSerializer},
    )
    def get(self, request: Request, slug: str) -> Response:
        user_id = caller_user_id(request)
        campaign = _visible_campaign(slug, user_id)
        participant = _participant(campaign, user_id)
        now = clock.now()
        progress = selectors.progress(campaign, participant, now)
        return Response(
            MeSerializer(
                {
                    "campaign": campaign.slug,
                    "registered_at": participant.registered_at,
                    "valid_volume": progress.valid_volume,
                    "volume_target": campaign.volume_target,
                    "spins": {
                        "coverage": progress.coverage_spins,
                        "daily": progress.daily_spins_available,
                    },
                    "card_percent": progress.card_percent,
                    "losing_orders_counted": progress.losing_orders,
                    "losing_order_limit": campaign.losing_order_limit,
                    "daily_days_earned": progress.daily_days_earned,
                    "daily_spins_used": progress.daily_spins_used,
                    "covered_orders": progress.draw.covered if progress.draw else None,
                    "rewards": progress.rewards,
                }
            ).data
        )


class CoverageSpinSerializer(serializers.Serializer):
    kind = serializers.ChoiceField(choices=["coverage"])
    card_percent = AmountField(help_text="The Coverage Card drawn, in percent.")


class DailySpinSerializer(serializers.Serializer):
    kind = serializers.ChoiceField(choices=["daily"])
    number = serializers.IntegerField(help_text="Which of the user's daily spins.")
    amount = AmountField(help_text="The prize, always won.")
    asset = serializers.CharField()


class SpinView(APIView):
    permission_classes = [IsExchangeUser]
    # A spin draws a prize: stricter than the user rate, so scripting it does not pay.
    throttle_scope = "spin"

    @extend_schema(
        operation_id="spin",
        summary="Use a spin: the coverage card, or a daily sure-win prize",
        description=(
            "409 with a code when there is nothing to spin: `no_spin_available`, "
            "`card_already_drawn`, `campaign_ended`, `campaign_not_started`, `not_registered`, "
            "`disqualified`, `budget_exhausted`."
        ),
        request=inline_serializer(
            "Spin", {"kind": serializers.ChoiceField(choices=["coverage", "daily"])}
        ),
        responses={
            200: PolymorphicProxySerializer(
                component_name="SpinResult",
                serializers={"coverage": CoverageSpinSerializer, "daily": DailySpinSerializer},
                resource_type_field_name="kind",
            )
        },
    )
    def post(self, request: Request, slug: str) -> Response:
        user_id = caller_user_id(request)
        body = request.data if isinstance(request.data, dict) else {}
        kind = body.get("kind")
        errors = unknown_fields(body, ["kind"])
        if kind not in ("coverage", "daily"):
            errors = {"kind": ['must be "coverage" or "daily"'], **errors}
        if errors:
            raise ValidationError(errors)
        campaign = _visible_campaign(slug, user_id)
        outcome = services.spin(campaign, user_id, str(kind))
        if outcome.kind == "coverage":
            assert outcome.card_percent is not None
            return Response(
                {"kind": "coverage", "card_percent": format_amount(outcome.card_percent)}
            )
        assert outcome.amount is not None
        return Response(
            {
                "kind": "daily",
                "number": outcome.number,
                "amount": format_amount(outcome.amount),
                "asset": campaign.asset,
            }
        )


class DrawnOrderSerializer(serializers.Serializer):
    order_id = serializers.CharField()
    loss = AmountField()
    ticket = serializers.CharField(help_text="HMAC-SHA256 of the order under the seed, in hex.")
    covered = serializers.BooleanField()
    rebate = AmountField()


class CoverageDrawSerializer(serializers.Serializer):
    campaign = serializers.CharField()
    seed = serializers.CharField()
    seed_sha256 = serializers.CharField()
    card_percent = AmountField(allow_null=True)
    losing_orders = serializers.IntegerField()
    covered = serializers.IntegerField()
    orders = DrawnOrderSerializer(many=True)
    how_to_verify = serializers.CharField()


class DrawView(APIView):
    permission_classes = [IsExchangeUser]

    @extend_schema(
        operation_id="my_coverage_draw",
        summary="Which of the caller's losing orders were covered, and how to recompute it",
        description="409 `draw_not_done` until the draw, whose seed's SHA-256 is already public.",
        responses={200: CoverageDrawSerializer, 409: ErrorSerializer},
    )
    def get(self, request: Request, slug: str) -> Response:
        user_id = caller_user_id(request)
        campaign = _visible_campaign(slug, user_id)
        participant = _participant(campaign, user_id)
        if not campaign.seed_revealed:
            raise services.CampaignRefusal(
                "draw_not_done",
                f"the draw happens after the end ({campaign.ends_at.isoformat()}) and the lateness"
                " window; the seed's SHA-256 is already public",
            )
        draw = CoverageDraw.objects.filter(campaign=campaign, user_id=user_id).first()
        candidates = selectors.participant_losing_orders(campaign, participant)
        chosen = {item["order_id"] for item in (draw.chosen if draw else [])}
        return Response(
            {
                "campaign": campaign.slug,
                "seed": campaign.seed,
                "seed_sha256": campaign.seed_hash,
                "card_percent": format_amount(draw.percent) if draw else None,
                "losing_orders": draw.losing_orders if draw else len(candidates),
                "covered": draw.covered if draw else 0,
                "orders": [
                    {
                        "order_id": order.order_id,
                        "loss": format_amount(order.loss),
                        "ticket": rules.ticket(
                            campaign.seed, f"{campaign.slug}:order:{user_id}:{order.order_id}"
                        ),
                        "covered": order.order_id in chosen,
                        "rebate": format_amount(rules.rebate(order.loss, campaign.cap_per_order))
                        if order.order_id in chosen
                        else "0",
                    }
                    for order in candidates
                ],
                "how_to_verify": (
                    "sha256(bytes.fromhex(seed)) equals seed_sha256. Each order's ticket is "
                    "HMAC-SHA256(key=bytes.fromhex(seed), message='<slug>:order:<user_id>:<order_id>') "
                    "in hex; covered = round_half_up(card_percent x losing_orders / 100); the covered "
                    "orders are those with the smallest tickets. Each is rebated its loss, at most "
                    f"{format_amount(campaign.cap_per_order)} {campaign.asset}, rounded down to 8 decimals."
                ),
            }
        )
