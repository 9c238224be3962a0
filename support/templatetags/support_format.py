"""How the support pages spell values for people: amounts grouped, at most
the payout's places and never with an exponent (``ledger.money.for_people``);
instants in the project's one format, in UTC (config/formats)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from django import template
from django.utils import formats

from jobs.display import counts_text, duration_text
from ledger.money import for_people

register = template.Library()


@register.filter
def amount(value: Any, asset: str = "") -> str:
    if value is None or value == "":
        return ""
    return for_people(Decimal(value), asset)


@register.filter
def utc(value: Any) -> str:
    if not isinstance(value, dt.datetime):
        return "" if value is None else str(value)
    return formats.date_format(value.astimezone(dt.UTC), "DATETIME_FORMAT")


@register.filter
def duration(seconds: Any) -> str:
    """Seconds as the largest units that matter: 0.4 s, 12 s, 3 min 5 s, 2 h 10 min, 3 d 4 h."""
    if seconds is None or seconds == "":
        return ""
    return duration_text(float(seconds))


@register.filter
def counts(value: Any) -> list[tuple[str, str]]:
    """A job run's counts as (name, value) pairs, amounts for people."""
    return counts_text(value if isinstance(value, dict) else {})
