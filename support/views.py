"""The admin pages of ops: the dashboard and the support view of one user.

Registered on the admin site by ``support/admin.py``; every view runs inside
``admin_site.admin_view`` (active staff, logged in) and asks for the view
permissions of the data it shows, which every staff role holds.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django import forms
from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse

from config import clock
from monitoring import outages
from monitoring.metrics import redis_probe as _redis_probe
from support import health, selectors

SUPPORT_PERMISSIONS = (
    "ledger.view_exchangeuser",
    "ledger.view_riskmeasure",
    "ledger.view_payoutinstruction",
    "ledger.view_quarantinedinput",
    "campaigns.view_participant",
    "campaigns.view_reward",
    "vouchers.view_voucher",
    "vouchers.view_consumption",
    "referrals.view_relation",
    "referrals.view_commission",
    "earn.view_activation",
    "earn.view_dailyinterest",
)
DASHBOARD_PERMISSIONS = (
    "campaigns.view_campaign",
    "vouchers.view_voucherprogram",
    "referrals.view_commission",
    "earn.view_dailyinterest",
    "ledger.view_account",
    "ledger.view_quarantinedinput",
    "jobs.view_jobrun",
)


def _require(request: HttpRequest, permissions: tuple[str, ...]) -> None:
    missing = [name for name in permissions if not request.user.has_perm(name)]
    if missing:
        raise PermissionDenied(f"this page needs the view permissions {', '.join(missing)}")


def _context(request: HttpRequest, title: str, **extra: Any) -> dict[str, Any]:
    return {**admin.site.each_context(request), "title": title, **extra}


class UserSearchForm(forms.Form):
    user_id = forms.CharField(max_length=64, label="User id", strip=True)


def user_search_view(request: HttpRequest) -> HttpResponse:
    """Find a user by id and open their support view."""
    _require(request, SUPPORT_PERMISSIONS)
    form = UserSearchForm(request.GET or None)
    if form.is_valid():
        return HttpResponseRedirect(
            reverse("admin:support_user", kwargs={"user_id": form.cleaned_data["user_id"]})
        )
    return TemplateResponse(
        request, "support/user_search.html", _context(request, "Support: find a user", form=form)
    )


def user_view(request: HttpRequest, user_id: str) -> HttpResponse:
    """Everything about one user, for support: account facts, campaigns,
    vouchers, referrals, Earn, ledger credits and quarantined input."""
    _require(request, SUPPORT_PERMISSIONS)
    overview = selectors.user_overview(user_id, now=clock.now())
    return TemplateResponse(
        request,
        "support/user.html",
        _context(
            request,
            f"Support: user {user_id}",
            overview=overview,
            search=UserSearchForm(initial={"user_id": user_id}),
        ),
    )


class DashboardForm(forms.Form):
    subject = forms.ChoiceField(label="Campaign or program")
    first = forms.DateField(
        label="From (UTC day)", required=False, widget=forms.DateInput({"type": "date"})
    )
    last = forms.DateField(
        label="To (UTC day)", required=False, widget=forms.DateInput({"type": "date"})
    )

    def __init__(self, *args: Any, subjects: list[selectors.Subject], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.subjects = {subject.key: subject for subject in subjects}
        choice = self.fields["subject"]
        assert isinstance(choice, forms.ChoiceField)
        choice.choices = [(s.key, s.label) for s in subjects]

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        first, last = cleaned.get("first"), cleaned.get("last")
        if first and last:
            if last < first:
                raise forms.ValidationError("the range ends before it starts")
            if (last - first).days + 1 > selectors.MAX_DAYS:
                raise forms.ValidationError(f"a range spans at most {selectors.MAX_DAYS} days")
        return cleaned


def dashboard_view(request: HttpRequest) -> HttpResponse:
    """Charts per day of one campaign or program, and the health of the jobs,
    of ingestion and of the projections."""
    _require(request, DASHBOARD_PERMISSIONS)
    now = clock.now()
    subjects = selectors.subjects()
    data = request.GET.copy()
    default = selectors.default_subject(subjects, now.date())
    if not data.get("subject") and default is not None:
        data["subject"] = default.key
    form = DashboardForm(data, subjects=subjects)
    board = None
    if subjects and form.is_valid():
        subject = form.subjects[form.cleaned_data["subject"]]
        default_first, default_last = selectors.default_range(subject, now.date())
        first: dt.date = form.cleaned_data["first"] or default_first
        last: dt.date = form.cleaned_data["last"] or default_last
        if (last - first).days + 1 > selectors.MAX_DAYS or last < first:
            # One end given, the other defaulted past the limit: keep the given one.
            if form.cleaned_data["first"]:
                last = first + dt.timedelta(days=selectors.MAX_DAYS - 1)
            else:
                first = last - dt.timedelta(days=selectors.MAX_DAYS - 1)
        board = selectors.dashboard(subject, first, last)
        form = DashboardForm(
            {"subject": subject.key, "first": first.isoformat(), "last": last.isoformat()},
            subjects=subjects,
        )
    return TemplateResponse(
        request,
        "support/dashboard.html",
        _context(
            request,
            "Ops dashboard",
            form=form,
            board=board,
            charts=board.payload() if board is not None else None,
            jobs=health.job_health(now),
            payouts=health.payout_queue(now),
            stream=health.stream_lag(_redis_probe(), now),
            consumers=outages.consumer_states(now),
            quarantine=health.quarantine_health(),
            log=health.log_health(),
            now=now,
        ),
    )
