"""Ops screens of the referrals: relations, partners, program terms,
commissions (settled, paid, invalid rebates) and day settlements with rerun."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet, Sum
from django.http import HttpRequest

from config import clock
from ledger.admin import ReadOnlyAdmin
from referrals.jobs import _settle_day
from referrals.models import (
    Commission,
    CommunityPartner,
    ProgramTerms,
    ReferralCode,
    Relation,
    Settlement,
)


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
class CommunityPartnerAdmin(admin.ModelAdmin):
    list_display = ("user_id", "since", "until", "note")
    search_fields = ("=user_id",)


@admin.register(ProgramTerms)
class ProgramTermsAdmin(admin.ModelAdmin):
    list_display = ("program", "effective_from", "validity_days", "tiers", "partner_rate")
    list_filter = ("program",)

    def get_readonly_fields(self, request: HttpRequest, obj: ProgramTerms | None = None) -> Any:
        # Terms in force are history: add new terms instead of editing them.
        if obj is not None and obj.effective_from <= clock.now():
            return ("program", "effective_from", "validity_days", "tiers", "partner_rate")
        return ()


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
        "status",
        "paid_at",
    )
    list_filter = ("status", "program", "asset", "day")
    search_fields = ("=referrer_id", "=referee_id")
    date_hierarchy = "day"
    show_full_result_count = False


@admin.register(Settlement)
class SettlementAdmin(ReadOnlyAdmin):
    list_display = ("day", "run", "upto_position", "settled_at", "commissions", "totals")
    actions = ("rerun",)

    @admin.display(description="totals by status and asset")
    def totals(self, obj: Settlement) -> str:
        rows = (
            Commission.objects.filter(day=obj.day, run=obj.run)
            .values("status", "asset")
            .annotate(total=Sum("amount"))
            .order_by("status", "asset")
        )
        return "; ".join(f"{r['status']} {r['total']} {r['asset']}" for r in rows) or "-"

    @admin.action(
        description="Settle late fills of the selected days (pays nothing twice)",
        permissions=["view"],
    )
    def rerun(self, request: HttpRequest, queryset: QuerySet[Settlement]) -> None:
        if not request.user.has_perm("referrals.add_settlement"):
            messages.error(
                request, "rerunning a settlement needs the 'add settlement' permission (operator)"
            )
            return
        days: set[dt.date] = set(queryset.values_list("day", flat=True))
        results = [_settle_day(day) for day in sorted(days)]
        self.message_user(
            request,
            "; ".join(f"{r['day']}: {r['commissions']} new commission rows" for r in results),
        )
