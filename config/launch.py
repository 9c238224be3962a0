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
import errno
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from types import FrameType
from urllib.parse import urlparse, urlunparse

from config import embedded, roles

BASE_DIR = Path(__file__).resolve().parent.parent
PYTHON = sys.executable


def _servers(*, database: str = embedded.DATABASE_NAME, fresh: bool = False) -> None:
    """Make sure the servers and the database exist; ``fresh``: the database
    is dropped and made again (the time-lapse's own, every run)."""
    if not os.environ.get("DATABASE_URL") or not os.environ.get("REDIS_URL"):
        embedded.provide(os.environ, database=database)
    _ensure_database(
        os.environ.get("DATABASE_OWNER_URL") or os.environ["DATABASE_URL"], fresh=fresh
    )
    # A superuser's URL becomes the owner's (migrations) and the application role's.
    roles.provide(os.environ)


def _ensure_database(url: str, *, fresh: bool = False) -> None:
    """Create the database named by ``url`` on its server if it is missing
    (with ``fresh``, drop it first)."""
    import psycopg
    from psycopg import sql

    name = urlparse(url).path.lstrip("/")
    admin_url = urlunparse(urlparse(url)._replace(path="/postgres"))
    with psycopg.connect(admin_url, autocommit=True) as conn:
        if fresh:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def _suffixed(url: str, suffix: str) -> str:
    """``url`` naming the database of the same name with ``suffix`` appended."""
    parsed = urlparse(url)
    return urlunparse(parsed._replace(path=f"/{parsed.path.lstrip('/')}{suffix}"))


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


# Under a time-lapse the clock runs ahead: its rows are future-dated, so they
# go to a database and streams of their own, never the real-time demo's.
TIME_LAPSE_SUFFIX = "_timelapse"
LOOPBACK = "127.0.0.1"


def port_problem(host: str, port: int) -> str | None:
    """Why ``host:port`` cannot be listened on, in words, or None if it can.

    Bound the way gunicorn binds (SO_REUSEADDR), then released: a port held
    by a listener is refused, one in TIME_WAIT is not."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as error:
        return f"cannot listen on {host!r}: {error.strerror}"
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except PermissionError:
            return (
                f"port {port} needs privileges this user does not have;"
                " pick a port above 1023 with --port, e.g. ./bin/serve --port 8001"
            )
        except OSError as error:
            if error.errno == errno.EADDRINUSE:
                return (
                    f"port {port} on {host} is already in use (another ./bin/serve, or another"
                    f" program); pick another with --port, e.g. ./bin/serve --port {port + 1}"
                )
            return f"cannot listen on {host}:{port}: {error.strerror}"
    return None


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:  # noqa: S310 - our own http URL
            return bool(response.status == 200)
    except (OSError, ValueError):
        return False


def _time_lapse_environment() -> None:
    """Name the time-lapse's own database and streams (see TIME_LAPSE_SUFFIX)."""
    for name in ("DATABASE_URL", "DATABASE_OWNER_URL"):
        if os.environ.get(name):
            os.environ[name] = _suffixed(os.environ[name], TIME_LAPSE_SUFFIX)
    # The settings' defaults, suffixed: the real-time consumer never reads these.
    os.environ["EVENT_STREAM"] = os.environ.get("EVENT_STREAM", "exchange.events") + ".timelapse"
    os.environ["PAYOUT_STREAM"] = os.environ.get("PAYOUT_STREAM", "rewards.payouts") + ".timelapse"


def _empty_time_lapse_streams() -> None:
    """A fresh time-lapse database starts with empty streams: a consumer group
    made on an old stream would bring last run's events in again."""
    import redis

    client = redis.Redis.from_url(os.environ["REDIS_URL"])
    try:
        client.delete(os.environ["EVENT_STREAM"], os.environ["PAYOUT_STREAM"])
    finally:
        client.close()


def _gunicorn_control(runtime: Path) -> list[str]:
    """Gunicorn's control socket in the runtime folder, not ``~/.gunicorn/``
    (shared by every gunicorn of the user); off where the path is too long."""
    path = runtime / "gunicorn.ctl"
    if len(str(path)) > 100:
        return ["--no-control-socket"]
    return ["--control-socket", str(path)]


