"""The Earn page of the exchange's frontend (user JWT)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from access.permissions import IsExchangeUser, caller_user_id
from config import clock
from earn import selectors, services
from earn.models import Activation
from ledger.money import format_amount
from ledger.serializers import AmountField


class ActivationSerializer(serializers.Serializer):
    active = serializers.BooleanField()
    since = serializers.DateTimeField(allow_null=True)
    changed = serializers.BooleanField(help_text="false: it was already in that state")


class TermsSerializer(serializers.Serializer):
    effective_from = serializers.DateField()
    position_threshold = AmountField()
    boosted_principal = AmountField()
    boosted_apr = AmountField()
    base_apr = AmountField()
    snapshot_times = serializers.ListField(child=serializers.CharField(), help_text="UTC, `HH:MM`.")


class SnapshotSerializer(serializers.Serializer):
    at = serializers.DateTimeField()
    principal = AmountField()
    position_value = AmountField()


class TodaySnapshotSerializer(SnapshotSerializer):
    asset = serializers.CharField()
    estimated = serializers.BooleanField(help_text="Not taken yet: valued as things stand now.")


class InterestFiguresSerializer(serializers.Serializer):
    asset = serializers.CharField()
    principal = AmountField(help_text="P: the lowest of the day's snapshots.")
    position_value = AmountField(help_text="V: their mean.")
    boosted_portion = AmountField()
    boosted_apr = AmountField()
    base_portion = AmountField()
    base_apr = AmountField()
    interest = AmountField()


class TodaySerializer(serializers.Serializer):
    day = serializers.DateField()
    snapshots = TodaySnapshotSerializer(many=True)
    estimate = InterestFiguresSerializer(many=True)


class EarnStatusSerializer(serializers.Serializer):
    active = serializers.BooleanField()
    since = serializers.DateTimeField(allow_null=True)
    assets = serializers.ListField(child=serializers.CharField())
    terms = TermsSerializer()
    today = TodaySerializer()


class DailyInterestSerializer(InterestFiguresSerializer):
    day = serializers.DateField()
    snapshots = SnapshotSerializer(many=True)
    status = serializers.ChoiceField(choices=["accrued", "paid"])


class InterestListSerializer(serializers.Serializer):
    results = DailyInterestSerializer(many=True, help_text="Newest first, at most 200.")


def _numbers(row: dict[str, Any]) -> dict[str, Any]:
    return {
        key: format_amount(value) if isinstance(value, Decimal) else value
        for key, value in row.items()
    }


def _activation(change: Activation | None, changed: bool) -> dict[str, Any]:
    active = change is not None and change.active
    return {"active": active, "since": change.occurred_at if change else None, "changed": changed}


class ActivationView(APIView):
    permission_classes = [IsExchangeUser]

    @extend_schema(
        operation_id="earn_activate",
        summary="Activate Futures Earn from now on",
        description=(
            "Recorded as an `earn.activated` event with its instant. Snapshots from"
            " the next instant on count; a day whose first snapshot was taken before"
            " activation earns nothing (its lowest principal is 0). 201 when activated,"
            " 200 when it was already active."
        ),
        request=None,
        responses={200: ActivationSerializer, 201: ActivationSerializer},
    )
    def post(self, request: Request) -> Response:
        change, changed = services.set_active(caller_user_id(request), True)
        return Response(
            _activation(change, changed),
            status=status.HTTP_201_CREATED if changed else status.HTTP_200_OK,
        )

    @extend_schema(
        operation_id="earn_deactivate",
        summary="Deactivate Futures Earn from now on",
        description=(
            "Recorded as an `earn.deactivated` event. Snapshots from the next"
            " instant on have principal 0, so that day earns nothing. 200 either way."
        ),
        request=None,
        responses={200: ActivationSerializer},
    )
    def delete(self, request: Request) -> Response:
        change, changed = services.set_active(caller_user_id(request), False)
        return Response(_activation(change, changed))


class EarnView(APIView):
    permission_classes = [IsExchangeUser]

    @extend_schema(
        operation_id="earn_status",
        summary="The caller's Earn status, the terms in force, today's snapshots and an estimate",
        description=(
            "`today.snapshots`: the day's three instants per asset; `estimated: true` for"
            " instants not taken yet, valued as the wallet and positions stand now."
            " `today.estimate`: the interest those snapshots would give (the final figure"
            " comes from the snapshots actually taken)."
        ),
        responses={200: EarnStatusSerializer},
    )
    def get(self, request: Request) -> Response:
        user_id = caller_user_id(request)
        now = clock.now()
        terms = selectors.terms_for(now.date())
        change = selectors.latest_change(user_id, now)
        snapshots = selectors.day_snapshots(user_id, now.date(), now)
        return Response(
            {
                "active": change is not None and change.active,
                "since": change.occurred_at if change else None,
                "assets": list(terms.assets),
                "terms": {
                    "effective_from": terms.effective_from,
                    "position_threshold": format_amount(terms.position_threshold),
                    "boosted_principal": format_amount(terms.boosted_principal),
                    "boosted_apr": format_amount(terms.boosted_apr),
                    "base_apr": format_amount(terms.base_apr),
                    "snapshot_times": [t.strftime("%H:%M") for t in terms.snapshot_times],
                },
                "today": {
                    "day": now.date(),
                    "snapshots": [_numbers(s) for s in snapshots],
                    "estimate": [_numbers(e) for e in selectors.estimate(snapshots, terms)],
                },
            }
        )


class InterestView(APIView):
    permission_classes = [IsExchangeUser]

    @extend_schema(
        operation_id="earn_interest",
        summary="The caller's daily Earn interest with every number behind it",
        description=(
            "Newest first, at most 200 rows (a row per day and asset): the day's snapshots,"
            " P (the lowest principal), V (the mean position value), the boosted and base"
            " portions with their APRs, the interest (portion x APR / 365, rounded down"
            " to 8 decimals once) and its status: `accrued` (paid the next day) or `paid`."
        ),
        responses={200: InterestListSerializer},
    )
    def get(self, request: Request) -> Response:
        rows = selectors.interest_history(caller_user_id(request))
        return Response(
            {
                "results": [
                    {**_numbers(row), "snapshots": [_numbers(s) for s in row["snapshots"]]}
                    for row in rows
                ]
            }
        )
