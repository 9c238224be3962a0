"""Backtests in the admin: paste or upload a draft, pick the days, start it;
its page shows the report's table and charts (the ops dashboard's charting)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django import forms
from django.contrib import admin
from django.db import transaction
from django.http import HttpRequest, HttpResponse

from access.audit import AuditedAdmin
from config import clock
from ledger.money import for_people
from replay import backtest, backtest_report
from replay.forecasts import Refused, Window
from replay.models import Backtest, BacktestStatus
from replay.tasks import run_backtest


class BacktestForm(forms.ModelForm):
    draft_file = forms.FileField(
        required=False, help_text="Or upload the draft file (it replaces the text above)."
    )

    class Meta:
        model = Backtest
        fields = ("draft", "draft_file", "first_day", "last_day", "live", "seed", "step_minutes")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if "draft" in self.fields:  # the add form (a backtest's page shows it read-only)
            self.fields["draft"].required = False

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        upload = data.get("draft_file")
        if upload:
            try:
                data["draft"] = upload.read().decode()
            except UnicodeDecodeError:
                raise forms.ValidationError("the draft file is not UTF-8 text") from None
        if not data.get("draft"):
            raise forms.ValidationError("paste the draft or upload its file")
        if data.get("first_day") and data.get("last_day"):
            try:
                backtest.check(
                    backtest.load_draft(data["draft"]), Window(data["first_day"], data["last_day"])
                )
            except Refused as refusal:
                raise forms.ValidationError(str(refusal)) from None
        if data.get("step_minutes") == 0:
            raise forms.ValidationError("the step is at least one minute")
        return data


@admin.register(Backtest)
class BacktestAdmin(AuditedAdmin):
    form = BacktestForm
    change_form_template = "admin/replay/backtest/change_form.html"
    list_display = (
        "id",
        "program",
        "first_day",
        "last_day",
        "status",
        "requested_by",
        "requested_at",
    )
    list_filter = ("status",)
    readonly = (
        "draft",
        "first_day",
        "last_day",
        "live",
        "seed",
        "step_minutes",
        "status",
        "error",
        "requested_by",
        "requested_at",
        "started_at",
        "finished_at",
    )

    @admin.display(description="program")
    def program(self, obj: Backtest) -> str:
        return str((obj.report or {}).get("program", "-"))

    def get_fields(self, request: HttpRequest, obj: Backtest | None = None) -> Any:
        return self.readonly if obj else BacktestForm.Meta.fields

    def get_readonly_fields(self, request: HttpRequest, obj: Backtest | None = None) -> Any:
        return self.readonly if obj else ()

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # Shown, never edited: a backtest is a record of what was asked and found.
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def save_model(self, request: HttpRequest, obj: Backtest, form: Any, change: bool) -> None:
        if change:
            return
        obj.requested_by = request.user.get_username()
        obj.requested_at = clock.now()
        obj.status = BacktestStatus.QUEUED
        super().save_model(request, obj, form, change)
        pk = obj.pk
        transaction.on_commit(lambda: run_backtest.delay(pk))

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        obj = self.get_object(request, object_id)
        context = dict(extra_context or {})
        if obj is not None and obj.report:
            context.update(report_context(obj.report))
        return super().change_view(request, object_id, form_url, extra_context=context)


def report_context(report: dict[str, Any]) -> dict[str, Any]:
    """The report as the page shows it: figures side by side, days, charts."""
    live = report.get("live")
    live_values = dict(map(tuple, live["figures"])) if live else {}
    figures = [
        (label, value, live_values.get(label)) for label, value in report["draft"]["figures"]
    ]
    assets = []
    for asset, values in report["draft"]["cost_per_day"].items():
        budget = report["budget"].get(asset)
        to_date = Decimal(0)
        days = []
        for day, value in zip(report["days"], values, strict=True):
            to_date += Decimal(value)
            days.append((day, for_people(Decimal(value)), for_people(to_date)))
        assets.append(
            {
                "asset": asset,
                "total": for_people(Decimal(report["draft"]["total"][asset]), asset),
                "budget": for_people(Decimal(budget), asset) if budget else None,
                "runs_out": report["runs_out"].get(asset),
                "live_total": for_people(Decimal(live["total"].get(asset, "0")), asset)
                if live
                else None,
                "days": days,
            }
        )
    payload = backtest_report.charts(report)
    return {
        "report": report,
        "report_figures": figures,
        "report_assets": assets,
        "charts": payload,
        "chart_specs": payload["charts"],
    }
