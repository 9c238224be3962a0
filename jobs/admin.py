from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest

from access.audit import AuditedAdmin
from jobs.models import JobRun


@admin.register(JobRun)
class JobRunAdmin(AuditedAdmin):
    """Every run of every job. Schedules themselves (and their pause switch) are
    under Periodic tasks."""

    list_display = ("job", "key", "status", "trigger", "started_at", "duration", "counts")
    list_filter = ("status", "job", "trigger")
    search_fields = ("job", "key")
    date_hierarchy = "started_at"
    readonly_fields = [field.name for field in JobRun._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False
