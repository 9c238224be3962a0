"""What the application role may do to each table, granted by the owner.

The application role (``config.roles``) owns nothing: it cannot ALTER a
table, disable or drop a trigger, or TRUNCATE history; it gets no TRIGGER or
REFERENCES privilege. On every table of the schema it may SELECT, INSERT and
UPDATE, less what follows:

- **facts** (events, ledger transactions, postings, payout instructions, paid
  items) keep UPDATE only for row locks (``SELECT ... FOR UPDATE`` of a join
  that names them): their triggers refuse any change of a fact, for every role;
- **the migration record** (``django_migrations``) is read only: only the
  owner migrates;
- **DELETE** only where the product deletes in its normal work
  (:data:`DELETABLE`): sessions ending, staff and groups and schedules edited
  in the admin, configuration rows the admin lets ops remove, the projection
  checkpoints of a rebuild. Everything else is history: event log, ledger,
  payout instructions, quarantined inputs, job runs and their exceptions,
  programs' decisions (rewards, consumptions, commissions, interest, paid days);
- **TRUNCATE** only on read models (the tables the registered projectors own),
  which ``rebuild_projections`` empties and folds again from the log.

Tables created later by the owner (migrations) get SELECT, INSERT and UPDATE
through default privileges; run ``create_roles`` after ``migrate`` to apply the
lists above to them (``./bin/serve`` and the tests do).
"""

from __future__ import annotations

from typing import Any

from config.roles import PRIVATE_SCHEMA, _quote_ident

# Only the owner (migrations) writes these.
READ_ONLY = ("django_migrations",)

# Rows the product deletes in its normal work, and why.
DELETABLE: dict[str, str] = {
    "django_session": "sessions end (logout, expiry)",
    "django_admin_log": "deleting a staff user deletes their admin log; the event log keeps it",
    "auth_user": "staff accounts are managed in the admin",
    "auth_group": "staff groups are managed in the admin",
    "auth_user_groups": "staff memberships change",
    "auth_user_user_permissions": "staff permissions change",
    "auth_group_permissions": "sync_staff_groups sets each group's permissions",
    "django_celery_beat_": "schedules are edited in the admin and by Celery Beat (every table)",
    "campaigns_invitation": "invitations are managed in the admin",
    "referrals_communitypartner": "partner flags are managed in the admin",
    "referrals_programterms": "terms not yet in force are managed in the admin",
    "earn_earnterms": "terms not yet in force are managed in the admin",
    "ledger_projectioncheckpoint": "rebuild_projections starts every projector again",
}


def read_model_tables() -> list[str]:
    """The tables of the registered projectors (``rebuild_projections`` empties them)."""
    from ledger.projection import projectors

    return sorted({table for projector in projectors() for table in projector.tables})


def _deletable(table: str) -> bool:
    return any(
        table.startswith(name) if name.endswith("_") else table == name for name in DELETABLE
    )


def grant_application_role(cursor: Any, *, owner: str, app: str) -> dict[str, list[str]]:
    """Set the application role's privileges on every table and sequence of the
    current schema to exactly those above; returns the tables the role may
    only read, and those it may DELETE from and TRUNCATE.

    Run by the owner (or a superuser), in one transaction: concurrent runs on
    the same database queue on an advisory lock."""
    cursor.execute("SELECT pg_advisory_xact_lock(hashtext('rewards.grant_application_role'))")
    cursor.execute("SELECT current_schema()")
    schema = cursor.fetchone()[0]
    cursor.execute("SELECT tablename FROM pg_tables WHERE schemaname = %s", [schema])
    tables = sorted(row[0] for row in cursor.fetchall())
    read_models = set(read_model_tables())
    app_q, owner_q, schema_q = _quote_ident(app), _quote_ident(owner), _quote_ident(schema)

    def on(names: list[str]) -> str:
        return ", ".join(f"{schema_q}.{_quote_ident(name)}" for name in names)

    statements = [
        f"REVOKE CREATE ON SCHEMA {schema_q} FROM PUBLIC",
        f"GRANT USAGE ON SCHEMA {schema_q} TO {app_q}",
        f"REVOKE ALL ON ALL TABLES IN SCHEMA {schema_q} FROM {app_q}",
        f"REVOKE ALL ON ALL SEQUENCES IN SCHEMA {schema_q} FROM {app_q}",
        f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA {schema_q} TO {app_q}",
        f"ALTER DEFAULT PRIVILEGES FOR ROLE {owner_q} IN SCHEMA {schema_q}"
        f" GRANT SELECT, INSERT, UPDATE ON TABLES TO {app_q}",
        f"ALTER DEFAULT PRIVILEGES FOR ROLE {owner_q} IN SCHEMA {schema_q}"
        f" GRANT USAGE, SELECT ON SEQUENCES TO {app_q}",
    ]
    granted: dict[str, list[str]] = {"select": [], "delete": [], "truncate": []}
    for table in tables:
        if table in READ_ONLY:
            granted["select"].append(table)
            continue
        if table in read_models:
            granted["truncate"].append(table)
        if table in read_models or _deletable(table):
            granted["delete"].append(table)
    writable = [t for t in tables if t not in READ_ONLY]
    for privileges, names in (
        ("SELECT", tables),
        ("INSERT, UPDATE", writable),
        ("DELETE", granted["delete"]),
        ("TRUNCATE", granted["truncate"]),
    ):
        if names:
            statements.append(f"GRANT {privileges} ON {on(names)} TO {app_q}")
    cursor.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", [PRIVATE_SCHEMA])
    if cursor.fetchone():
        statements.append(f"REVOKE ALL ON SCHEMA {_quote_ident(PRIVATE_SCHEMA)} FROM PUBLIC")
    for statement in statements:
        cursor.execute(statement)
    return granted
