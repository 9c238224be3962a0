"""Ops screens of the referrals: relations, partners, program terms,
commissions (settled, paid, invalid rebates), day settlements with rerun,
distributions and the payout of each referrer."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.contrib import admin
from django.db.models import QuerySet, Sum
from django.http import HttpRequest

from access.audit import AuditedAdmin
from config import clock
from ledger.admin import AmountsAdmin, ReadOnlyAdmin, amount_column
from ledger.money import for_people, format_amount
from referrals import services
from referrals.jobs import _settle_day
from referrals.models import (
    Commission,
    CommissionPayout,
    CommunityPartner,
    Distribution,
    ProgramTerms,
    ReferralCode,
    Relation,
    Settlement,
)
from referrals.selectors import with_state


@admin.register(Relation)
class RelationAdmin(ReadOnlyAdmin):
    list_display = ("referee_id", "referrer_id", "code", "registered_at", "refusal")
    list_filter = ("refusal",)
    search_fields = ("=referee_id", "=referrer_id", "=code")
    show_full_result_count = False


@admin.register(ReferralCode)
class ReferralCodeAdmin(ReadOnlyAdmin):
    list_display = ("user_id", "code")
    search_fields = ("=user_id", "=code")
    show_full_result_count = False


@admin.register(CommunityPartner)
class CommunityPartnerAdmin(AuditedAdmin):
    """Flags are set and ended only through ``services.set_partner``, which
    records each change in the log (replay rebuilds them from there): a flag
    is added here with its user and note, and ended with the action."""

    list_display = ("user_id", "since", "until", "note")
    search_fields = ("=user_id",)
    actions = ("end_flags",)

    def get_fields(self, request: HttpRequest, obj: CommunityPartner | None = None) -> Any:
        return ("user_id", "note") if obj is None else ("user_id", "since", "until", "note")

    def get_readonly_fields(self, request: HttpRequest, obj: CommunityPartner | None = None) -> Any:
        return () if obj is None else ("user_id", "since", "until", "note")

    def save_model(
        self, request: HttpRequest, obj: CommunityPartner, form: Any, change: bool
    ) -> None:
        if change:
            return  # every field is read-only once flagged
        services.set_partner(
            obj.user_id, partner=True, by=request.user.get_username(), note=obj.note
        )
        flag = CommunityPartner.going_on(obj.user_id, clock.now()).order_by("-since").first()
        assert flag is not None, "set_partner leaves an open flag"
        obj.pk, obj.since, obj.until = flag.pk, flag.since, flag.until

    def has_delete_permission(
        self, request: HttpRequest, obj: CommunityPartner | None = None
    ) -> bool:
        return False  # a flag ends (its history stays): use the action

    @admin.action(description="End the selected partner flags now", permissions=["change"])
    def end_flags(self, request: HttpRequest, queryset: QuerySet[CommunityPartner]) -> None:
        by = request.user.get_username()
        for user_id in sorted(set(queryset.values_list("user_id", flat=True))):
            services.set_partner(user_id, partner=False, by=by)


@admin.register(ProgramTerms)
class ProgramTermsAdmin(AmountsAdmin):
    list_display = (
        "program",
        "effective_from",
        "validity_days",
        "tiers",
        amount_column("partner_rate"),
    )
    list_filter = ("program",)

    def readonly_names(self, request: HttpRequest, obj: ProgramTerms | None = None) -> Any:
        # Terms in force are history: add new terms instead of editing them.
        if obj is not None and obj.effective_from <= clock.now():
            return ("program", "effective_from", "validity_days", "tiers", "partner_rate")
        return ()

    def has_delete_permission(self, request: HttpRequest, obj: ProgramTerms | None = None) -> bool:
        # Only terms not yet in force may go (delete_selected asks about each row).
        if obj is not None and obj.effective_from <= clock.now():
            return False
        return super().has_delete_permission(request, obj)


class StateFilter(admin.SimpleListFilter):
    title = "status"
    parameter_name = "state"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("settled", "settled"), ("paid", "paid"), ("invalid", "invalid rebate")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        return queryset.filter(state=self.value()) if self.value() else queryset


@admin.register(Commission)
class CommissionAdmin(ReadOnlyAdmin):
    list_display = (
        "day",
        "run",
        "program",
        "referrer_id",
        "referee_id",
        "asset",
        "fills",
        "fees",
        "rate",
        "amount",
        "state",
    )
    list_filter = (StateFilter, "program", "asset", "day")
    search_fields = ("=referrer_id", "=referee_id")
    date_hierarchy = "day"
    show_full_result_count = False

    def get_queryset(self, request: HttpRequest) -> QuerySet[Commission]:
        return with_state(super().get_queryset(request))

    @admin.display(description="status", ordering="state")
    def state(self, obj: Commission) -> str:
        state: str = obj.state  # type: ignore[attr-defined]
        return "invalid rebate" if state == "invalid" else state


@admin.register(Distribution)
class DistributionAdmin(ReadOnlyAdmin):
    list_display = (
        "day",
        "upto_commission_id",
        "distributed_at",
        "referrers",
        "invalidated",
        "totals",
    )

    @admin.display(description="paid per asset (remainder carried, exact)")
    def totals(self, obj: Distribution) -> str:
        rows = (
            CommissionPayout.objects.filter(day=obj.day)
            .values("asset")
            .annotate(paid=Sum("amount"), carried=Sum("carried_out"))
            .order_by("asset")
        )
        return (
            "; ".join(
                f"{for_people(r['paid'], r['asset'])} ({format_amount(r['carried'])})" for r in rows
            )
            or "-"
        )


@admin.register(CommissionPayout)
class CommissionPayoutAdmin(ReadOnlyAdmin):
    # What rounding down left is below the asset's smallest unit: shown as people
    # read amounts it would always be 0, and its point is that nothing is lost.
    exact_fields = ("carried_in", "carried_out")
    list_display = (
        "day",
        "referrer_id",
        "asset",
        "commissions",
        "carried_in",
        "amount",
        "carried_out",
        "payout_key",
    )
    list_filter = ("asset", "day")
    search_fields = ("=referrer_id", "=payout_key")
    show_full_result_count = False


@admin.register(Settlement)
class SettlementAdmin(ReadOnlyAdmin):
    list_display = ("day", "run", "upto_position", "settled_at", "commissions", "totals")
    actions = ("rerun",)

    @admin.display(description="totals by status and asset")
    def totals(self, obj: Settlement) -> str:
        rows = (
            with_state(Commission.objects.filter(day=obj.day, run=obj.run))
            .values("state", "asset")
            .annotate(total=Sum("amount"))
            .order_by("state", "asset")
        )
        return "; ".join(f"{r['state']} {for_people(r['total'], r['asset'])}" for r in rows) or "-"

    def has_rerun_permission(self, request: HttpRequest) -> bool:
        # Settlements are facts here (no add in the admin), but a rerun records a
        # new one: it is for those who may add settlements, the operators.
        return request.user.has_perm("referrals.add_settlement")

    @admin.action(
        description="Settle late fills of the selected days (pays nothing twice)",
        permissions=["rerun"],
    )
    def rerun(self, request: HttpRequest, queryset: QuerySet[Settlement]) -> None:
        days: set[dt.date] = set(queryset.values_list("day", flat=True))
        results = [_settle_day(day) for day in sorted(days)]
        self.message_user(
            request,
            "; ".join(f"{r['day']}: {r['commissions']} new commission rows" for r in results),
        )
