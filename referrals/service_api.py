"""Referral endpoints for the exchange's other services (service token only):
look up a user's referral code (or a code's owner), and read or set a user's
community-partner status, as ``apply_config``'s ``community_partners`` does."""

from __future__ import annotations

from typing import Any

from django.http import Http404
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from access.authentication import ServiceTokenAuthentication
from access.middleware import user_id_problem
from access.openapi import ErrorSerializer
from access.permissions import IsService
from config import clock
from referrals import selectors, services
from referrals.configuration import NOTE_MAX
from referrals.models import CommunityPartner

CODE_MAX = 16  # ReferralCode.code's column


class UserIdField(serializers.CharField):
    """A user id as the contract bounds it (1-64 printable characters)."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("max_length", 64)
        kwargs.setdefault("trim_whitespace", False)
        super().__init__(**kwargs)

    def to_internal_value(self, data: Any) -> str:
        value = super().to_internal_value(data)
        problem = user_id_problem(value)
        if problem is not None:
            raise serializers.ValidationError(problem)
        return value


class ServiceView(APIView):
    """Other services only: a user JWT is not a credential here (401)."""

    authentication_classes = [ServiceTokenAuthentication]
    permission_classes = [IsService]


# --- referral codes -------------------------------------------------------------


class CodeLookupSerializer(serializers.Serializer):
    user_id = UserIdField(required=False, help_text="The user whose code is wanted...")
    code = serializers.CharField(
        required=False,
        max_length=CODE_MAX,
        help_text="... or the code whose owner is wanted (any case).",
    )

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if ("user_id" in attrs) == ("code" in attrs):
            raise serializers.ValidationError({"user_id": ["give either user_id or code"]})
        return attrs


class ReferralCodeSerializer(serializers.Serializer):
    user_id = serializers.CharField()
    code = serializers.CharField()
    link = serializers.CharField(help_text="REFERRAL_LINK_BASE followed by the code.")


class ReferralCodeView(ServiceView):
    @extend_schema(
        operation_id="referral_code_lookup",
        summary="A user's referral code and link, or the owner of a code",
        description=(
            "Give `user_id` or `code` (codes match in any case). 404 when the user has no "
            "code yet (their `user.registered` has not arrived) or no user holds the code."
        ),
        parameters=[CodeLookupSerializer],
        responses={
            200: ReferralCodeSerializer,
            404: OpenApiResponse(ErrorSerializer, description="No such code, or no code yet."),
        },
    )
    def get(self, request: Request) -> Response:
        query = CodeLookupSerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        if "user_id" in query.validated_data:
            user_id: str | None = query.validated_data["user_id"]
            code = selectors.code_of(str(user_id))
            if code is None:
                raise Http404("this user has no referral code")
        else:
            code = str(query.validated_data["code"]).strip().upper()
            user_id = selectors.user_of_code(code)
            if user_id is None:
                raise Http404("no user holds this referral code")
        return Response({"user_id": user_id, "code": code, "link": selectors.link(code)})


# --- community partners ---------------------------------------------------------


class PartnerQuerySerializer(serializers.Serializer):
    user_id = UserIdField()


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


class PartnerUpdateSerializer(serializers.Serializer):
    user_id = UserIdField()
    partner = serializers.BooleanField(help_text="true flags the user from now; false ends it.")
    note = serializers.CharField(
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
        parameters=[PartnerQuerySerializer],
        responses={200: PartnerSerializer},
    )
    def get(self, request: Request) -> Response:
        query = PartnerQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        return Response(PartnerSerializer(_status(query.validated_data["user_id"])).data)

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
    def put(self, request: Request) -> Response:
        body = PartnerUpdateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        user_id = body.validated_data["user_id"]
        change = services.set_partner(
            user_id,
            partner=body.validated_data["partner"],
            by=str(request.user),
            note=body.validated_data["note"],
        )
        return Response(
            PartnerChangeSerializer({**_status(user_id), "changed": change.changed}).data
        )
