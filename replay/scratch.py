"""Scratch databases: made afresh beside the live one, on the same server.

Replay and backtest never write to the database they read: they create a new
one (named after it, ``<name>_replay`` by default), migrate it as the owner
role, and run the product in a separate process pointed at it. The process
reads the source only through its own read-only connection.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlparse, urlunparse

from django.db import connection

BASE_DIR = Path(__file__).resolve().parent.parent


def url_of(database: str) -> str:
    """A URL for ``database`` on the current server, as the owner role where
    there is one (creating a database and migrating it need it)."""
    base = os.environ.get("DATABASE_OWNER_URL") or os.environ["DATABASE_URL"]
    return urlunparse(urlparse(base)._replace(path="/" + database))


def current_database() -> str:
    """The database Django is connected to (the test database under pytest)."""
    return str(connection.settings_dict["NAME"])


def create(database: str) -> None:
    """Drop ``database`` if it exists, create it and migrate it."""
    import psycopg
    from psycopg import sql

    if database == current_database():
        raise ValueError("a scratch database cannot be the live one")
    admin = urlunparse(urlparse(url_of(database))._replace(path="/postgres"))
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(database))
        )
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))
    if manage(database, "migrate", "--noinput", "--verbosity", "0") != 0:
        raise RuntimeError(f"could not migrate the scratch database {database}")


def drop(database: str) -> None:
    import psycopg
    from psycopg import sql

    admin = urlunparse(urlparse(url_of(database))._replace(path="/postgres"))
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(database))
        )


def environment(database: str) -> dict[str, str]:
    """The environment of a process of the product working in ``database``:
    the owner's URL for both roles (nothing else uses it), and streams of
    its own, so nothing it does can reach the live streams."""
    url = url_of(database)
    env = {**os.environ, "DATABASE_URL": url, "DATABASE_OWNER_URL": url}
    for name, default in (
        ("EVENT_STREAM", "exchange.events"),
        ("PAYOUT_STREAM", "rewards.payouts"),
    ):
        env[name] = f"{os.environ.get(name, default)}.{database}"
    # The jobs run again by the thousand: their routine lines would bury the report.
    env["LOG_LEVEL"] = os.environ.get("REPLAY_LOG_LEVEL", "WARNING")
    # DEBUG would keep the text of every statement of a long run in memory.
    env["DJANGO_DEBUG"] = "false"
    env.pop("FROZEN_NOW", None)
    env.pop("TIME_LAPSE", None)
    return env


def manage(database: str, *args: str) -> int:
    """Run ``manage.py *args`` against ``database``; its output is this process's."""
    return subprocess.run(  # noqa: S603
        [sys.executable, "manage.py", *args], cwd=BASE_DIR, env=environment(database), check=False
    ).returncode
