"""The test database, as child processes reach it."""

from __future__ import annotations

from django.db import connections


def child_database_url() -> str:
    """The URL of the test database this process is using, for a child
    process (closes this process's connections, so the child sees a quiet
    database)."""
    db = connections["default"].settings_dict
    connections.close_all()
    host = db["HOST"]
    if host.startswith("/"):
        return f"postgresql://{db['USER']}@/{db['NAME']}?host={host}"
    port = f":{db['PORT']}" if db["PORT"] else ""
    return f"postgresql://{db['USER']}@{host}{port}/{db['NAME']}"
