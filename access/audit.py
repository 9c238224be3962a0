"""Every ops action in the admin, recorded in the event log with the staff member.

Django's admin writes a ``LogEntry`` for each add, change and delete made
through its forms; :func:`record_admin_action` appends it to the event store
as an ``ops.admin_action`` event, in the same database transaction. Admin
actions (the "Action:" menu: reruns, replays, ...) write no ``LogEntry`` of
their own, so :class:`AuditedAdmin`, the base of every admin screen here,
logs one per selected object before running the action.

The event's id is the ``LogEntry``'s, in the product's own namespace of ids
(ledger migration 0012): no inbound event can hold it. Should the log
nevertheless hold a different record under that id (log entries numbered
again after a restore), the action is refused rather than left unaudited.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.contrib import admin
from django.contrib.admin.models import ADDITION, CHANGE, DELETION, LogEntry
from django.db.models import QuerySet
from django.http import HttpRequest

from ledger.event_store import DomainEvent, append_domain_events

_VERBS = {ADDITION: "add", CHANGE: "change", DELETION: "delete"}


def record_admin_action(
    sender: type[LogEntry], instance: LogEntry, created: bool, **_: Any
) -> None:
    if not created:
        return
    content_type = instance.content_type
    result = append_domain_events(
        [
            DomainEvent(
                event_id=f"ops.admin_action:{instance.pk}",
                type="ops.admin_action",
                occurred_at=instance.action_time,
                data={
                    "staff": instance.user.get_username(),
                    "action": _VERBS.get(instance.action_flag, str(instance.action_flag)),
                    "object": (
                        f"{content_type.app_label}.{content_type.model}" if content_type else ""
                    ),
                    "object_id": str(instance.object_id or ""),
                    "object_repr": instance.object_repr,
                    "message": instance.get_change_message(),
                },
            )
        ]
    )
    if result.conflicting:
        raise AuditNotRecorded(
            f"the event log already holds a different {result.conflicting[0]}:"
            " this admin action cannot be audited, so it is refused"
        )


class AuditNotRecorded(RuntimeError):
    """An admin action whose audit record cannot be written."""


ActionFunction = Callable[[admin.ModelAdmin, HttpRequest, QuerySet[Any]], Any]


class AuditedAdmin(admin.ModelAdmin):
    """An admin screen whose actions are logged (and so recorded as events)."""

    def get_actions(self, request: HttpRequest) -> dict[str, Any]:
        actions: dict[str, Any] = {}
        for name, entry in super().get_actions(request).items():
            if entry is None:
                continue
            func, _, description = entry
            # delete_selected logs each deletion itself.
            audited = func if name == "delete_selected" else _audited(func, name)
            actions[name] = (audited, name, description)
        return actions


def _audited(func: ActionFunction, name: str) -> ActionFunction:
    def run(model_admin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet[Any]) -> Any:
        for obj in queryset:
            model_admin.log_change(request, obj, f"action: {name}")
        return func(model_admin, request, queryset)

    run.__name__ = getattr(func, "__name__", name)
    return run
