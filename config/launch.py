"""The two entry points of a fresh machine: ``serve`` and ``test``.

Both first make sure the servers exist: where ``DATABASE_URL`` / ``REDIS_URL``
are unset, the embedded PostgreSQL and Redis are started (or joined) here, in
the parent, so that every child process shares them and they stop when the
parent exits. Where they are set, the named database is created if missing.
A superuser's ``DATABASE_URL`` is then split into two roles (``config.roles``):
the owner migrates, everything else runs as the application role.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import FrameType
from urllib.parse import urlparse

from config import embedded, roles

BASE_DIR = Path(__file__).resolve().parent.parent
PYTHON = sys.executable


def _servers() -> None:
    if not os.environ.get("DATABASE_URL") or not os.environ.get("REDIS_URL"):
        embedded.provide(os.environ)
    else:
        _ensure_database(os.environ.get("DATABASE_OWNER_URL") or os.environ["DATABASE_URL"])
    # A superuser's URL becomes the owner's (migrations) and the application role's.
    roles.provide(os.environ)


def _ensure_database(url: str) -> None:
    """Create the database named by DATABASE_URL on its server if it is missing."""
    import psycopg
    from psycopg import sql

    name = urlparse(url).path.lstrip("/")
    admin_url = url.replace(f"/{name}", "/postgres", 1)
    with psycopg.connect(admin_url, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def _manage(*args: str, env: dict[str, str] | None = None) -> None:
    subprocess.run([PYTHON, "manage.py", *args], cwd=BASE_DIR, check=True, env=env)  # noqa: S603


def _migrate() -> None:
    """Migrate as the owner, then grant the application role what it may do
    on the tables as they now are."""
    owner_url = os.environ.get("DATABASE_OWNER_URL")
    if not owner_url:
        _manage("migrate", "--noinput")
        return
    as_owner = {**os.environ, "DATABASE_URL": owner_url}
    _manage("migrate", "--noinput", env=as_owner)
    _manage(
        "create_roles",
        "--owner",
        roles.user_of(owner_url),
        "--app",
        roles.user_of(os.environ["DATABASE_URL"]),
        "--verbosity",
        "0",
        env=as_owner,
    )


def serve(port: int, workers: int, *, demo: bool, speed: int | None) -> int:
    """Run the service; with ``demo``, load the demo world and play the simulated
    exchange into it; with ``speed``, on a time-lapse clock ``speed`` times as fast,
    the scheduled jobs driven on that clock instead of by Beat."""
    _servers()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    from config import clock

    if speed:
        os.environ["TIME_LAPSE"] = clock.start_time_lapse(speed)
    _migrate()
    _manage("collectstatic", "--noinput", "--verbosity", "0")
    start = clock.now().isoformat()
    if demo:
        _manage("load_demo_world", "--start", start, "--port", str(port))
    commands = {
        "web": [
            PYTHON,
            "-m",
            "gunicorn",
            "config.wsgi",
            "--bind",
            f"0.0.0.0:{port}",
            "--workers",
            str(workers),
            "--access-logfile",
            "-",
        ],
        "worker": [
            PYTHON,
            "-m",
            "celery",
            "-A",
            "config",
            "worker",
            "--loglevel",
            "INFO",
            "--concurrency",
            "2",
        ],
        "beat": [PYTHON, "-m", "celery", "-A", "config", "beat", "--loglevel", "INFO"],
        "consumer": [PYTHON, "manage.py", "consume_events", "--no-progress"],
    }
    if speed:
        # Beat keeps real time; under a time-lapse the jobs follow the project's clock.
        del commands["beat"], commands["worker"]
        commands["jobs"] = [PYTHON, "manage.py", "drive_jobs"]
    if demo:
        commands["exchange"] = [PYTHON, "manage.py", "simulate_exchange", "--start", start]
    children = {
        name: subprocess.Popen(argv, cwd=BASE_DIR)  # noqa: S603
        for name, argv in commands.items()
    }
    print(
        f"serving on http://127.0.0.1:{port}/  (admin /admin/, API docs /api/docs/)"
        + (f"; time-lapse x{speed}" if speed else "")
        + ("; Ctrl-C stops everything" if demo else ""),
        flush=True,
    )
    stopping = False

    def stop(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    status = 0
    while not stopping:
        for name, child in children.items():
            if child.poll() is not None:
                print(f"{name} exited with {child.returncode}; stopping the rest", file=sys.stderr)
                status = child.returncode or 1
                stopping = True
                break
        time.sleep(0.5)
    for child in children.values():
        if child.poll() is None:
            child.terminate()
    deadline = time.monotonic() + 20
    for child in children.values():
        try:
            child.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            child.kill()
    return status


def test(pytest_args: list[str]) -> int:
    _servers()
    result = subprocess.run([PYTHON, "-m", "pytest", *pytest_args], cwd=BASE_DIR, check=False)  # noqa: S603
    if result.returncode == 5:
        print("no tests were collected", file=sys.stderr)
        return 1
    return result.returncode


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m config.launch")
    sub = parser.add_subparsers(dest="command", required=True)
    serve_parser = sub.add_parser("serve", help="web, worker, beat and stream consumer")
    serve_parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
    serve_parser.add_argument(
        "--workers", type=int, default=int(os.environ.get("WEB_WORKERS", "2"))
    )
    serve_parser.add_argument(
        "--no-demo",
        action="store_true",
        help="the service alone, as production runs it (also REWARDS_DEMO=0; always in production)",
    )
    serve_parser.add_argument(
        "--time-lapse",
        type=int,
        metavar="SPEED",
        help="run the clock SPEED times as fast (e.g. 2000: a day in 43 s) to watch a whole"
        " campaign: registration, spins, the end, the draw, bonuses and next-day payouts",
    )
    sub.add_parser("test", help="the whole test suite (extra arguments go to pytest)")
    args, rest = parser.parse_known_args()
    if args.command == "serve":
        if rest:
            parser.error(f"unrecognized arguments: {' '.join(rest)}")
        production = os.environ.get("DJANGO_ENV", "").lower() == "production"
        demo = not (args.no_demo or production or os.environ.get("REWARDS_DEMO") == "0")
        sys.exit(serve(args.port, args.workers, demo=demo, speed=args.time_lapse))
    sys.exit(test(rest))


if __name__ == "__main__":
    main()
