"""Suite-wide rules.

The suite runs as the application role, the way the service runs: the test
database is created, migrated and emptied between transactional tests by the
owner role (``DATABASE_OWNER_URL``), and every test connects as the role of
``DATABASE_URL``, which owns nothing and may not TRUNCATE history, DELETE
it or touch a trigger (``config.roles``, ``access.database_roles``).
``./bin/test`` provides both roles; so does a superuser's ``DATABASE_URL``.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import unquote, urlparse

import psycopg
import pytest
from django.db import connection, transaction
from django.test import Client, TransactionTestCase

from config import roles
from tests import contract


def _credentials(url: str) -> tuple[str, str]:
    parsed = urlparse(url)
    return unquote(parsed.username or ""), unquote(parsed.password or "")


@contextlib.contextmanager
def as_owner() -> Iterator[None]:
    """The default connection, for the duration, as the role that owns the schema."""
    owner_url = os.environ.get("DATABASE_OWNER_URL")
    if not owner_url:
        yield
        return
    settings_dict = connection.settings_dict
    saved = settings_dict["USER"], settings_dict["PASSWORD"]
    connection.close()
    settings_dict["USER"], settings_dict["PASSWORD"] = _credentials(owner_url)
    try:
        yield
    finally:
        connection.close()
        settings_dict["USER"], settings_dict["PASSWORD"] = saved


@pytest.fixture(scope="session")
def django_db_setup(
    request: pytest.FixtureRequest, django_test_environment: None, django_db_blocker: Any
) -> Iterator[None]:
    """The test database made by the owner; the tests connect as the application role."""
    from django.test.utils import setup_databases, teardown_databases

    from access.database_roles import grant_application_role

    if not os.environ.get("DATABASE_OWNER_URL") and roles.provide(os.environ):
        # Settings were read before the roles existed: connect as the application role.
        user, password = _credentials(os.environ["DATABASE_URL"])
        connection.settings_dict.update(USER=user, PASSWORD=password)
    verbosity = request.config.option.verbose
    with django_db_blocker.unblock(), as_owner():
        databases = setup_databases(
            verbosity=verbosity, interactive=False, serialized_aliases=set()
        )
        if os.environ.get("DATABASE_OWNER_URL"):
            with transaction.atomic(), connection.cursor() as cursor:
                grant_application_role(
                    cursor,
                    owner=roles.user_of(os.environ["DATABASE_OWNER_URL"]),
                    app=roles.user_of(os.environ["DATABASE_URL"]),
                )
    yield
    with django_db_blocker.unblock(), as_owner():
        teardown_databases(databases, verbosity=verbosity)


@pytest.fixture
def connect_as(django_db_setup: None) -> Iterator[Callable[[str], psycopg.Connection[Any]]]:
    """Connections of their own to the test database, as ``"app"`` (the role of
    ``DATABASE_URL``) or ``"owner"``; closed after the test."""
    opened: list[psycopg.Connection[Any]] = []
    settings_dict = connection.settings_dict
    urls = {"app": os.environ["DATABASE_URL"], "owner": os.environ["DATABASE_OWNER_URL"]}

    def connect(role: str) -> psycopg.Connection[Any]:
        user, password = _credentials(urls[role])
        conn = psycopg.connect(
            dbname=settings_dict["NAME"],
            host=settings_dict["HOST"] or None,
            port=settings_dict["PORT"] or None,
            user=user,
            password=password or None,
        )
        opened.append(conn)
        return conn

    yield connect
    for conn in opened:
        conn.close()


# A transactional test ends by emptying every table (TRUNCATE), which only the
# owner may do: its teardown runs as the owner.
_empty_tables = TransactionTestCase._fixture_teardown  # type: ignore[attr-defined]


def _empty_tables_as_owner(self: TransactionTestCase) -> None:
    with as_owner():
        _empty_tables(self)


TransactionTestCase._fixture_teardown = _empty_tables_as_owner  # type: ignore[attr-defined]


# Every API answer a test receives is held to the published schema (tests/contract.py).
_client_request = Client.request


def _request_held_to_the_schema(self: Client, **request: Any) -> Any:
    response = _client_request(self, **request)
    if not getattr(response, "streaming", False):
        contract.check_answer(
            request["REQUEST_METHOD"],
            request["PATH_INFO"],
            response.status_code,
            response.get("Content-Type", ""),
            response.content,
        )
    return response


Client.request = _request_held_to_the_schema  # type: ignore[method-assign]


@pytest.fixture(autouse=True)
def _api_rate_limits_lifted(settings: Any) -> None:
    """API rate limits guard production from scripts; they are not what other
    tests test (one fires fifty spins at once to prove spins are race-safe), and
    their counters live in Redis, across tests. The tests of the limits
    (tests/monitoring) set the rates they exercise."""
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {}}


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """A skipped test is a test that did not run: the suite fails rather than hide it."""
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = reporter.stats.get("skipped", []) if reporter else []
    if reporter and skipped:
        reporter.write_line(f"FAILED: {len(skipped)} test(s) skipped; no test may be skipped")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
