"""The referral page of the exchange's frontend (user JWT)."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from access.permissions import IsExchangeUser, caller_user_id
from config import clock
from ledger.money import format_amount
from ledger.serializers import AmountField
from referrals import selectors


class StandingSerializer(serializers.Serializer):
    program = serializers.ChoiceField(choices=["futures", "spot"])
    mx_holding = AmountField()
    rate = AmountField(help_text="The commission rate the holding gives, e.g. `0.2`.")
    community_partner = serializers.BooleanField()


class MyReferralSerializer(serializers.Serializer):
    code = serializers.CharField(allow_null=True)
    link = serializers.CharField(allow_null=True)
    programs = StandingSerializer(many=True)
    referees = serializers.IntegerField()


class RefereeSerializer(serializers.Serializer):
    referee = serializers.CharField(help_text="Masked user id.")
    since = serializers.DateTimeField()
    futures_valid_until = serializers.DateTimeField(allow_null=True)
    spot_valid_until = serializers.DateTimeField(allow_null=True)
    status = serializers.ChoiceField(choices=["valid", "spot_only", "expired", "invalid"])
    invalid_since = serializers.DateTimeField(allow_null=True)


class RefereeListSerializer(serializers.Serializer):
    results = RefereeSerializer(many=True, help_text="Newest first, at most 500.")


class CommissionDaySerializer(serializers.Serializer):
    day = serializers.DateField()
    program = serializers.ChoiceField(choices=["futures", "spot"])
    asset = serializers.CharField()
    status = serializers.ChoiceField(choices=["settled", "paid", "invalid rebate"])
    amount = AmountField()
    referees = serializers.IntegerField()


class CommissionListSerializer(serializers.Serializer):
    results = CommissionDaySerializer(many=True, help_text="Newest day first, at most 1,000.")


class MyReferralView(APIView):
    permission_classes = [IsExchangeUser]

    @extend_schema(
        operation_id="my_referral",
        summary="The caller's code, link, tier and rate per program, and number of referees",
        responses={200: MyReferralSerializer},
    )
    def get(self, request: Request) -> Response:
        user_id = caller_user_id(request)
        now = clock.now()
        code = selectors.code_of(user_id)
        return Response(
            {
                "code": code,
                "link": selectors.link(code) if code else None,
                "programs": [
                    {
                        **row,
                        "mx_holding": format_amount(row["mx_holding"]),
                        "rate": format_amount(row["rate"]),
                    }
                    for row in selectors.standing(user_id, now)
                ],
                "referees": selectors.referees(user_id).count(),
            }
        )


class MyInviteesView(APIView):
    permission_classes = [IsExchangeUser]

    @extend_schema(
        operation_id="my_invitees",
        summary="The caller's referees (masked): since when, valid until, status",
        responses={200: RefereeListSerializer},
    )
    def get(self, request: Request) -> Response:
        user_id = caller_user_id(request)
        now = clock.now()
        return Response(
            {
                "results": [
                    selectors.referee_status(r, now) for r in selectors.referees(user_id)[:500]
                ]
            }
        )


class MyCommissionsView(APIView):
    permission_classes = [IsExchangeUser]

    @extend_schema(
        operation_id="my_commissions",
        summary="The caller's commissions per day, program and asset, with status",
        description=(
            "Status: `settled` (to be paid the next day), `paid`, or `invalid rebate`"
            " (the relation was invalidated before payment: never paid)."
        ),
        responses={200: CommissionListSerializer},
    )
    def get(self, request: Request) -> Response:
        user_id = caller_user_id(request)
        return Response(
            {
                "results": [
                    {
                        **row,
                        "amount": format_amount(row["amount"]),
                        "status": "invalid rebate" if row["status"] == "invalid" else row["status"],
                    }
                    for row in selectors.commissions_by_day(user_id)
                ]
            }
        )
