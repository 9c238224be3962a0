"""The two database roles the project runs under.

- The **owner** owns the database, its schema and every table, sequence and
  function in it. It runs the migrations, and only it can ALTER a table,
  disable a trigger or TRUNCATE history.
- The **application** role is what the web processes, workers, jobs and tests
  connect as. It owns nothing; what it may do on each table is granted by
  ``access.database_roles`` (``manage.py create_roles``).

:func:`provide` is for the servers a developer or CI hands the project (the
embedded PostgreSQL, or this machine's, both reached as a superuser): it
creates the two roles, hands the database to the owner and rewrites the
environment so that ``DATABASE_OWNER_URL`` names the owner and
``DATABASE_URL`` the application role. Production creates its roles once with
``manage.py create_roles`` and sets both URLs itself.

Plain DB-API cursors (psycopg's or Django's): used before Django is set up.
"""

from __future__ import annotations

import os
from collections.abc import MutableMapping
from typing import Any
from urllib.parse import quote, unquote, urlparse, urlunparse

OWNER_ROLE = "rewards_owner"
APP_ROLE = "rewards_app"


def provide(environ: MutableMapping[str, str]) -> bool:
    """Split a superuser's ``DATABASE_URL`` into the owner's and the application's.

    Does nothing when ``DATABASE_OWNER_URL`` is already set, or when the role
    of ``DATABASE_URL`` cannot create roles (then it is used for everything, as
    before roles existed). Returns whether the two roles are in use.
    """
    if environ.get("DATABASE_OWNER_URL"):
        return True
    import psycopg

    url = environ["DATABASE_URL"]
    try:
        conn = psycopg.connect(url, autocommit=True)
        existing = True
    except psycopg.OperationalError as exc:
        if "does not exist" not in str(exc):
            raise
        # No database yet (the tests make their own): the roles are all it takes.
        conn = psycopg.connect(
            urlunparse(urlparse(url)._replace(path="/postgres")), autocommit=True
        )
        existing = False
    with conn, conn.cursor() as cursor:
        if not can_create_roles(cursor):
            return False
        ensure_roles(cursor, owner=OWNER_ROLE, app=APP_ROLE)
        if existing:
            hand_over(cursor, owner=OWNER_ROLE)
        # A test database left by an interrupted run of another role: the owner
        # drops and makes it again, which only its owner may.
        test_database = environ.get("TEST_DATABASE_NAME", "test_rewards")
        cursor.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s AND datdba <> "
            "(SELECT oid FROM pg_roles WHERE rolname = %s)",
            [test_database, OWNER_ROLE],
        )
        if cursor.fetchone():
            cursor.execute(
                f"ALTER DATABASE {_quote_ident(test_database)} OWNER TO {_quote_ident(OWNER_ROLE)}"
            )
    environ["DATABASE_OWNER_URL"] = with_user(url, OWNER_ROLE)
    environ["DATABASE_URL"] = with_user(url, APP_ROLE)
    return True


def with_user(url: str, user: str, password: str | None = None) -> str:
    """``url`` with another role (and its password, if any) in it."""
    parsed = urlparse(url)
    host = parsed.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = quote(user, safe="")
    if password:
        netloc += ":" + quote(password, safe="")
    netloc += "@" + host + (f":{parsed.port}" if parsed.port else "")
    return urlunparse(parsed._replace(netloc=netloc))


def user_of(url: str) -> str:
    """The role a ``postgresql://`` URL connects as."""
    return unquote(urlparse(url).username or os.environ.get("PGUSER", "postgres"))


def can_create_roles(cursor: Any) -> bool:
    cursor.execute("SELECT rolsuper OR rolcreaterole FROM pg_roles WHERE rolname = current_user")
    row = cursor.fetchone()
    return bool(row and row[0])


