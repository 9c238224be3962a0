"""Liveness and readiness probes: no credentials, exact answers."""

from __future__ import annotations

from typing import Any

import pytest
from django.db.migrations.recorder import MigrationRecorder
from django.test import Client


def test_healthz_answers_without_touching_anything(settings: Any, closed_port: int) -> None:
    # No database access is allowed in this test (it would raise) and Redis
    # points at a closed port: liveness needs neither.
    settings.REDIS_URL = f"redis://127.0.0.1:{closed_port}/0"
    response = Client().get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


@pytest.mark.django_db
def test_readyz_is_ok_when_database_redis_and_schema_are() -> None:
    response = Client().get("/readyz")
    assert response.status_code == 200
    assert response.json() == {
        "status": "ok",
        "checks": {
            "database": {"status": "ok"},
            "redis": {"status": "ok"},
            "migrations": {"status": "ok"},
        },
        "consumers": {"status": "none", "members": {}},
    }


@pytest.mark.django_db
def test_readyz_stays_200_degraded_naming_redis_when_redis_is_unreachable(
    settings: Any, closed_port: int
) -> None:
    # Every request is served without Redis (rate limits fail open): taking
    # the process out of the load balancer would stop the API for nothing.
    settings.REDIS_URL = f"redis://127.0.0.1:{closed_port}/0"
    response = Client().get("/readyz")
    assert response.status_code == 200
    assert response.json() == {
        "status": "degraded",
        "checks": {
            "database": {"status": "ok"},
            "redis": {
                "status": "failed",
                "reason": f"ConnectionError: Error 111 connecting to 127.0.0.1:{closed_port}."
                " Connection refused.",
            },
            "migrations": {"status": "ok"},
        },
        "consumers": {"status": "none", "members": {}},
    }


@pytest.mark.django_db
def test_readyz_is_503_while_a_migration_is_unapplied(monkeypatch: pytest.MonkeyPatch) -> None:
    # As if this release's migration had not run yet (only the owner role may
    # write the record of migrations, so the record is read as if it had not).
    applied = MigrationRecorder.applied_migrations
    monkeypatch.setattr(
        MigrationRecorder,
        "applied_migrations",
        lambda recorder: {
            key: migration
            for key, migration in applied(recorder).items()
            if key != ("monitoring", "0002_outages")
        },
    )
    response = Client().get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"] == {
        "database": {"status": "ok"},
        "redis": {"status": "ok"},
        "migrations": {"status": "failed", "reason": "1 unapplied: monitoring.0002_outages"},
    }
