"""Shared set-up of the benchmarks: a database of their own, figures printed plainly.

The benchmarks run against the servers the project would use (DATABASE_URL /
REDIS_URL, or the embedded ones), in a separate database ``rewards_bench`` (or ``$BENCH_DATABASE``)
that is dropped and recreated, so a run never touches real data.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlparse, urlunparse

ROOT = Path(__file__).resolve().parent.parent
# A second name (BENCH_DATABASE=...) lets a small smoke run go beside a long one.
BENCH_DATABASE = os.environ.get("BENCH_DATABASE", "rewards_bench")


def _with_database(url: str, name: str) -> str:
    parsed = urlparse(url)
    return urlunparse(parsed._replace(path=f"/{name}"))


def setup() -> None:
    """Point this process (and its children) at a fresh bench database, migrated."""
    sys.path.insert(0, str(ROOT))
    os.chdir(ROOT)
    from config import embedded

    if not os.environ.get("DATABASE_URL") or not os.environ.get("REDIS_URL"):
        embedded.provide(os.environ)
    import psycopg
    from psycopg import sql

    admin = _with_database(os.environ["DATABASE_URL"], "postgres")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                sql.Identifier(BENCH_DATABASE)
            )
        )
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(BENCH_DATABASE)))
    os.environ["DATABASE_URL"] = _with_database(os.environ["DATABASE_URL"], BENCH_DATABASE)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    # Measured as production runs: DEBUG would also keep every SQL text in memory.
    os.environ.setdefault("DJANGO_DEBUG", "false")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    call_command("collectstatic", "--noinput", verbosity=0)  # the web door serves the admin's files


def row(label: str, value: str) -> None:
    print(f"  {label:<44} {value}", flush=True)


def _peak_rss_mb(pid: int) -> int | None:
    """The process's high-water resident memory (VmHWM), which exec resets: unlike
    ru_maxrss it does not count the parent's pages the child held before exec."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) // 1024
    except OSError:
        return None
    return None


def child_run(argv: list[str], env: dict[str, str] | None = None) -> tuple[float, int, str]:
    """Run a child; return its wall time, peak resident memory in MB, and stdout."""
    peak = 0
    with tempfile.TemporaryFile() as out:
        started = time.perf_counter()
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.DEVNULL, env=env)
        while proc.poll() is None:
            peak = max(peak, _peak_rss_mb(proc.pid) or 0)
            time.sleep(0.05)
        elapsed = time.perf_counter() - started
        out.seek(0)
        text = out.read().decode()
    if proc.returncode != 0:
        raise RuntimeError(f"{argv} exited {proc.returncode}: {text[-2000:]}")
    return elapsed, peak, text
