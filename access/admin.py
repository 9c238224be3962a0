from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from access.audit import AuditedAdmin
from access.models import ServiceToken
from access.services import revoke_service_token


@admin.register(ServiceToken)
class ServiceTokenAdmin(AuditedAdmin):
    """Tokens are created with `manage.py create_service_token NAME` (shown once);
    here ops list them and revoke them."""

    list_display = ("name", "prefix", "created_at", "last_used_at", "revoked_at", "revoked_by")
    list_filter = (("revoked_at", admin.EmptyFieldListFilter),)
    search_fields = ("name", "prefix")
    readonly_fields = (
        "name",
        "prefix",
        "created_at",
        "created_by",
        "last_used_at",
        "revoked_at",
        "revoked_by",
    )
    actions = ("revoke",)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # a token made here could not be shown once safely

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False  # revoke instead: the history of who could call us stays

    @admin.action(description="Revoke selected tokens", permissions=["change"])
    def revoke(self, request: HttpRequest, queryset: QuerySet[ServiceToken]) -> None:
        for token in queryset.filter(revoked_at__isnull=True):
            revoke_service_token(token=token, by=request.user.get_username())
        messages.success(request, "Revoked. Calls with those tokens now get 401.")
