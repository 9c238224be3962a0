from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import Count, QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe
from django_celery_beat.admin import PeriodicTaskAdmin as BeatPeriodicTaskAdmin
from django_celery_beat.models import PeriodicTask

from access.audit import AuditedAdmin
from jobs.display import counts_text, duration_text, real_seconds
from jobs.models import JobException, JobRun


class JobExceptionInline(admin.TabularInline):
    """The users (or assets) the run left out, and why."""

    model = JobException
    fields = ("user_id", "scope", "reason", "detail", "created_at")
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(JobRun)
class JobRunAdmin(AuditedAdmin):
    """Every run of every job. Schedules themselves (and their pause switch) are
    under Periodic tasks. ``partial``: the run did its work for everyone but the
    exceptions it lists; ``abandoned``: its runner died mid-run (the error says
    which and when it was found)."""

    # Trigger and host are on each run's page (and trigger is a filter): the
    # list keeps to what fits a 1,440-pixel screen beside the admin's menus,
    # its counts included (templates/admin/jobs/jobrun/change_list.html).
    list_display = (
        "job_shown",
        "key",
        "status",
        "started_at",
        "duration_shown",
        "exception_count",
        "counts_shown",
    )
    list_display_links = ("job_shown",)
    list_filter = ("status", "job", "trigger")
    search_fields = ("job", "key")
    date_hierarchy = "started_at"
    readonly_fields = [
        *(field.name for field in JobRun._meta.fields if field.name != "counts"),
        "duration_shown",
        "counts_shown",
    ]
    # The counts are shown for people (counts_shown), not as the stored JSON.
    exclude = ("counts",)
    inlines = [JobExceptionInline]

    def get_queryset(self, request: HttpRequest) -> QuerySet[JobRun]:
        return super().get_queryset(request).annotate(exception_total=Count("exceptions"))

    @admin.display(description="job", ordering="job")
    def job_shown(self, run: JobRun) -> Any:
        # A long name may break after each underscore rather than widen the list.
        parts = run.job.split("_")
        return format_html_join(mark_safe("_<wbr>"), "{}", ((part,) for part in parts))

    @admin.display(description="duration")
    def duration_shown(self, run: JobRun) -> str:
        # Real seconds with their unit, also under a time-lapse (jobs.display).
        return duration_text(real_seconds(run.started_at, run.finished_at)) or "-"

    @admin.display(description="counts")
    def counts_shown(self, run: JobRun) -> Any:
        pairs = counts_text(run.counts)
        if not pairs:
            return "-"
        # One pair per line: a long JSON object would widen the list past the screen.
        return format_html_join(mark_safe("<br>"), "{}: {}", pairs)

    @admin.display(description="exceptions", ordering="exception_total")
    def exception_count(self, run: JobRun) -> Any:
        total = getattr(run, "exception_total", 0)
        if not total:
            return 0
        url = reverse("admin:jobs_jobexception_changelist") + f"?run__exact={run.pk}"
        return format_html('<a href="{}">{}</a>', url, total)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


@admin.register(JobException)
class JobExceptionAdmin(AuditedAdmin):
    """Every user (or asset) a job left out for their data, across runs. With
    no run: the job function was called directly (a shell, a test)."""

    list_display = ("created_at", "job", "user_id", "scope", "reason", "run_link")
    list_filter = ("job", "scope")
    search_fields = ("user_id", "reason")
    date_hierarchy = "created_at"
    readonly_fields = [field.name for field in JobException._meta.fields]
    list_select_related = ("run",)

    @admin.display(description="run", ordering="run")
    def run_link(self, exception: JobException) -> Any:
        run = exception.run
        if run is None:
            return "-"
        url = reverse("admin:jobs_jobrun_change", args=[run.pk])
        return format_html('<a href="{}">#{} [{}]</a>', url, run.pk, run.key)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


class PeriodicTaskAdmin(AuditedAdmin, BeatPeriodicTaskAdmin):
    """The schedules of the jobs (Periodic tasks), as django-celery-beat shows
    them, but its actions need the change permission of a schedule: pausing,
    resuming and running a job are for operators, not for every reader.
    Like every ops action here, each is recorded with the staff member."""

    @admin.action(description="Enable selected tasks", permissions=["change"])
    def enable_tasks(self, request: HttpRequest, queryset: QuerySet[PeriodicTask]) -> None:
        super().enable_tasks(request, queryset)

    @admin.action(description="Disable selected tasks", permissions=["change"])
    def disable_tasks(self, request: HttpRequest, queryset: QuerySet[PeriodicTask]) -> None:
        super().disable_tasks(request, queryset)

    @admin.action(description="Toggle activity of selected tasks", permissions=["change"])
    def toggle_tasks(self, request: HttpRequest, queryset: QuerySet[PeriodicTask]) -> None:
        super().toggle_tasks(request, queryset)

    @admin.action(description="Run selected tasks", permissions=["change"])
    def run_tasks(self, request: HttpRequest, queryset: QuerySet[PeriodicTask]) -> None:
        super().run_tasks(request, queryset)


# django_celery_beat's admin module is loaded first (INSTALLED_APPS order).
admin.site.unregister(PeriodicTask)
admin.site.register(PeriodicTask, PeriodicTaskAdmin)
