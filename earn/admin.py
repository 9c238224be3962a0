"""Ops screens of Futures Earn: terms versions, active users, snapshots,
daily interest with totals per asset, distributions and the pool's funding."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django import forms
from django.contrib import admin
from django.db.models import OuterRef, QuerySet, Subquery
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html

from config import clock
from earn import rules
from earn.jobs import POOL_PROGRAM
from earn.models import (
    Accrual,
    Activation,
    DailyInterest,
    EarnDistribution,
    EarnTerms,
    Snapshot,
    SnapshotRun,
)
from ledger.admin import AmountsAdmin, ReadOnlyAdmin, amount_column
from ledger.models import Account, AccountKind
from ledger.money import for_people

TERMS_FIELDS = (
    "effective_from",
    "assets",
    "position_threshold",
    "boosted_principal",
    "boosted_apr",
    "base_apr",
    "snapshot_times",
)


class EarnTermsForm(forms.ModelForm):
    class Meta:
        model = EarnTerms
        fields = TERMS_FIELDS

    def clean_snapshot_times(self) -> Any:
        times = self.cleaned_data["snapshot_times"]
        try:
            rules.parse_times(times if isinstance(times, list) else [])
        except ValueError as exc:
            raise forms.ValidationError(str(exc)) from None
        return times

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        for name in ("boosted_apr", "base_apr"):
            value = cleaned.get(name)
            if value is not None and not 0 <= value <= 1:
                self.add_error(name, "between 0 and 1 (0.15 is 15%)")
        return cleaned


@admin.register(EarnTerms)
class EarnTermsAdmin(AmountsAdmin):
    form = EarnTermsForm
    list_display = (
        "effective_from",
        "assets",
        amount_column("position_threshold"),
        amount_column("boosted_principal"),
        amount_column("boosted_apr"),
        amount_column("base_apr"),
        "snapshot_times",
    )

    def readonly_names(self, request: HttpRequest, obj: EarnTerms | None = None) -> Any:
        # Terms in force are history: add new terms (a later day) instead.
        if obj is not None and obj.effective_from <= clock.today():
            return TERMS_FIELDS
        return ()

    def has_delete_permission(self, request: HttpRequest, obj: EarnTerms | None = None) -> bool:
        # Only terms not yet in force may go (delete_selected asks about each row).
        if obj is not None and obj.effective_from <= clock.today():
            return False
        return super().has_delete_permission(request, obj)


class CurrentlyActive(admin.SimpleListFilter):
    title = "state now"
    parameter_name = "now"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("active", "active users (latest change)")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        if self.value() != "active":
            return queryset
        latest = (
            Activation.objects.filter(user_id=OuterRef("user_id"))
            .order_by("-occurred_at", "-event_id")
            .values("pk")[:1]
        )
        return queryset.filter(pk=Subquery(latest), active=True)


@admin.register(Activation)
class ActivationAdmin(ReadOnlyAdmin):
    list_display = ("user_id", "active", "occurred_at", "event_id")
    list_filter = (CurrentlyActive, "active")
    search_fields = ("=user_id",)
    show_full_result_count = False


@admin.register(SnapshotRun)
class SnapshotRunAdmin(ReadOnlyAdmin):
    list_display = ("at", "taken_at", "users")


@admin.register(Snapshot)
class SnapshotAdmin(ReadOnlyAdmin):
    list_display = ("at", "user_id", "asset", "principal", "position_value")
    list_filter = ("asset",)
    search_fields = ("=user_id",)
    date_hierarchy = "at"
    show_full_result_count = False


def _pool_funding() -> str:
    pools = Account.objects.filter(kind=AccountKind.FUNDING, program=POOL_PROGRAM).order_by("asset")
    return "; ".join(for_people(a.balance, a.asset) for a in pools) or "no Earn pool opened yet"


def _per_asset(totals: dict[str, str]) -> str:
    """Totals kept per asset as exact strings ({"USDT": "12345.5"}), as people read them."""
    return "; ".join(for_people(Decimal(amount), asset) for asset, amount in sorted(totals.items()))


@admin.register(Accrual)
class AccrualAdmin(ReadOnlyAdmin):
    list_display = ("day", "terms_from", "rows", "interest", "paid", "accrued_at")

    @admin.display(description="interest per asset")
    def interest(self, obj: Accrual) -> str:
        return _per_asset(obj.totals)

    @admin.display(boolean=True)
    def paid(self, obj: Accrual) -> bool:
        return EarnDistribution.objects.filter(day=obj.day).exists()


@admin.register(DailyInterest)
class DailyInterestAdmin(ReadOnlyAdmin):
    list_display = (
        "day",
        "user_id",
        "asset",
        "snapshots",
        "principal",
        "position_value",
        "boosted_portion",
        "base_portion",
        "interest",
    )
    list_filter = ("asset", "day")
    search_fields = ("=user_id",)
    show_full_result_count = False


@admin.register(EarnDistribution)
class EarnDistributionAdmin(ReadOnlyAdmin):
    list_display = ("day", "credits", "credited", "distributed_at")

    @admin.display(description="credited per asset")
    def credited(self, obj: EarnDistribution) -> str:
        return _per_asset(obj.totals)

    def changelist_view(self, request: HttpRequest, extra_context: Any = None) -> Any:
        # The pool's funding next to what it paid: what finance tops up.
        link = reverse("admin:ledger_account_changelist") + f"?q={POOL_PROGRAM}"
        extra = {
            **(extra_context or {}),
            "subtitle": format_html(
                'Earn pool funding now: {} (<a href="{}">fund</a>)', _pool_funding(), link
            ),
        }
        return super().changelist_view(request, extra_context=extra)
