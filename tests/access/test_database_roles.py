"""The suite connects as the application role, which owns nothing: it cannot
empty history, delete it, or touch a trigger. ``create_roles`` grants it
exactly that, as often as it is run."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import psycopg
import pytest
from django.core.management import CommandError, call_command
from django.db import DatabaseError, connection, transaction

from config import roles
from tests.conftest import as_owner


def _app() -> str:
    return roles.user_of(os.environ["DATABASE_URL"])


def _owner() -> str:
    return roles.user_of(os.environ["DATABASE_OWNER_URL"])


@pytest.mark.django_db
def test_the_suite_connects_as_the_application_role() -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT current_user, r.rolsuper, r.rolcreaterole, r.rolcreatedb,"
            " pg_has_role(current_user, %s, 'MEMBER'),"
            " (SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
            "  WHERE c.relowner = r.oid AND n.nspname = current_schema())"
            " FROM pg_roles r WHERE r.rolname = current_user",
            [_owner()],
        )
        assert cursor.fetchone() == (_app(), False, False, False, False, 0)


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("sql", "error"),
    [
        ("TRUNCATE ledger_posting", "permission denied"),
        ("TRUNCATE ledger_event", "permission denied"),
        ("TRUNCATE ledger_ledgertransaction, ledger_posting", "permission denied"),
        ("TRUNCATE ledger_quarantinedinput", "permission denied"),
        ("TRUNCATE ledger_payoutinstruction", "permission denied"),
        ("TRUNCATE ledger_paiditem", "permission denied"),
        ("TRUNCATE jobs_jobrun", "permission denied"),
        ("DELETE FROM ledger_quarantinedinput", "permission denied"),
        ("DELETE FROM ledger_posting", "permission denied"),
        ("DELETE FROM ledger_payoutinstruction", "permission denied"),
        ("DELETE FROM jobs_jobrun", "permission denied"),
        ("DELETE FROM ledger_event", "permission denied"),
        ("DELETE FROM ledger_paiditem", "permission denied"),
        ("INSERT INTO django_migrations (app, name, applied) VALUES ('x', 'y', now())", "denied"),
        ("ALTER TABLE ledger_account DISABLE TRIGGER ALL", "must be owner"),
        ("ALTER TABLE ledger_posting DISABLE TRIGGER ledger_posting_refs", "must be owner"),
        ("DROP TRIGGER ledger_account_changed ON ledger_account", "must be owner"),
        (
            "CREATE TRIGGER t BEFORE UPDATE ON ledger_account"
            " FOR EACH ROW EXECUTE FUNCTION suppress_redundant_updates_trigger()",
            "permission denied",
        ),
        ("ALTER FUNCTION rewards_check_posting_refs() RESET ALL", "must be owner"),
        ("SET session_replication_role = replica", "permission denied"),
        ("SELECT * FROM ledger_private.balance_movement", "permission denied"),
        ("CREATE TABLE ledger_shadow (id bigint)", "permission denied"),
    ],
)
def test_the_application_role_cannot_empty_history_or_touch_a_trigger(sql: str, error: str) -> None:
    with (
        pytest.raises(DatabaseError, match=error),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute(sql)


@pytest.mark.django_db
def test_read_models_can_be_rebuilt() -> None:
    call_command("rebuild_projections", verbosity=0)


def _privileges(table: str) -> set[str]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT p FROM unnest(ARRAY['SELECT', 'INSERT', 'UPDATE', 'DELETE', 'TRUNCATE',"
            " 'REFERENCES', 'TRIGGER']) p WHERE has_table_privilege(%s, %s, p)",
            [_app(), table],
        )
        return {row[0] for row in cursor.fetchall()}


@pytest.mark.django_db(transaction=True)
def test_create_roles_grants_exactly_the_same_every_time(connect_as: Callable[[str], Any]) -> None:
    expected = {
        "ledger_event": {"SELECT", "INSERT", "UPDATE"},
        "ledger_posting": {"SELECT", "INSERT", "UPDATE"},
        "ledger_account": {"SELECT", "INSERT", "UPDATE"},
        "ledger_quarantinedinput": {"SELECT", "INSERT", "UPDATE"},
        "ledger_payoutinstruction": {"SELECT", "INSERT", "UPDATE"},
        "jobs_jobrun": {"SELECT", "INSERT", "UPDATE"},
        "django_migrations": {"SELECT"},
        "django_session": {"SELECT", "INSERT", "UPDATE", "DELETE"},
        "django_celery_beat_periodictask": {"SELECT", "INSERT", "UPDATE", "DELETE"},
        "ledger_closedorder": {"SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE"},
    }
    assert {table: _privileges(table) for table in expected} == expected
    owner = connect_as("owner")
    owner.execute("CREATE TABLE later_table (id bigint)")  # as a later migration would
    owner.commit()
    assert _privileges("later_table") == {"SELECT", "INSERT", "UPDATE"}
    with as_owner():
        for _ in range(2):
            call_command("create_roles", "--owner", _owner(), "--app", _app(), verbosity=0)
        with connection.cursor() as cursor:
            cursor.execute("DROP TABLE later_table")
    assert {table: _privileges(table) for table in expected} == expected
    with pytest.raises(CommandError, match="cannot grant itself"):
        call_command("create_roles", "--owner", _owner(), "--app", _app(), verbosity=0)


def test_the_owner_and_application_urls_name_two_roles() -> None:
    assert roles.with_user("postgresql://postgres@/rewards?host=/tmp/x", "a") == (
        "postgresql://a@/rewards?host=/tmp/x"
    )
    assert roles.with_user("postgresql://p:s@127.0.0.1:5432/db", "a b", "p@ss") == (
        "postgresql://a%20b:p%40ss@127.0.0.1:5432/db"
    )
    assert psycopg.conninfo.conninfo_to_dict(os.environ["DATABASE_URL"])["user"] == _app()
    assert _app() != _owner()
