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

A limit fails open. When Redis does not answer (refused, timed out, loading
after a restart, a read-only replica after a failover), the request is let
through unthrottled: a guard against abuse is never worth refusing the
exchange's traffic, and nothing a request does needs Redis (PostgreSQL is the
truth). Each check let through is counted (``rewards_rate_limit_fail_open_total``,
kept in PostgreSQL by ``monitoring.outages``) and logged once when it starts,
once a minute while it lasts and once when Redis answers again, never once per
request. After a failure this process leaves Redis alone for
``SKIP_AFTER_FAILURE_SECONDS``, so a Redis that hangs instead of refusing
costs one request its socket timeout (``CACHES`` OPTIONS) per second, not
every request.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from typing import Any

import redis
from django.core.cache import cache
from rest_framework.request import Request
from rest_framework.settings import api_settings
from rest_framework.throttling import BaseThrottle

from access.principals import ExchangeUserPrincipal, ServicePrincipal
from config import clock
from monitoring import outages

logger = logging.getLogger(__name__)

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
        count = _count_or_none(f"throttle:{scope}:{digest}:{window}", period)
        if count is None:
            return True  # Redis did not answer: let through, counted and logged
        self._wait = (window + 1) * period - now
        return count <= limit

    def wait(self) -> float | None:
        return self._wait


# After Redis failed, this process lets requests through without asking it
# for this long: a dead Redis then costs nothing, a hanging one a socket timeout
# a second.
SKIP_AFTER_FAILURE_SECONDS = 1.0
# While it lasts, an outage is logged again this often (with its count).
LOG_EVERY_SECONDS = 60.0


class _FailOpen:
    """This process's view of Redis for rate limits: answering or not, since
    when, and how many checks were let through; logs the outage at its start,
    once a minute and at its end."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.down_since: float | None = None  # time.monotonic()
        self.skip_until = 0.0
        self.let_through = 0  # over the whole outage
        self.unlogged = 0  # since the last line
        self.logged_at = 0.0

    def skipping(self) -> bool:
        with self.lock:
            return time.monotonic() < self.skip_until

    def let_through_one(self, error: BaseException | None) -> None:
        now = time.monotonic()
        line: str | None = None
        with self.lock:
            self.let_through += 1
            self.unlogged += 1
            if error is not None:
                self.skip_until = now + SKIP_AFTER_FAILURE_SECONDS
            if self.down_since is None:
                self.down_since = now
                line = (
                    "rate limits not enforced: Redis did not answer"
                    f" ({outages.describe(error) if error else 'unknown'});"
                    " requests are let through until it does"
                )
            elif now - self.logged_at >= LOG_EVERY_SECONDS:
                line = (
                    f"rate limits still not enforced: {self.unlogged} checks let through in the"
                    f" last {now - self.logged_at:.0f} s, {self.let_through} since Redis stopped"
                    f" answering {now - self.down_since:.0f} s ago"
                    + (f" ({outages.describe(error)})" if error else "")
                )
            if line is not None:
                self.logged_at, self.unlogged = now, 0
        if line is not None:
            logger.warning(line)
        outages.count(outages.RATE_LIMIT, outages.REDIS)

    def answered(self) -> None:
        if self.down_since is None:  # the common case: read without the lock
            return
        with self.lock:
            if self.down_since is None:
                return
            seconds, checks = time.monotonic() - self.down_since, self.let_through
            self.down_since, self.let_through, self.unlogged = None, 0, 0
        logger.warning(
            "rate limits enforced again: Redis answers after %.1f s; %d checks were let"
            " through meanwhile",
            seconds,
            checks,
        )
        outages.flush()


_fail_open = _FailOpen()


def _count_or_none(key: str, period: int) -> int | None:
    """The window's total with this request, or None when Redis did not answer
    (the request is then let through, counted and logged)."""
    if _fail_open.skipping():
        _fail_open.let_through_one(None)
        return None
    try:
        try:
            count = _count(key, period)
        except redis.ConnectionError:
            # A connection pooled before Redis restarted fails once, then the
            # client connects again: one more try tells a restart from an outage.
            count = _count(key, period)
    except redis.RedisError as error:
        _fail_open.let_through_one(error)
        return None
    _fail_open.answered()
    return count


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