def serve(port: int, workers: int, *, listen: str, demo: bool, speed: int | None) -> int:
    """Run the service; with ``demo``, load the demo world and play the simulated
    exchange into it; with ``speed``, on a time-lapse clock ``speed`` times as fast,
    the scheduled jobs driven on that clock instead of by Beat, in a database of
    its own made afresh."""
    # Before anything slow: a taken port is said at once, and nothing is started.
    problem = port_problem(listen, port)
    if problem:
        print(f"serve: {problem}", file=sys.stderr)
        return 2
    if demo and listen not in (LOOPBACK, "localhost", "::1"):
        print(
            f"serve: listening on {listen}, beyond this machine: the demo runs with DEBUG on and"
            " its admin password is printed below; do so only on a network you trust",
            file=sys.stderr,
        )
    runtime = embedded.use_runtime_dir(os.environ)
    if speed:
        _time_lapse_environment()
    _servers(
        database=embedded.DATABASE_NAME + (TIME_LAPSE_SUFFIX if speed else ""), fresh=bool(speed)
    )
    if speed:
        _empty_time_lapse_streams()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    from config import clock

    if speed:
        os.environ["TIME_LAPSE"] = clock.start_time_lapse(speed)
    # Read before migrating: under a time-lapse, hours pass on the clock meanwhile.
    start = clock.now().isoformat()
    _migrate()
    _manage("collectstatic", "--noinput", "--verbosity", "0")
    local = LOOPBACK if listen in ("0.0.0.0", "::", "") else listen  # noqa: S104 - compared, not bound
    base = f"http://{local}:{port}" if ":" not in local else f"http://[{local}]:{port}"
    if demo:
        _manage("load_demo_world", "--start", start, "--base-url", base)
    commands = {
        "web": [
            PYTHON,
            "-m",
            "gunicorn",
            "config.wsgi",
            "--bind",
            f"[{listen}]:{port}" if ":" in listen else f"{listen}:{port}",
            "--workers",
            str(workers),
            "--access-logfile",
            "-",
            *_gunicorn_control(runtime),
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
        # Beat keeps real time; under a time-lapse the jobs follow the project's clock
        # (drive_jobs runs every interval job at once when it starts).
        del commands["beat"], commands["worker"]
        commands["jobs"] = [PYTHON, "manage.py", "drive_jobs"]
    if demo:
        commands["exchange"] = [PYTHON, "manage.py", "simulate_exchange"]
    stopping = False

    def stop(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    children = {
        name: subprocess.Popen(argv, cwd=BASE_DIR)  # noqa: S603
        for name, argv in commands.items()
    }
    # Once, not as children: processes that end when their work is done.
    once: list[subprocess.Popen[bytes]] = []
    if not speed:
        # Beat fires an interval job first one interval after it starts (an hour
        # for some): run each once now, so the first minutes show their work. The
        # demo's users trade for a while first (registering takes the exchange
        # about 15 s), so that there is work to show.
        once.append(
            subprocess.Popen(  # noqa: S603
                [PYTHON, "manage.py", "run_interval_jobs", "--after", "30" if demo else "0"],
                cwd=BASE_DIR,
            )
        )
    status = 0
    serving = False
    deadline = time.monotonic() + 120
    while not stopping:
        for name, child in children.items():
            if child.poll() is not None:
                if name == "web" and not serving:
                    print(
                        f"serve: the web server did not start (exit {child.returncode});"
                        " see its messages above; stopping the rest",
                        file=sys.stderr,
                    )
                else:
                    print(
                        f"{name} exited with {child.returncode}; stopping the rest", file=sys.stderr
                    )
                status = child.returncode or 1
                stopping = True
                break
        if not stopping and not serving:
            # Said only once the server answers: its bind succeeded and it serves.
            if _answers(f"{base}/healthz"):
                serving = True
                print(
                    f"serving on {base}/  (admin /admin/, API docs /api/docs/)"
                    + (f"; listening on {listen}" if listen != local else "")
                    + (f"; time-lapse x{speed}" if speed else "")
                    + "; Ctrl-C stops everything",
                    flush=True,
                )
            elif time.monotonic() > deadline:
                print(
                    f"serve: {base}/healthz did not answer within 120 s; stopping", file=sys.stderr
                )
                status = 1
                stopping = True
        time.sleep(0.5)
    for child in [*children.values(), *once]:
        if child.poll() is None:
            child.terminate()
    deadline = time.monotonic() + 20
    for child in [*children.values(), *once]:
        try:
            child.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            child.kill()
    return status


def test(pytest_args: list[str]) -> int:
    embedded.use_runtime_dir(os.environ)
    _servers()
    result = subprocess.run([PYTHON, "-m", "pytest", *pytest_args], cwd=BASE_DIR, check=False)  # noqa: S603
    if result.returncode == 5:
        print("no tests were collected", file=sys.stderr)
        return 1
    return result.returncode


def arguments() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m config.launch")
    sub = parser.add_subparsers(dest="command", required=True)
    serve_parser = sub.add_parser("serve", help="web, worker, beat and stream consumer")
    serve_parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
    serve_parser.add_argument(
        "--listen",
        metavar="ADDRESS",
        default=os.environ.get("REWARDS_LISTEN", LOOPBACK),
        help="the address to listen on (also REWARDS_LISTEN); default 127.0.0.1, this machine"
        " only: the demo runs with DEBUG on and a published admin password. 0.0.0.0 listens"
        " on every interface",
    )
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
    return parser


def main() -> None:
    parser = arguments()
    args, rest = parser.parse_known_args()
    if args.command == "serve":
        if rest:
            parser.error(f"unrecognized arguments: {' '.join(rest)}")
        production = os.environ.get("DJANGO_ENV", "").lower() == "production"
        demo = not (args.no_demo or production or os.environ.get("REWARDS_DEMO") == "0")
        sys.exit(
            serve(args.port, args.workers, listen=args.listen, demo=demo, speed=args.time_lapse)
        )
    sys.exit(test(rest))


if __name__ == "__main__":
    main()
