"""Ops screens of the ledger: the log, quarantine, accounts and funding, payouts.

Facts are read-only here: events, transactions, postings and payout
instructions cannot be added, changed or deleted from the admin. Ops act
through actions that call services (replay, discard, fund), each recorded.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import FieldDoesNotExist, PermissionDenied
from django.db import models
from django.db.models import OuterRef, QuerySet, Subquery, Sum
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html

from access.audit import AuditedAdmin
from ledger import wire
from ledger.bookkeeping import fund_account
from ledger.ingestion import discard_quarantined, replay_quarantined
from ledger.models import (
    Account,
    AccountKind,
    ClosedOrder,
    Event,
    ExchangeUser,
    LedgerTransaction,
    LogLink,
    PayoutDigest,
    PayoutInstruction,
    Posting,
    ProjectionCheckpoint,
    QuarantinedInput,
    QuarantineStatus,
)
from ledger.money import for_people, format_amount


def amount_column(
    name: str, description: str | None = None, *, exact: bool = False
) -> Callable[[Any], str]:
    """A column (or read-only field) showing the decimal field ``name`` as people
    read it (:func:`ledger.money.for_people`), sorted by the field. The stored
    value keeps every digit; a column of 18 places and exponents ("0E-18") tells
    a person nothing more. ``exact`` keeps every digit (no exponent, no trailing
    zeros) for the one kind of figure whose point is below the payout's places:
    a remainder that rounding carried to the next payout."""

    @admin.display(description=description or name.replace("_", " "), ordering=name)
    def column(obj: Any) -> str:
        value = getattr(obj, name)
        if value is None:
            return "-"  # the admin's own empty-value dash
        return format_amount(value) if exact else for_people(value)

    column.__name__ = name
    return column


_COLUMNS: dict[tuple[type[Any], str], Callable[[Any], str]] = {}


def _shown(model_admin: admin.ModelAdmin[Any], name: Any) -> Any:
    """``name`` itself, or for a decimal field its column (one per field, so the
    admin matches a field listed twice as the same)."""
    model = model_admin.model
    if not isinstance(name, str):
        return name
    try:
        field = model._meta.get_field(name)
    except FieldDoesNotExist:
        return name
    if not isinstance(field, models.DecimalField):
        return name
    key = (model, name)
    if key not in _COLUMNS:
        _COLUMNS[key] = amount_column(
            name, str(field.verbose_name), exact=name in getattr(model_admin, "exact_fields", ())
        )
    return _COLUMNS[key]


class AmountInput(forms.NumberInput):
    """A decimal input holding its value as written: "5000", not the column's
    "5000.000000000000000000" (what is typed back is read exactly either way)."""

    def format_value(self, value: Any) -> str | None:
        if isinstance(value, Decimal) and value.is_finite():
            return format_amount(value)
        return super().format_value(value)


# formfield_overrides of a screen (or inline) where ops type amounts.
AMOUNT_INPUTS: dict[type[models.Field[Any, Any]], dict[str, Any]] = {
    models.DecimalField: {"widget": AmountInput}
}


class AmountsAdmin(AuditedAdmin):
    """A screen where ops enter settings: amounts typed without trailing zeros,
    and those frozen read-only (rules once in force) read as people read them."""

    formfield_overrides = AMOUNT_INPUTS

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return [_shown(self, name) for name in self.readonly_names(request, obj)]

    def get_exclude(self, request: HttpRequest, obj: Any = None) -> Any:
        # A read-only amount is shown by its column, not its name: the form must
        # still leave the field out.
        names = [name for name in self.readonly_names(request, obj) if isinstance(name, str)]
        return [*(super().get_exclude(request, obj) or ()), *names]

    def readonly_names(self, request: HttpRequest, obj: Any = None) -> Any:
        """The read-only fields by name: what a screen overrides (rules frozen
        once in force) instead of ``get_readonly_fields``."""
        return super().get_readonly_fields(request, obj)


class ReadOnlyAdmin(AuditedAdmin):
    """Facts are appended by the product, never edited by hand.

    Their decimal fields, in the list and on the page of a row, read as people
    read amounts (:func:`amount_column`); those named in ``exact_fields`` keep
    every digit."""

    exact_fields: tuple[str, ...] = ()

    def get_list_display(self, request: HttpRequest) -> Any:
        return [_shown(self, name) for name in super().get_list_display(request)]

    def get_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        # Read-only pages: every field is displayed, none is a form input.
        return [_shown(self, name) for name in super().get_fields(request, obj)]

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Event)
class EventAdmin(ReadOnlyAdmin):
    list_display = (
        "position",
        "type",
        "origin",
        "event_id",
        "user_id",
        "occurred_at",
        "received_at",
        "source",
    )
    list_filter = ("type", "origin", "source")
    search_fields = ("=event_id", "=user_id")
    ordering = ("-position",)
    show_full_result_count = False


@admin.register(QuarantinedInput)
class QuarantinedInputAdmin(AuditedAdmin):
    list_display = (
        "id",
        "received_at",
        "source",
        "reason",
        "event_id",
        "event_type",
        "status",
        "first_error",
    )
    list_filter = ("status", "reason", "source", "event_type")
    search_fields = ("=event_id",)
    ordering = ("-received_at",)
    readonly_fields = (
        "received_at",
        "source",
        "event_id",
        "event_type",
        "reason",
        "errors",
        "status",
        "resolved_at",
        "resolved_by",
        "replay_result",
        "as_received",
    )
    fields = ("raw", *readonly_fields)
    actions = ["replay", "discard"]

    @admin.display(description="as received (exact bytes; never changed by a correction)")
    def as_received(self, obj: QuarantinedInput) -> str:
        if obj.received is None:
            return "(same as raw)"
        text = bytes(obj.received).decode("utf-8", errors="backslashreplace")
        return wire.printable(text, limit=20_000)

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description="error")
    def first_error(self, obj: QuarantinedInput) -> str:
        if not obj.errors:
            return ""
        first = obj.errors[0]
        return f"{first.get('field')}: {first.get('message')}"

    def save_model(
        self, request: HttpRequest, obj: QuarantinedInput, form: Any, change: bool
    ) -> None:
        # Correcting the raw input is only allowed while the entry is open.
        if obj.status != QuarantineStatus.OPEN:
            raise PermissionDenied("only open entries can be corrected")
        super().save_model(request, obj, form, change)

    # Replaying and discarding resolve an entry for good: operators only, who
    # hold the change permission of quarantined inputs (access/roles.py).
    @admin.action(description="Replay selected inputs (as corrected)", permissions=["change"])
    def replay(self, request: HttpRequest, queryset: QuerySet[QuarantinedInput]) -> None:
        results: dict[str, int] = {}
        for entry in queryset.filter(status=QuarantineStatus.OPEN):
            outcome = replay_quarantined(entry, by=request.user.get_username())
            results[outcome.status] = results.get(outcome.status, 0) + 1
        summary = (
            ", ".join(f"{n} {status}" for status, n in sorted(results.items())) or "nothing open"
        )
        self.message_user(request, f"Replayed: {summary}.")

    @admin.action(
        description="Discard selected inputs (kept, marked discarded)", permissions=["change"]
    )
    def discard(self, request: HttpRequest, queryset: QuerySet[QuarantinedInput]) -> None:
        count = 0
        for entry in queryset.filter(status=QuarantineStatus.OPEN):
            discard_quarantined(entry, by=request.user.get_username())
            count += 1
        self.message_user(request, f"Discarded {count} input(s).")


class FundForm(forms.Form):
    amount = forms.DecimalField(min_value=Decimal("0.00000001"), max_digits=38, decimal_places=18)
    note = forms.CharField(max_length=200, required=False)
    # Drawn when the form is shown: submitting twice funds once.
    key = forms.CharField(widget=forms.HiddenInput)


@admin.register(Account)
class AccountAdmin(ReadOnlyAdmin):
    list_display = (
        "code",
        "kind",
        "asset",
        "program",
        "user_id",
        "user_kind",
        "current_balance",
        "fund_link",
    )
    list_filter = ("kind", "asset", "user_kind")
    search_fields = ("code", "=user_id", "program")
    ordering = ("kind", "code")

    def get_list_display(self, request: HttpRequest) -> Any:
        # The "Fund" link only for those who may fund (fund_view refuses the others).
        shown = super().get_list_display(request)
        if request.user.has_perm("ledger.fund_account"):
            return shown
        return [name for name in shown if name != "fund_link"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Account]:
        # User accounts keep no balance column (see Account): sum their postings,
        # for the rows of the page only.
        posted = (
            Posting.objects.filter(account=OuterRef("pk"))
            .order_by()
            .values("account")
            .annotate(total=Sum("amount"))
            .values("total")
        )
        return super().get_queryset(request).annotate(posted_total=Subquery(posted))

    @admin.display(description="balance")
    def current_balance(self, obj: Account) -> str:
        if obj.kind == AccountKind.USER:
            return for_people(getattr(obj, "posted_total", None) or Decimal(0))
        return for_people(obj.balance)

    @admin.display(description="")
    def fund_link(self, obj: Account) -> str:
        if obj.kind != AccountKind.FUNDING:
            return ""
        return format_html(
            '<a href="{}">Fund</a>', reverse("admin:ledger_account_fund", args=[obj.pk])
        )

    def get_urls(self) -> list[Any]:
        return [
            path(
                "<int:account_id>/fund/",
                self.admin_site.admin_view(self.fund_view),
                name="ledger_account_fund",
            ),
            *super().get_urls(),
        ]

    def fund_view(self, request: HttpRequest, account_id: int) -> HttpResponse:
        if not request.user.has_perm("ledger.fund_account"):
            raise PermissionDenied("funding needs the 'fund account' permission (finance)")
        account = get_object_or_404(Account, pk=account_id, kind=AccountKind.FUNDING)
        form = FundForm(request.POST or None, initial={"key": uuid.uuid4().hex})
        if request.method == "POST" and form.is_valid():
            posted = fund_account(
                account=account,
                amount=form.cleaned_data["amount"],
                idempotency_key=f"admin:{form.cleaned_data['key']}",
                by=request.user.get_username(),
                note=form.cleaned_data["note"],
            )
            if posted.created:
                self.log_change(request, account, f"funded {form.cleaned_data['amount']}")
                self.message_user(
                    request,
                    f"Funded {account.code} with"
                    f" {for_people(form.cleaned_data['amount'], account.asset)}.",
                )
            else:
                self.message_user(request, "This top-up was already recorded.", messages.WARNING)
            return HttpResponseRedirect(reverse("admin:ledger_account_changelist"))
        context = {
            **self.admin_site.each_context(request),
            "title": f"Fund {account.code}",
            "account": account,
            "form": form,
            "opts": self.model._meta,
        }
        return TemplateResponse(request, "admin/ledger/account/fund.html", context)


class PostingInline(admin.TabularInline):
    model = Posting
    fields = ("account", "asset", "posted", "posted_at")
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description="amount")
    def posted(self, obj: Posting) -> str:
        return for_people(obj.amount)


@admin.register(LedgerTransaction)
class LedgerTransactionAdmin(ReadOnlyAdmin):
    list_display = ("id", "kind", "idempotency_key", "posted_at", "memo")
    list_filter = ("kind",)
    search_fields = ("idempotency_key",)
    ordering = ("-id",)
    inlines = [PostingInline]
    show_full_result_count = False


@admin.register(PayoutInstruction)
class PayoutInstructionAdmin(ReadOnlyAdmin):
    list_display = (
        "id",
        "kind",
        "user_id",
        "account_kind",
        "asset",
        "amount",
        "expires_at",
        "created_at",
        "published_at",
        "acked_at",
    )
    list_filter = ("kind", "asset", "account_kind")
    search_fields = ("=user_id", "idempotency_key")
    ordering = ("-id",)
    show_full_result_count = False


@admin.register(ExchangeUser)
class ExchangeUserAdmin(ReadOnlyAdmin):
    list_display = ("user_id", "account_type", "parent_user_id", "referral_code", "registered_at")
    list_filter = ("account_type",)
    search_fields = ("=user_id", "=parent_user_id")


@admin.register(ClosedOrder)
class ClosedOrderAdmin(ReadOnlyAdmin):
    list_display = (
        "user_id",
        "order_id",
        "first_close_at",
        "realized_pnl",
        "closing_notional",
        "market",
        "symbol",
        "origin",
    )
    list_filter = ("market", "origin")
    search_fields = ("=user_id", "=order_id")
    show_full_result_count = False


@admin.register(ProjectionCheckpoint)
class ProjectionCheckpointAdmin(ReadOnlyAdmin):
    list_display = ("projector", "position", "updated_at")


@admin.register(PayoutDigest)
class PayoutDigestAdmin(ReadOnlyAdmin):
    """What each payout paid, as one hash (ledger.digests): compare it with a
    digest recomputed from the postings, or with a replay's."""

    list_display = (
        "id",
        "recorded_at",
        "funding_account",
        "payers",
        "credits",
        "items",
        "total",
        "digest",
    )
    list_filter = ("asset", "payers")
    search_fields = ("=digest", "funding_account")
    ordering = ("-id",)
    show_full_result_count = False


@admin.register(LogLink)
class LogLinkAdmin(ReadOnlyAdmin):
    """The event log's hash chain, one link per append (ledger.chain):
    ``manage.py verify_log`` checks it, ``manage.py chain_head`` prints its head."""

    list_display = (
        "link",
        "first_position",
        "last_position",
        "events",
        "recorded_at",
        "chain_hash",
    )
    # Each event's entry is 40 bytes of binary: the digest of them is shown.
    exclude = ("entries",)
    search_fields = ("=chain_hash",)
    ordering = ("-link",)
    show_full_result_count = False
