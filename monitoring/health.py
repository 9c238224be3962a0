"""Liveness and readiness, for the load balancer and the orchestrator.

``/healthz`` answers as long as the process can serve a request at all: it
touches nothing else, so a database outage never gets healthy processes
restarted. ``/readyz`` says whether this process can do its work now: the
database answers, Redis answers, and the schema has every migration this code
expects (a new release started before ``migrate`` ran is not ready). A
process that is not ready gets no traffic until it is.
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

# A probe must answer within the orchestrator's timeout, whatever Redis does.
REDIS_TIMEOUT_SECONDS = 2.0
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


def readiness() -> tuple[bool, dict[str, dict[str, str]]]:
    """Run every check (one failing does not skip the others) and report each."""
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
    return all(result["status"] == "ok" for result in results.values()), results


@never_cache
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    """Liveness: the process is up and serving."""
    return JsonResponse({"status": "ok"})


@never_cache
@require_GET
def readyz(request: HttpRequest) -> JsonResponse:
    """Readiness: 200 when every check passes, else 503 naming each check and why."""
    ready, checks = readiness()
    return JsonResponse(
        {"status": "ok" if ready else "unavailable", "checks": checks},
        status=200 if ready else 503,
    )
