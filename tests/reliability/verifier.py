"""``verify_ledger`` for many databases from one process.

    python -m tests.reliability.verifier   # then one database name a line on stdin

For each name: the ``verify_ledger`` management command against that
database; one JSON line on stdout with the exit status ``manage.py
verify_ledger`` would give (1 on a breach) and the command's output.
"""

from __future__ import annotations

import io
import json
import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()
    from django.core.management import call_command
    from django.core.management.base import CommandError
    from django.db import connections

    connection = connections["default"]
    for line in sys.stdin:
        name = line.strip()
        if not name:
            continue
        connection.close()
        connection.settings_dict["NAME"] = name
        out = io.StringIO()
        try:
            call_command("verify_ledger", stdout=out)
            code = 0
        except CommandError as error:
            out.write(f"CommandError: {error}\n")
            code = 1
        finally:
            connection.close()
        sys.stdout.write(json.dumps({"db": name, "code": code, "output": out.getvalue()}) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
