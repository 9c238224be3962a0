"""How the support pages spell values: amounts without trailing zeros, UTC times."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from django import template

from ledger.money import format_amount

register = template.Library()


@register.filter
def amount(value: Any) -> str:
    if value is None or value == "":
        return ""
    return format_amount(Decimal(value))


@register.filter
def utc(value: Any) -> str:
    if not isinstance(value, dt.datetime):
        return "" if value is None else str(value)
    return value.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


@register.filter
def duration(seconds: Any) -> str:
    """Seconds as the largest units that matter: 0.4 s, 12 s, 3 min 5 s, 2 h 10 min, 3 d 4 h."""
    if seconds is None or seconds == "":
        return ""
    total = float(seconds)
    if total < 60:
        return f"{total:.1f} s" if total < 10 else f"{total:.0f} s"
    whole = int(total)
    days, rest = divmod(whole, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {minutes} min"
    return f"{minutes} min {secs} s"
