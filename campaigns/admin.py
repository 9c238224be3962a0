"""Ops screens of the campaigns: definitions, invitations (CSV upload),
participants and their progress, spins, draws, rewards and the budget."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse

from access.audit import AuditedAdmin
from campaigns import selectors, services
from campaigns.models import (
    Campaign,
    CoverageDraw,
    DailySpin,
    Invitation,
    Participant,
    Reward,
    SpinAllowance,
)
from config import clock
from ledger.admin import AmountsAdmin, ReadOnlyAdmin
from ledger.money import for_people


@admin.register(Campaign)
class CampaignAdmin(AmountsAdmin):
    list_display = (
        "slug",
        "title",
        "starts_at",
        "ends_at",
        "drawn_at",
        "bonuses_issued_at",
        "alert",
    )
    search_fields = ("slug", "title")
    readonly_fields = (
        # Set by services.create_campaign: not a field ops fill in.
        "created_at",
        "seed_hash",
        "budget_summary",
        "drawn_at",
        "spins_voided_at",
        "bonuses_issued_at",
        "budget_alert",
        "budget_alert_at",
    )

    @admin.display(description="budget alert", ordering="budget_alert_at")
    def alert(self, obj: Campaign) -> dt.datetime | None:
        # When the last alert was raised; none shows the admin's empty dash
        # (a red cross read as a fault where there is none).
        return obj.budget_alert_at if obj.budget_alert else None

    @admin.display(description="budget")
    def budget_summary(self, obj: Campaign) -> str:
        if obj.pk is None:
            return "-"
        budget = selectors.budget(obj)
        return (
            f"funded {for_people(budget.funded, obj.asset)};"
            f" issued {for_people(budget.issued, obj.asset)};"
            f" left {for_people(budget.available, obj.asset)};"
            f" daily prizes won {for_people(budget.prizes_committed, obj.asset)};"
            f" coverage rebates drawn {for_people(budget.rebates_drawn, obj.asset)}"
        )

    def readonly_names(self, request: HttpRequest, obj: Campaign | None = None) -> Any:
        fields = list(self.readonly_fields)
        if obj is not None:
            fields.append("slug")
            if clock.now() >= obj.starts_at:
                # The announced rules are frozen once the campaign runs.
                fields += [name for name in services.RULE_FIELDS if name not in fields]
        return fields

    def save_model(self, request: HttpRequest, obj: Campaign, form: Any, change: bool) -> None:
        values = {
            name: form.cleaned_data[name] for name in form.changed_data if name in form.cleaned_data
        }
        try:
            if change:
                services.update_campaign(Campaign.objects.get(pk=obj.pk), **values)
            else:
                fields = {
                    name: value for name, value in form.cleaned_data.items() if name != "slug"
                }
                created = services.create_campaign(slug=form.cleaned_data["slug"], **fields)
                obj.pk = created.pk
        except ValueError as exc:
            raise PermissionDenied(str(exc)) from None

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class InvitationUploadForm(forms.Form):
    campaign = forms.ModelChoiceField(queryset=Campaign.objects.all())
    file = forms.FileField(help_text="CSV: a user_id column (or user ids in the first column).")


@admin.register(Invitation)
class InvitationAdmin(AuditedAdmin):
    list_display = ("user_id", "campaign", "invited_at", "source")
    list_filter = ("campaign",)
    search_fields = ("=user_id",)
    readonly_fields = ("invited_at",)
    show_full_result_count = False

    def get_urls(self) -> list[Any]:
        return [
            path(
                "upload/",
                self.admin_site.admin_view(self.upload_view),
                name="campaigns_invitation_upload",
            ),
            *super().get_urls(),
        ]

    def upload_view(self, request: HttpRequest) -> HttpResponse:
        if not request.user.has_perm("campaigns.add_invitation"):
            raise PermissionDenied("uploading invitations needs the 'add invitation' permission")
        form = InvitationUploadForm(request.POST or None, request.FILES or None)
        if request.method == "POST" and form.is_valid():
            text = form.cleaned_data["file"].read().decode("utf-8-sig", errors="replace")
            try:
                ids = list(services.invitation_ids_from_csv(text))
            except ValueError as exc:
                self.message_user(request, f"Refused: {exc}", messages.ERROR)
            else:
                added = services.invite(
                    form.cleaned_data["campaign"],
                    ids,
                    source=f"csv by {request.user.get_username()}",
                )
                self.log_change(
                    request,
                    form.cleaned_data["campaign"],
                    f"uploaded invitations: {added} new of {len(ids)} rows",
                )
                self.message_user(request, f"{added} new invitations of {len(ids)} rows.")
                return HttpResponseRedirect(reverse("admin:campaigns_invitation_changelist"))
        context = {
            **self.admin_site.each_context(request),
            "title": "Upload invitations (CSV)",
            "form": form,
            "opts": self.model._meta,
        }
        return TemplateResponse(request, "admin/campaigns/invitation/upload.html", context)

    def save_model(self, request: HttpRequest, obj: Invitation, form: Any, change: bool) -> None:
        obj.invited_at = obj.invited_at or clock.now()
        obj.source = obj.source or f"admin by {request.user.get_username()}"
        super().save_model(request, obj, form, change)


@admin.register(Participant)
class ParticipantAdmin(ReadOnlyAdmin):
    list_display = (
        "user_id",
        "campaign",
        "registered_at",
        "valid_volume",
        "card_percent",
        "daily_earned",
        "daily_used",
    )
    list_filter = ("campaign",)
    search_fields = ("=user_id",)
    show_full_result_count = False

    def get_queryset(self, request: HttpRequest) -> QuerySet[Participant]:
        return super().get_queryset(request).select_related("campaign")

    def _allowance(self, obj: Participant) -> SpinAllowance | None:
        return SpinAllowance.objects.filter(
            campaign_id=obj.campaign_id, user_id=obj.user_id
        ).first()

    @admin.display(description="valid volume (last refresh)")
    def valid_volume(self, obj: Participant) -> str:
        allowance = self._allowance(obj)
        return for_people(allowance.valid_volume if allowance else Decimal(0))

    @admin.display(description="daily spins earned")
    def daily_earned(self, obj: Participant) -> int:
        allowance = self._allowance(obj)
        return allowance.daily_earned if allowance else 0

    @admin.display(description="daily spins used")
    def daily_used(self, obj: Participant) -> int:
        return DailySpin.objects.filter(campaign_id=obj.campaign_id, user_id=obj.user_id).count()


@admin.register(DailySpin)
class DailySpinAdmin(ReadOnlyAdmin):
    list_display = ("user_id", "campaign", "number", "amount", "spun_at")
    list_filter = ("campaign",)
    search_fields = ("=user_id",)


@admin.register(CoverageDraw)
class CoverageDrawAdmin(ReadOnlyAdmin):
    list_display = ("user_id", "campaign", "percent", "losing_orders", "covered", "drawn_at")
    list_filter = ("campaign", "percent")
    search_fields = ("=user_id",)


@admin.register(Reward)
class RewardAdmin(ReadOnlyAdmin):
    list_display = ("user_id", "campaign", "kind", "reference", "amount", "earned_at", "status")
    list_filter = ("campaign", "kind")
    search_fields = ("=user_id", "idempotency_key")
    show_full_result_count = False

    @admin.display(description="status")
    def status(self, obj: Reward) -> str:
        issued = bool(selectors.issued_keys([obj.idempotency_key]))
        return selectors.reward_status(
            obj, issued=issued, disqualified_at=selectors.disqualified_since(obj.user_id)
        )
