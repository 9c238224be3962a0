"""REST endpoints of the ledger app: the ingestion door, the payout outbox for
the wallet service, and the caller's own credits."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.generics import ListAPIView
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from access.bodies import refuse_unknown_fields
from access.pagination import NewestFirst
from access.permissions import IsExchangeUser, IsService, caller_user_id
from ledger import selectors
from ledger.ingestion import ingest
from ledger.models import PayoutInstruction
from ledger.parsers import EventBatchParser
from ledger.payouts import acknowledge_payout, payout_message
from ledger.serializers import AmountField, FieldErrorSerializer


class IngestResponseSerializer(serializers.Serializer):
    accepted = serializers.IntegerField()
    duplicate = serializers.IntegerField()
    rejected = serializers.IntegerField()
    # Schema only: a declared field named "errors" would shadow Serializer.errors.
    results = inline_serializer(
        "EventOutcome",
        {
            "index": serializers.IntegerField(help_text="Position of the event in the request."),
            "event_id": serializers.CharField(allow_null=True),
            "status": serializers.ChoiceField(choices=["accepted", "duplicate", "rejected"]),
            "errors": FieldErrorSerializer(many=True, required=False),
            "reason": serializers.ChoiceField(
                choices=["invalid", "conflict", "refused"],
                required=False,
                help_text="Why a rejected event was refused: `invalid` (the contract or the"
                " wire bounds), `conflict` (its event_id came before with another body),"
                " `refused` (valid, but the database refused to store it).",
            ),
            "quarantine_id": serializers.IntegerField(required=False),
        },
        many=True,
    )


class EventBatchView(APIView):
    """Ingest a batch of exchange events (CONTRACT.md)."""

    permission_classes = [IsService]
    parser_classes = [EventBatchParser]

    @extend_schema(
        operation_id="ingest_events",
        summary="Ingest up to 5,000 exchange events",
        description=(
            'Body: `{"events": [...]}` with 1-5,000 events of CONTRACT.md. Each event is '
            "answered on its own: `accepted` (new), `duplicate` (same `event_id` and body "
            "already received: harmless) or `rejected` with the field errors; a rejected "
            "event is kept in quarantine for ops. One event never fails its batch: the "
            "others are stored whatever happens to it."
        ),
        request=inline_serializer(
            "EventBatch",
            {
                "events": serializers.ListField(
                    child=serializers.DictField(help_text="An event of CONTRACT.md."),
                    min_length=1,
                    max_length=settings.MAX_EVENTS_PER_REQUEST,
                )
            },
        ),
        responses={200: IngestResponseSerializer},
    )
    def post(self, request: Request) -> Response:
        body = request.data
        if not isinstance(body, dict) or "events" not in body:
            raise ValidationError({"events": ["required: a list of events"]})
        refuse_unknown_fields(body, ["events"])
        events = body["events"]
        if not isinstance(events, list) or not events:
            raise ValidationError({"events": ["must be a non-empty list of events"]})
        limit = settings.MAX_EVENTS_PER_REQUEST
        if len(events) > limit:
            raise ValidationError(
                {"events": [f"at most {limit} events per request, got {len(events)}"]}
            )
        report = ingest(
            events,
            source="rest",
            from_document=True,
            texts_clean=getattr(body, "texts_clean", False),
        )
        return Response(
            {**report.summary(), "results": [outcome.as_dict() for outcome in report.outcomes]},
            status=status.HTTP_200_OK,
        )


class PayoutSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    idempotency_key = serializers.CharField(
        help_text="Apply each key at most once: the same instruction may be delivered again."
    )
    user_id = serializers.CharField()
    account = serializers.ChoiceField(choices=["spot", "futures_bonus"])
    asset = serializers.CharField()
    amount = serializers.CharField(help_text="Decimal string.")
    kind = serializers.CharField(help_text="What the credit is, e.g. `voucher.compensation`.")
    expires_at = serializers.DateTimeField(allow_null=True)
    created_at = serializers.DateTimeField()
    transaction_id = serializers.IntegerField()
    cause = serializers.DictField(allow_null=True)


class PayoutAckSerializer(PayoutSerializer):
    acked_at = serializers.DateTimeField()
    acked_by = serializers.CharField(help_text="The service token that acknowledged it first.")


# Payout ids are bigints; a page holds at most LIMIT_MAX instructions.
AFTER_MAX = 2**62
LIMIT_MAX = 1000


class PayoutListView(APIView):
    permission_classes = [IsService]

    @extend_schema(
        operation_id="list_pending_payouts",
        summary="Payout instructions not yet acknowledged, oldest first",
        parameters=[
            OpenApiParameter(
                "after",
                {"type": "integer", "minimum": 0, "maximum": AFTER_MAX},
                description="Only ids greater than this.",
            ),
            OpenApiParameter(
                "limit",
                {"type": "integer", "minimum": 1, "maximum": LIMIT_MAX, "default": 500},
                description=f"1-{LIMIT_MAX}, default 500.",
            ),
        ],
        responses={
            200: inline_serializer(
                "PayoutPage",
                {
                    "results": PayoutSerializer(many=True),
                    "next_after": serializers.IntegerField(allow_null=True),
                },
            )
        },
    )
    def get(self, request: Request) -> Response:
        after = _int_param(request, "after", default=0, minimum=0, maximum=AFTER_MAX)
        limit = _int_param(request, "limit", default=500, minimum=1, maximum=LIMIT_MAX)
        rows = list(
            selectors.pending_payouts(after_id=after, limit=limit).select_related("transaction")
        )
        return Response(
            {
                "results": [payout_message(row) for row in rows],
                "next_after": rows[-1].pk if len(rows) == limit else None,
            }
        )


class PayoutAckView(APIView):
    permission_classes = [IsService]

    @extend_schema(
        operation_id="ack_payout",
        summary="Acknowledge that a payout instruction was applied (idempotent)",
        request=None,
        responses={200: PayoutAckSerializer},
    )
    def post(self, request: Request, payout_id: int) -> Response:
        if not PayoutInstruction.objects.filter(pk=payout_id).exists():
            raise NotFound(f"no payout instruction {payout_id}")
        payout = acknowledge_payout(payout_id=payout_id, by=str(request.user))
        return Response(
            {**payout_message(payout), "acked_at": payout.acked_at, "acked_by": payout.acked_by}
        )


class CreditSerializer(serializers.ModelSerializer):
    account = serializers.CharField(source="account_kind")
    cause = serializers.JSONField(source="transaction.cause")
    time = serializers.DateTimeField(source="created_at")
    status = serializers.SerializerMethodField()
    amount = AmountField()

    class Meta:
        model = PayoutInstruction
        fields = [
            "id",
            "kind",
            "account",
            "asset",
            "amount",
            "cause",
            "time",
            "expires_at",
            "status",
        ]

    def get_status(self, obj: PayoutInstruction) -> str:
        return "applied" if obj.acked_at else "pending"


class MyLedgerView(ListAPIView):
    """The caller's credits, newest first: what, how much, why, when."""

    permission_classes = [IsExchangeUser]
    serializer_class = CreditSerializer
    pagination_class = NewestFirst

    def get_queryset(self) -> Any:
        return selectors.user_credits(caller_user_id(self.request))


def _int_param(request: Request, name: str, *, default: int, minimum: int, maximum: int) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    # ASCII digits only: int() would also take a fullwidth or an Arabic-Indic digit.
    if not (raw.isascii() and raw.isdigit()):
        raise ValidationError({name: [f"must be an integer, not {raw!r}"]})
    value = int(raw)
    if not minimum <= value <= maximum:
        raise ValidationError({name: [f"must be between {minimum} and {maximum}"]})
    return value
