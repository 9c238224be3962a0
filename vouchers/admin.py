"""Ops screens of the vouchers: programs (with funding used), templates, grants
(one at a time or by CSV), vouchers with their consumption, compensations
(current matches and the released ones they replaced)."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse

from ledger.admin import AMOUNT_INPUTS, AmountsAdmin, ReadOnlyAdmin
from ledger.money import for_people
from vouchers import selectors, services
from vouchers.models import Consumption, Voucher, VoucherProgram, VoucherTemplate


class TemplateInline(admin.TabularInline):
    model = VoucherTemplate
    formfield_overrides = AMOUNT_INPUTS
    extra = 0
    fields = ("code", "face_value", "validity_days", "valid_until", "min_closing_amount")


@admin.register(VoucherProgram)
class VoucherProgramAdmin(AmountsAdmin):
    list_display = ("slug", "title", "asset", "funding_program", "budget", "budget_alert_at")
    readonly_fields = ("budget", "budget_alert", "budget_alert_at")
    inlines = [TemplateInline]

    @admin.display(description="funding")
    def budget(self, obj: VoucherProgram) -> str:
        if obj.pk is None:
            return "-"
        figures = selectors.program_budget(obj)
        return (
            f"left {for_people(figures.available, obj.asset)};"
            f" paid {for_people(figures.paid, obj.asset)};"
            f" owed (unpaid) {for_people(figures.owed, obj.asset)}"
        )

    def save_model(
        self, request: HttpRequest, obj: VoucherProgram, form: Any, change: bool
    ) -> None:
        saved = services.save_program(
            slug=obj.slug, title=obj.title, asset=obj.asset, funding_program=obj.funding_program
        )
        obj.pk = saved.pk

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class GrantForm(forms.Form):
    program = forms.ModelChoiceField(queryset=VoucherProgram.objects.all())
    template = forms.CharField(
        help_text="Template code, used when the file has no template column.", required=False
    )
    user_id = forms.CharField(required=False, help_text="One user...")
    file = forms.FileField(
        required=False, help_text="... or a CSV: user_id[, template][, idempotency_key]"
    )


@admin.register(Voucher)
class VoucherAdmin(ReadOnlyAdmin):
    list_display = (
        "id",
        "user_id",
        "program",
        "face_value",
        "remaining",
        "arrived_at",
        "expires_at",
        "status",
        "source",
    )
    list_filter = ("program", "source")
    search_fields = ("=user_id", "=grant_key")
    show_full_result_count = False
    change_list_template = "admin/vouchers/voucher/change_list.html"

    @admin.display(description="status")
    def status(self, obj: Voucher) -> str:
        from config import clock

        return selectors.voucher_status(obj, clock.now())

    def get_urls(self) -> list[Any]:
        return [
            path(
                "grant/", self.admin_site.admin_view(self.grant_view), name="vouchers_voucher_grant"
            ),
            *super().get_urls(),
        ]

    def grant_view(self, request: HttpRequest) -> HttpResponse:
        if not request.user.has_perm("vouchers.add_voucher"):
            raise PermissionDenied("granting vouchers needs the 'add voucher' permission")
        form = GrantForm(request.POST or None, request.FILES or None)
        if request.method == "POST" and form.is_valid():
            program = form.cleaned_data["program"]
            by = request.user.get_username()
            try:
                if form.cleaned_data["file"]:
                    text = form.cleaned_data["file"].read().decode("utf-8-sig", errors="replace")
                    grants = services.grants_from_csv(
                        text, program=program.slug, default_template=form.cleaned_data["template"]
                    )
                    source = f"csv by {by}"
                elif form.cleaned_data["user_id"]:
                    import uuid

                    grants = [
                        services.Grant(
                            key=f"admin:{uuid.uuid4().hex}",
                            user_id=form.cleaned_data["user_id"].strip(),
                            program=program.slug,
                            template=form.cleaned_data["template"],
                        )
                    ]
                    source = f"ops: {by}"
                else:
                    raise ValueError("give a user id or a CSV file")
            except ValueError as exc:
                self.message_user(request, f"Refused: {exc}", messages.ERROR)
            else:
                report = services.grant_vouchers(grants, source=source)
                self.log_change(
                    request,
                    program,
                    f"granted {report.granted}, already granted {report.duplicate},"
                    f" rejected {report.rejected}",
                )
                level = messages.WARNING if report.rejected else messages.SUCCESS
                self.message_user(
                    request,
                    f"granted {report.granted}, already granted {report.duplicate}, rejected {report.rejected}",
                    level,
                )
                return HttpResponseRedirect(reverse("admin:vouchers_voucher_changelist"))
        context = {
            **self.admin_site.each_context(request),
            "title": "Grant vouchers",
            "form": form,
            "opts": self.model._meta,
        }
        return TemplateResponse(request, "admin/vouchers/voucher/grant.html", context)


class MatchStateFilter(admin.SimpleListFilter):
    """Current matches (pending or paid) apart from released ones, which a
    later matching of the user's fills replaced and which owe nothing."""

    title = "state"
    parameter_name = "state"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [
            ("current", "current (pending or paid)"),
            ("pending", "pending"),
            ("paid", "paid"),
            ("released", "released (replaced by a later match)"),
            ("cancelled", "cancelled by a risk measure"),
        ]

    def queryset(
        self, request: HttpRequest, queryset: QuerySet[Consumption]
    ) -> QuerySet[Consumption]:
        value = self.value()
        if value == "current":
            return queryset.filter(released_at__isnull=True, cancelled_at__isnull=True)
        if value == "pending":
            return queryset.filter(paid_at__isnull=True, cancelled_at__isnull=True)
        if value == "paid":
            return queryset.filter(paid_at__isnull=False)
        if value == "released":
            return queryset.filter(released_at__isnull=False)
        if value == "cancelled":
            return queryset.filter(cancelled_at__isnull=False, released_at__isnull=True)
        return queryset


@admin.register(Consumption)
class ConsumptionAdmin(ReadOnlyAdmin):
    list_display = (
        "order_id",
        "user_id",
        "voucher",
        "closed_at",
        "loss",
        "amount",
        "payout",
        "matched_at",
        "released_at",
        "paid_at",
        "payout_key",
    )
    list_filter = (MatchStateFilter, "voucher__program")
    search_fields = ("=user_id", "=order_id", "payout_key")
    show_full_result_count = False

    @admin.display(description="payout")
    def payout(self, obj: Consumption) -> str:
        return selectors.payout_status(obj)
