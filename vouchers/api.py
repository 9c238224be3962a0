"""REST endpoints of the vouchers: the coupon center (users), grants (services)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.http import Http404
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from access.bodies import refuse_unknown_fields, unknown_fields
from access.middleware import require_text
from access.openapi import PATH_TEXT_PATTERN
from access.permissions import IsExchangeUser, IsService, caller_user_id
from config import clock
from ledger.money import format_amount
from ledger.serializers import AmountField, FieldErrorSerializer
from vouchers import rules, selectors, services
from vouchers.models import Voucher


def voucher_body(voucher: Voucher) -> dict[str, Any]:
    return {
        "id": voucher.pk,
        "program": voucher.program.slug,
        "template": voucher.template.code,
        "face_value": format_amount(voucher.face_value),
        "remaining": format_amount(voucher.remaining),
        "min_closing_amount": format_amount(voucher.min_closing_amount)
        if voucher.min_closing_amount is not None
        else None,
        "arrived_at": voucher.arrived_at,
        "expires_at": voucher.expires_at,
        "status": selectors.voucher_status(voucher, clock.now()),
    }


class VoucherSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    program = serializers.CharField()
    template = serializers.CharField()
    face_value = AmountField()
    remaining = AmountField()
    min_closing_amount = AmountField(allow_null=True)
    arrived_at = serializers.DateTimeField()
    expires_at = serializers.DateTimeField()
    status = serializers.ChoiceField(choices=["active", "used", "expired", "voided"])


class VoucherListSerializer(serializers.Serializer):
    results = VoucherSerializer(many=True, help_text="At most 500, earliest arrived first.")


_PAYOUT_STATUS = ["pending", "paid", "cancelled", "released"]


class VoucherOrderSerializer(serializers.Serializer):
    order_id = serializers.CharField()
    closed_at = serializers.DateTimeField()
    loss = AmountField()
    compensation = AmountField()
    payout = serializers.ChoiceField(choices=_PAYOUT_STATUS)
    paid_at = serializers.DateTimeField(allow_null=True)


class VoucherDetailSerializer(VoucherSerializer):
    orders = VoucherOrderSerializer(many=True, help_text="The orders that use it now.")


# The fields of one grant; any other is refused in that grant's result.
GRANT_FIELDS = ("idempotency_key", "user_id", "program", "template")


class GrantSerializer(serializers.Serializer):
    idempotency_key = serializers.CharField(max_length=services.GRANT_KEY_MAX)
    user_id = serializers.CharField(max_length=64)
    program = serializers.CharField()
    template = serializers.CharField()


class GrantBatchSerializer(serializers.Serializer):
    grants = serializers.ListField(
        child=GrantSerializer(), min_length=1, max_length=settings.MAX_EVENTS_PER_REQUEST
    )


class GrantReportSerializer(serializers.Serializer):
    granted = serializers.IntegerField()
    duplicate = serializers.IntegerField()
    rejected = serializers.IntegerField()
    # Schema only: a declared field named "errors" would shadow Serializer.errors.
    results = inline_serializer(
        "GrantOutcome",
        {
            "index": serializers.IntegerField(help_text="Position of the grant in the request."),
            "idempotency_key": serializers.CharField(),
            "status": serializers.ChoiceField(choices=["granted", "duplicate", "rejected"]),
            "voucher_id": serializers.IntegerField(required=False, help_text="When granted."),
            "errors": FieldErrorSerializer(many=True, required=False, help_text="When rejected."),
        },
        many=True,
    )


class ReleasedMatchSerializer(serializers.Serializer):
    voucher_id = serializers.IntegerField()
    compensation = AmountField()
    loss = AmountField()
    matched_at = serializers.DateTimeField()
    released_at = serializers.DateTimeField()


class VoucherVerdictSerializer(serializers.Serializer):
    voucher_id = serializers.IntegerField()
    reason = serializers.CharField(help_text="Why this voucher did or did not cover the order.")


class OrderExplanationSerializer(serializers.Serializer):
    order_id = serializers.CharField()
    consumed = serializers.BooleanField()
    voucher_id = serializers.IntegerField(allow_null=True)
    compensation = AmountField(allow_null=True)
    payout = serializers.ChoiceField(choices=_PAYOUT_STATUS, allow_null=True)
    loss = AmountField(allow_null=True)
    reasons = serializers.ListField(child=serializers.CharField())
    messages = serializers.ListField(child=serializers.CharField())
    vouchers = VoucherVerdictSerializer(many=True)
    final = serializers.BooleanField()
    note = serializers.CharField()
    released = ReleasedMatchSerializer(many=True)


class GrantView(APIView):
    permission_classes = [IsService]

    @extend_schema(
        operation_id="grant_vouchers",
        summary="Give vouchers (idempotent by key)",
        description=(
            'Body `{"grants": [{"idempotency_key", "user_id", "program", "template"}, ...]}`, '
            "1-5,000 grants. Each is answered `granted` (with `voucher_id`), `duplicate` (its key "
            "was used before: nothing changes) or `rejected` with field errors. Arrival is now."
        ),
        request=GrantBatchSerializer,
        responses={200: GrantReportSerializer},
    )
    def post(self, request: Request) -> Response:
        body = request.data
        refuse_unknown_fields(body, ["grants"])
        grants = body.get("grants") if isinstance(body, dict) else None
        if not isinstance(grants, list) or not grants:
            raise ValidationError({"grants": ["required: a non-empty list of grants"]})
        if len(grants) > settings.MAX_EVENTS_PER_REQUEST:
            raise ValidationError(
                {"grants": [f"at most {settings.MAX_EVENTS_PER_REQUEST} grants per request"]}
            )
        report = services.grant_vouchers(
            [_grant(item) for item in grants], source=f"api:{request.user}"
        )
        return Response(
            {
                "granted": report.granted,
                "duplicate": report.duplicate,
                "rejected": report.rejected,
                "results": report.results,
            }
        )


def _grant(item: Any) -> services.Grant:
    """One element of ``grants``, faults and all: the service refuses it alone."""
    if not isinstance(item, dict):
        return services.Grant(key="", user_id="", program="", template="")
    return services.Grant(
        key=str(item.get("idempotency_key") or ""),
        user_id=str(item.get("user_id") or ""),
        program=str(item.get("program") or ""),
        template=str(item.get("template") or ""),
        unknown=tuple(unknown_fields(item, GRANT_FIELDS)),
    )


class CouponCenterView(APIView):
    permission_classes = [IsExchangeUser]

    @extend_schema(
        operation_id="my_vouchers",
        summary="The caller's vouchers: active (default) or history",
        parameters=[OpenApiParameter("status", str, enum=["active", "history"])],
        responses={200: VoucherListSerializer},
    )
    def get(self, request: Request) -> Response:
        user_id = caller_user_id(request)
        wanted = request.query_params.get("status", "active")
        if wanted not in ("active", "history"):
            raise ValidationError({"status": ['"active" or "history"']})
        now = clock.now()
        query = (
            selectors.active_vouchers(user_id, now)
            if wanted == "active"
            else selectors.voucher_history(user_id, now)
        )
        return Response(
            {
                "results": [
                    voucher_body(v) for v in query.select_related("program", "template")[:500]
                ]
            }
        )


class VoucherDetailView(APIView):
    permission_classes = [IsExchangeUser]

    @extend_schema(
        operation_id="my_voucher",
        summary="A voucher and every order that used it",
        responses={200: VoucherDetailSerializer},
    )
    def get(self, request: Request, voucher_id: int) -> Response:
        user_id = caller_user_id(request)
        voucher = (
            Voucher.objects.filter(pk=voucher_id, user_id=user_id)
            .select_related("program", "template")
            .first()
        )
        if voucher is None:
            raise Http404("no such voucher for this user")
        return Response(
            {
                **voucher_body(voucher),
                "orders": [
                    {
                        "order_id": c.order_id,
                        "closed_at": c.closed_at,
                        "loss": format_amount(c.loss),
                        "compensation": format_amount(c.amount),
                        "payout": selectors.payout_status(c),
                        "paid_at": c.paid_at,
                    }
                    # The current matches: released ones were replaced as fills changed.
                    for c in voucher.consumptions.filter(released_at__isnull=True).order_by(
                        "closed_at", "id"
                    )
                ],
            }
        )


# CONTRACT.md trade.filled: an order id is a string of 1-128 characters.
ORDER_ID_MAX = 128


class OrderExplanationView(APIView):
    permission_classes = [IsExchangeUser]

    @extend_schema(
        operation_id="why_voucher_for_order",
        summary="Why an order did or did not use a voucher",
        description=(
            "`final` tells whether the answer can still change: a pending match follows the"
            " order's closing fills until it is paid; a paid one, or an order of a paid day"
            " that has not changed since, is final (`note` says why). `released` lists the"
            " order's earlier matches, replaced as its fills changed."
        ),
        parameters=[
            OpenApiParameter(
                "order_id",
                {
                    "type": "string",
                    "minLength": 1,
                    "maxLength": ORDER_ID_MAX,
                    "pattern": PATH_TEXT_PATTERN,
                },
                OpenApiParameter.PATH,
            )
        ],
        responses={200: OrderExplanationSerializer},
    )
    def get(self, request: Request, order_id: str) -> Response:
        user_id = caller_user_id(request)
        require_text("order_id", order_id, max_length=ORDER_ID_MAX)
        explanation = selectors.explain_order(user_id, order_id)
        if explanation is None:
            raise Http404("no closed order with this id for this user")
        consumption = explanation.consumption
        return Response(
            {
                "order_id": order_id,
                "consumed": explanation.consumed,
                "voucher_id": consumption.voucher_id if consumption else None,
                "compensation": format_amount(consumption.amount) if consumption else None,
                "payout": selectors.payout_status(consumption) if consumption else None,
                "loss": format_amount(consumption.loss) if consumption else None,
                "reasons": explanation.reasons,
                "messages": [rules.MESSAGES[r] for r in explanation.reasons],
                "vouchers": explanation.vouchers,
                "final": explanation.final,
                "note": explanation.note,
                "released": [
                    {
                        "voucher_id": c.voucher_id,
                        "compensation": format_amount(c.amount),
                        "loss": format_amount(c.loss),
                        "matched_at": c.matched_at,
                        "released_at": c.released_at,
                    }
                    for c in explanation.released
                ],
            }
        )
