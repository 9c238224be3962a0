"""Referral endpoints for the exchange's other services (service token only):
look up a user's referral code (or a code's owner), and read or set a user's
community-partner status, as ``apply_config``'s ``community_partners`` does.
The user is named in the path, so each operation has one shape of request."""

from __future__ import annotations

from typing import Any

from django.http import Http404
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from access.bodies import ClosedSerializer, JsonBooleanField, JsonCharField
from access.middleware import require_text, require_user_id
from access.permissions import IsService
from config import clock
from referrals import selectors, services
from referrals.configuration import NOTE_MAX
from referrals.models import CommunityPartner

CODE_MAX = 16  # ReferralCode.code's column
CODE_PATTERN = "^[A-Za-z0-9]+$"  # codes are letters and digits, matched in any case


class ServiceView(APIView):
    """Other services only: a user JWT is answered 403, as everywhere."""

    permission_classes = [IsService]


# --- referral codes -------------------------------------------------------------


class ReferralCodeSerializer(serializers.Serializer):
    user_id = serializers.CharField()
    code = serializers.CharField()
    link = serializers.CharField(help_text="REFERRAL_LINK_BASE followed by the code.")


def _code_answer(user_id: str, code: str) -> Response:
    return Response({"user_id": user_id, "code": code, "link": selectors.link(code)})


class UserReferralCodeView(ServiceView):
    @extend_schema(
        operation_id="user_referral_code",
        summary="A user's referral code and link",
        description="404 while the user has no code (their `user.registered` has not arrived).",
        responses={200: ReferralCodeSerializer},
    )
    def get(self, request: Request, user_id: str) -> Response:
        require_user_id("user_id", user_id)
        code = selectors.code_of(user_id)
        if code is None:
            raise Http404("this user has no referral code")
        return _code_answer(user_id, code)


class ReferralCodeOwnerView(ServiceView):
    @extend_schema(
        operation_id="referral_code_owner",
        summary="The user who holds a referral code (codes match in any case)",
        description="404 when no user holds the code.",
        parameters=[
            OpenApiParameter(
                "code",
                {"type": "string", "minLength": 1, "maxLength": CODE_MAX, "pattern": CODE_PATTERN},
                OpenApiParameter.PATH,
            )
        ],
        responses={200: ReferralCodeSerializer},
    )
    def get(self, request: Request, code: str) -> Response:
        require_text("code", code, max_length=CODE_MAX)
        # Codes are ASCII: upper-casing other text could fold it into one ("ß" -> "SS").
        if not code.isascii():
            raise Http404("no user holds this referral code")
        code = code.strip().upper()
        user_id = selectors.user_of_code(code)
        if user_id is None:
            raise Http404("no user holds this referral code")
        return _code_answer(user_id, code)


# --- community partners ---------------------------------------------------------


class PartnerSerializer(serializers.Serializer):
    user_id = serializers.CharField()
    partner = serializers.BooleanField(
        help_text="Flagged now: the program's partner rate applies to the user's referees."
    )
    since = serializers.DateTimeField(allow_null=True, help_text="Flagged since; null if not.")
    note = serializers.CharField(allow_blank=True)


class PartnerChangeSerializer(PartnerSerializer):
    changed = serializers.BooleanField(
        help_text="False when the user already had this status: nothing was recorded."
    )


class PartnerUpdateSerializer(ClosedSerializer):
    partner = JsonBooleanField(help_text="true flags the user from now; false ends it.")
    note = JsonCharField(
        required=False, allow_blank=True, max_length=NOTE_MAX, default="", help_text="Why."
    )


def _status(user_id: str) -> dict[str, Any]:
    flag: CommunityPartner | None = selectors.partner_flag(user_id, clock.now())
    return {
        "user_id": user_id,
        "partner": flag is not None,
        "since": flag.since if flag else None,
        "note": flag.note if flag else "",
    }


class PartnerView(ServiceView):
    @extend_schema(
        operation_id="community_partner",
        summary="Whether a user is a community partner now, since when and why",
        description="A user never flagged (or no longer) is `partner: false`.",
        responses={200: PartnerSerializer},
    )
    def get(self, request: Request, user_id: str) -> Response:
        require_user_id("user_id", user_id)
        return Response(PartnerSerializer(_status(user_id)).data)

    @extend_schema(
        operation_id="set_community_partner",
        summary="Flag a user as a community partner from now, or end the flag",
        description=(
            "Idempotent: a user who already has the status is left as they are "
            "(`changed: false`). A change is recorded in the event log "
            "(`referral.partner_flagged` / `referral.partner_unflagged`) with the "
            "calling service's name."
        ),
        request=PartnerUpdateSerializer,
        responses={200: PartnerChangeSerializer},
    )
    def put(self, request: Request, user_id: str) -> Response:
        require_user_id("user_id", user_id)
        body = PartnerUpdateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        change = services.set_partner(
            user_id,
            partner=body.validated_data["partner"],
            by=str(request.user),
            note=body.validated_data["note"],
        )
        return Response(
            PartnerChangeSerializer({**_status(user_id), "changed": change.changed}).data
        )