def _quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _quote_literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def ensure_roles(
    cursor: Any,
    *,
    owner: str,
    app: str,
    owner_password: str | None = None,
    app_password: str | None = None,
    login: bool = True,
) -> list[str]:
    """Create the two roles if they are missing and set their attributes; returns
    what was changed. The owner may create databases (the test databases); the
    application role may not, and neither is a superuser or a member of the other."""
    wanted = {
        owner: ("CREATEDB", owner_password),
        app: ("NOCREATEDB", app_password),
    }
    done: list[str] = []
    for role, (createdb, password) in wanted.items():
        attributes = (
            f"{'LOGIN' if login else 'NOLOGIN'} NOSUPERUSER NOCREATEROLE {createdb}"
            " NOREPLICATION NOBYPASSRLS INHERIT"
        )
        if password is not None:
            attributes += f" PASSWORD {_quote_literal(password)}"
        cursor.execute(
            "SELECT rolcanlogin, rolsuper, rolcreaterole, rolcreatedb, rolreplication,"
            " rolbypassrls FROM pg_roles WHERE rolname = %s",
            [role],
        )
        row = cursor.fetchone()
        if row is None:
            try:
                cursor.execute(f"CREATE ROLE {_quote_ident(role)} {attributes}")
                done.append(f"created role {role}")
                continue
            except Exception as exc:  # another process created it just now
                if "already exists" not in str(exc):
                    raise
        current = tuple(row) if row else None
        expected = (login, False, False, createdb == "CREATEDB", False, False)
        if current != expected or password is not None:
            cursor.execute(f"ALTER ROLE {_quote_ident(role)} {attributes}")
            done.append(f"set the attributes of role {role}")
    # Neither role may act as the other.
    for member, group in ((app, owner), (owner, app)):
        cursor.execute(
            "SELECT 1 FROM pg_auth_members m JOIN pg_roles r ON r.oid = m.roleid"
            " JOIN pg_roles u ON u.oid = m.member WHERE r.rolname = %s AND u.rolname = %s",
            [group, member],
        )
        if cursor.fetchone():
            cursor.execute(f"REVOKE {_quote_ident(group)} FROM {_quote_ident(member)}")
            done.append(f"{member} is no longer a member of {group}")
    return done


# Schemas whose objects belong to the owner: the project's (current_schema())
# and the one holding what only the trigger functions may touch.
_OBJECTS = """
SELECT kind, name FROM (
    SELECT CASE c.relkind WHEN 'S' THEN 'SEQUENCE' WHEN 'v' THEN 'VIEW'
               WHEN 'm' THEN 'MATERIALIZED VIEW' ELSE 'TABLE' END AS kind,
           format('%%I.%%I', n.nspname, c.relname) AS name, c.relowner AS owner
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE n.nspname = ANY(%(schemas)s) AND c.relkind IN ('r', 'p', 'v', 'm', 'S')
      -- Sequences of a column follow their table.
      AND NOT (c.relkind = 'S' AND EXISTS (
          SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid
            AND d.deptype IN ('a', 'i')))
    UNION ALL
    SELECT CASE p.prokind WHEN 'p' THEN 'PROCEDURE' ELSE 'FUNCTION' END,
           format('%%I.%%I(%%s)', n.nspname, p.proname, pg_get_function_identity_arguments(p.oid)),
           p.proowner
    FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
    WHERE n.nspname = ANY(%(schemas)s)
      AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_proc'::regclass
                      AND d.objid = p.oid AND d.deptype = 'e')
    UNION ALL
    SELECT 'SCHEMA', format('%%I', n.nspname), n.nspowner
    FROM pg_namespace n WHERE n.nspname = ANY(%(schemas)s)
) o
WHERE o.owner <> (SELECT oid FROM pg_roles WHERE rolname = %(owner)s)
ORDER BY kind = 'SCHEMA' DESC, name
"""

PRIVATE_SCHEMA = "ledger_private"


def hand_over(cursor: Any, *, owner: str) -> list[str]:
    """Make ``owner`` the owner of the current database, its schema and every
    object in it (those a migration run by another role left behind). Needs a
    superuser unless everything is the owner's already."""
    done: list[str] = []
    cursor.execute(
        "SELECT current_database(), current_schema(),"
        " (SELECT r.rolname FROM pg_database d JOIN pg_roles r ON r.oid = d.datdba"
        "  WHERE d.datname = current_database())"
    )
    database, schema, database_owner = cursor.fetchone()
    if database_owner != owner:
        cursor.execute(f"ALTER DATABASE {_quote_ident(database)} OWNER TO {_quote_ident(owner)}")
        done.append(f"database {database}")
    cursor.execute(_OBJECTS, {"schemas": [schema, PRIVATE_SCHEMA], "owner": owner})
    for kind, name in cursor.fetchall():
        cursor.execute(f"ALTER {kind} {name} OWNER TO {_quote_ident(owner)}")
        done.append(f"{kind.lower()} {name}")
    return done
