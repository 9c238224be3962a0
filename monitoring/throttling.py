"""Rate limits of the API, counted in Redis so that every web process shares them.

Three limits, each a rate in ``REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]`` (set
from the environment, see docs/operations.md):

- ``user``: every request of one exchange user (by JWT ``sub``), whatever the
  endpoint: what a frontend needs, well short of a script hammering the API;
- a view's ``throttle_scope`` (``spin``): stricter, per user, on endpoints that
  decide something worth scripting (a spin draws a prize);
- ``service``: per service token, far higher. The exchange's services are
  trusted callers that batch their work (5,000 events a request); their limit
  only stops a runaway loop, and user limits never apply to them.

Counting is a fixed window per caller and period: one Redis ``INCR`` on a key
that expires with its window, atomic across processes and machines. DRF's own
throttles keep a list of timestamps and write it back, which two processes
serving the same user at once would overwrite. A fixed window admits up to
twice the rate across a window's edge, which is acceptable for a guard against
abuse. An anonymous request never reaches a throttle: it is refused (401) first.
"""

from __future__ import annotations

import hashlib
from typing import Any

from django.core.cache import cache
from rest_framework.request import Request
from rest_framework.settings import api_settings
from rest_framework.throttling import BaseThrottle

from access.principals import ExchangeUserPrincipal, ServicePrincipal
from config import clock

_PERIODS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_rate(rate: str) -> tuple[int, int]:
    """``"30/min"`` -> (30, 60): requests allowed per period of seconds."""
    number, period = rate.split("/")
    return int(number), _PERIODS[period.strip()[0].lower()]


class _FixedWindowThrottle(BaseThrottle):
    def __init__(self) -> None:
        self._wait: float | None = None

    def scope(self, view: Any) -> str | None:
        raise NotImplementedError

    def caller(self, request: Request) -> str | None:
        """Who is counted; None when this throttle does not apply to the caller."""
        raise NotImplementedError

    def allow_request(self, request: Request, view: Any) -> bool:
        scope = self.scope(view)
        caller = self.caller(request) if scope else None
        if scope is None or caller is None:
            return True
        # Read per request, not at import: a rate changed in settings applies at once.
        rate = api_settings.DEFAULT_THROTTLE_RATES.get(scope)
        if not rate:
            return True
        limit, period = parse_rate(str(rate))
        now = clock.now().timestamp()
        window = int(now // period)
        # Hashed: a user id may hold characters a cache key should not.
        digest = hashlib.blake2b(caller.encode(), digest_size=16).hexdigest()
        count = _count(f"throttle:{scope}:{digest}:{window}", period)
        self._wait = (window + 1) * period - now
        return count <= limit

    def wait(self) -> float | None:
        return self._wait


def _count(key: str, period: int) -> int:
    """Add one request to the window's counter and return the window's total."""
    # add() creates the counter with its expiry only if it is missing (SET NX EX),
    # incr() is Redis INCR: no read-modify-write that two processes could race.
    cache.add(key, 0, timeout=period)
    try:
        return int(cache.incr(key))
    except ValueError:
        # The counter expired between the two calls: this request opens the next one.
        cache.add(key, 1, timeout=period)
        return 1


class ExchangeUserRateThrottle(_FixedWindowThrottle):
    """The ``user`` rate: all requests of one exchange user."""

    def scope(self, view: Any) -> str | None:
        return "user"

    def caller(self, request: Request) -> str | None:
        user = request.user
        return user.user_id if isinstance(user, ExchangeUserPrincipal) else None


class ExchangeUserScopedThrottle(_FixedWindowThrottle):
    """A view's own ``throttle_scope`` (e.g. ``spin``), per exchange user."""

    def scope(self, view: Any) -> str | None:
        return getattr(view, "throttle_scope", None)

    def caller(self, request: Request) -> str | None:
        user = request.user
        return user.user_id if isinstance(user, ExchangeUserPrincipal) else None


class ServiceRateThrottle(_FixedWindowThrottle):
    """The ``service`` rate: all requests made with one service token."""

    def scope(self, view: Any) -> str | None:
        return "service"

    def caller(self, request: Request) -> str | None:
        user = request.user
        return f"{user.name}#{user.token_id}" if isinstance(user, ServicePrincipal) else None
