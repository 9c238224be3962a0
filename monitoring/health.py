"""Liveness and readiness, for the load balancer and the orchestrator.

``/healthz`` answers as long as the process can serve a request at all: it
touches nothing else, so a database outage never gets healthy processes
restarted. ``/readyz`` says whether this process can do its work now: the
database answers and the schema has every migration this code expects (a new
release started before ``migrate`` ran is not ready). A process that is not
ready gets no traffic until it is.

Redis is checked and named, but its outage leaves the process ready
(``"status": "degraded"``, still 200): every request is served without it
(rate limits fail open, see ``monitoring.throttling``), and taking every web
process out of the load balancer for it would turn a lapse of the rate limits
into an outage of the API, event ingestion included.

The body also says how the stream consumers are (``monitoring.outages``):
consuming, waiting for Redis or the database, or silent. That is for the one
reading the probe; it never makes a web process unready.
"""

from __future__ import annotations

from collections.abc import Callable

import redis
from django.conf import settings
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from monitoring import outages

# A probe must answer within the orchestrator's timeout, whatever Redis does.
REDIS_TIMEOUT_SECONDS = 0.5
# Enough names for an operator to see what is missing, not a whole release's list.
MIGRATIONS_NAMED = 10


class CheckFailed(Exception):
    """A readiness check failed; the message says why."""


def check_database() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")


def check_redis() -> None:
    client = redis.Redis.from_url(
        settings.REDIS_URL,
        socket_connect_timeout=REDIS_TIMEOUT_SECONDS,
        socket_timeout=REDIS_TIMEOUT_SECONDS,
    )
    try:
        client.ping()
    finally:
        client.close()


def check_migrations() -> None:
    executor = MigrationExecutor(connection)
    plan = executor.migration_plan(executor.loader.graph.leaf_nodes())
    if plan:
        names = [f"{migration.app_label}.{migration.name}" for migration, _ in plan]
        shown = ", ".join(names[:MIGRATIONS_NAMED])
        more = f" and {len(names) - MIGRATIONS_NAMED} more" if len(names) > MIGRATIONS_NAMED else ""
        raise CheckFailed(f"{len(names)} unapplied: {shown}{more}")


READINESS_CHECKS: dict[str, Callable[[], None]] = {
    "database": check_database,
    "redis": check_redis,
    "migrations": check_migrations,
}


# Without these a process cannot serve; without the others it is degraded.
REQUIRED = ("database", "migrations")
OK, DEGRADED, UNAVAILABLE = "ok", "degraded", "unavailable"


def readiness() -> tuple[str, dict[str, dict[str, str]]]:
    """Run every check (one failing does not skip the others) and report each:
    ``ok``, ``degraded`` (only checks outside REQUIRED failed) or ``unavailable``."""
    results: dict[str, dict[str, str]] = {}
    for name, check in READINESS_CHECKS.items():
        if name == "migrations" and results["database"]["status"] != "ok":
            results[name] = {"status": "failed", "reason": "the database did not answer"}
            continue
        try:
            check()
        except CheckFailed as failure:
            results[name] = {"status": "failed", "reason": str(failure)}
        except Exception as error:
            # Drivers' messages may span lines; a probe's answer is read on one.
            reason = " ".join(f"{type(error).__name__}: {error}".split())
            results[name] = {"status": "failed", "reason": reason}
        else:
            results[name] = {"status": "ok"}
    failed = {name for name, result in results.items() if result["status"] != "ok"}
    if failed & set(REQUIRED):
        return UNAVAILABLE, results
    return (DEGRADED if failed else OK), results


def consumers(database_answered: bool) -> dict[str, object]:
    """The stream consumers heard from in the last hour (not stopped), by name,
    and one word for all of them (``outages.consumers_summary``)."""
    if not database_answered:
        return {"status": "unknown", "members": {}}
    try:
        states = outages.consumer_states()
    except Exception as error:
        return {"status": "unknown", "reason": outages.describe(error), "members": {}}
    return {
        "status": outages.consumers_summary(states),
        "members": {state.name: state.as_dict() for state in states},
    }


@never_cache
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    """Liveness: the process is up and serving."""
    return JsonResponse({"status": "ok"})


@never_cache
@require_GET
def readyz(request: HttpRequest) -> JsonResponse:
    """Readiness: 200 when the database and the schema are, 503 otherwise;
    the body names each check and why, and the consumers' state."""
    status, checks = readiness()
    return JsonResponse(
        {
            "status": status,
            "checks": checks,
            "consumers": consumers(checks["database"]["status"] == "ok"),
        },
        status=503 if status == UNAVAILABLE else 200,
    )
