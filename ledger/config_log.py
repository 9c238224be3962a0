"""Every settings row in the log: the inputs of decisions that no event carried.

A program's rules (a campaign's dates, tables and seed; a voucher template;
referral or Earn terms) are rows written by ``apply_config`` or an admin form.
A decision depends on them as much as on the exchange's facts, so replay must
find them in the log: each save of a registered model appends a
``config.saved`` event in the same database transaction, holding the row's
image (every field but the ones its jobs keep up to date themselves).

``apply_row`` writes such an image back, which is how replay rebuilds the
settings at the moment they were saved; a row applied that way is not recorded
again (the event it came from is already in the log).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Iterable
from contextvars import ContextVar
from typing import Any

from django.apps import apps
from django.core import serializers
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models
from django.db.models.signals import post_delete, post_save

from config import clock

CONFIG_SAVED = "config.saved"
CONFIG_DELETED = "config.deleted"

# Set while a recorded deletion is written back: it is not recorded again.
_applying = ContextVar("config_log_applying", default=False)


class _Exact(DjangoJSONEncoder):
    """Django's encoder keeps milliseconds of a datetime; a settings row's
    image keeps every microsecond the database holds."""

    def default(self, o: Any) -> Any:
        if isinstance(o, dt.datetime):
            return o.isoformat()
        return super().default(o)


# model label -> the fields its jobs own (counters, job state, alerts): not settings.
_RUNTIME: dict[str, frozenset[str]] = {}


def record_config_rows(model: type[models.Model], *, runtime: Iterable[str] = ()) -> None:
    """Record every save of ``model`` in the log (call from ``<app>/configuration.py``)."""
    label = model._meta.label_lower
    _RUNTIME[label] = frozenset(runtime)
    post_save.connect(_record, sender=model, dispatch_uid=f"config_log:{label}")
    post_delete.connect(_record_deletion, sender=model, dispatch_uid=f"config_log:{label}")


def recorded_models() -> dict[str, frozenset[str]]:
    """Each recorded model's label and the fields its jobs own."""
    return dict(sorted(_RUNTIME.items()))


def row_image(instance: models.Model) -> dict[str, Any]:
    """The row's settings as JSON values (Django's serialisation of each field)."""
    label = instance._meta.label_lower
    fields = serializers.serialize("python", [instance])[0]["fields"]
    kept = {name: value for name, value in fields.items() if name not in _RUNTIME[label]}
    return json.loads(json.dumps(kept, cls=_Exact, sort_keys=True))


def _record(sender: type[models.Model], instance: models.Model, raw: bool, **_: Any) -> None:
    if raw:  # written back from the log by apply_row: already recorded
        return
    from ledger.event_store import DomainEvent, append_domain_event

    label = instance._meta.label_lower
    fields = row_image(instance)
    now = clock.now()
    digest = hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:16]
    append_domain_event(
        DomainEvent(
            # The instant and the image both: saving A, then B, then A again
            # records three changes, and saving the same image twice at one
            # instant records one.
            event_id=f"{CONFIG_SAVED}:{label}:{instance.pk}:{now.isoformat()}:{digest}",
            type=CONFIG_SAVED,
            occurred_at=now,
            data={"model": label, "pk": instance.pk, "fields": fields},
        )
    )


def _record_deletion(sender: type[models.Model], instance: models.Model, **_: Any) -> None:
    if _applying.get():
        return
    from ledger.event_store import DomainEvent, append_domain_event

    label = instance._meta.label_lower
    now = clock.now()
    append_domain_event(
        DomainEvent(
            event_id=f"{CONFIG_DELETED}:{label}:{instance.pk}:{now.isoformat()}",
            type=CONFIG_DELETED,
            occurred_at=now,
            data={"model": label, "pk": instance.pk},
        )
    )


def apply_deletion(data: dict[str, Any]) -> None:
    """Delete a row whose deletion was recorded."""
    token = _applying.set(True)
    try:
        apps.get_model(data["model"])._default_manager.filter(pk=data["pk"]).delete()
    finally:
        _applying.reset(token)


def apply_row(data: dict[str, Any]) -> models.Model:
    """Write a recorded row image back (insert or update by primary key),
    leaving the fields its jobs own as they are."""
    label = data["model"]
    model = apps.get_model(label)
    existing = model._default_manager.filter(pk=data["pk"]).first()
    fields = dict(data["fields"])
    if existing is not None:
        # Keep the runtime fields of the row as this database has them.
        current = serializers.serialize("python", [existing])[0]["fields"]
        for name in _RUNTIME[label]:
            fields[name] = json.loads(json.dumps(current[name], cls=_Exact))
    (restored,) = serializers.deserialize(
        "python", [{"model": label, "pk": data["pk"], "fields": fields}]
    )
    restored.save()
    return restored.object
