"""Low-level database helpers shared by the ledger's hot paths."""

from __future__ import annotations

from typing import Any

import psycopg
from django.db import connection


def binary_cursor() -> psycopg.Cursor[Any]:
    """A cursor on Django's connection (same transaction) whose ``%b`` parameters
    are bound on the server in binary: arrays of thousands of keys go without
    the text quoting that would otherwise cost more than the query itself.

    Django's own cursors bind on the client, which cannot send binary."""
    connection.ensure_connection()
    raw = connection.connection
    assert raw is not None
    return psycopg.Cursor(raw)
