"""The first hour of ``./bin/serve``: where it listens, what it says when it
cannot, that a second start adds nothing to the demo world, that the interval
jobs run at start, and that nothing of it lands in the home folder."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from config import launch
from tests.demo.servers import free_port, on

ROOT = Path(__file__).resolve().parents[2]
EVERY_INTERFACE = "0.0.0.0"  # noqa: S104 - what --listen is tested with
# The jobs Beat runs on an interval (jobs/registry.py), each run once at start.
INTERVAL_JOBS = {
    "consume_vouchers",
    "draw_coverage",
    "earn_snapshot",
    "expire_vouchers",
    "issue_campaign_bonuses",
    "publish_payouts",
    "refresh_spins",
    "void_unused_spins",
}


def _connects(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=2):
            return True
    except OSError:
        return False


def _drop(admin: str, name: str) -> None:
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


@pytest.fixture
def serve_env(tmp_path: Path) -> Iterator[dict[str, str]]:
    """The launcher's environment: a database of its own on the suite's server
    (dropped afterwards), and no REDIS_URL, so that it starts a private Redis
    under its own data folder: its Celery broker and streams are nobody else's.
    HOME is an empty folder, to see what lands there."""
    name = f"rewards_serve_{os.getpid()}"
    owner = os.environ.get("DATABASE_OWNER_URL") or os.environ["DATABASE_URL"]
    admin = on(owner, "postgres")
    _drop(admin, name)
    home = tmp_path / "home"
    home.mkdir()
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"REDIS_URL", "CELERY_BROKER_URL", "FROZEN_NOW", "TIME_LAPSE"}
    }
    env.update(
        DATABASE_URL=on(os.environ["DATABASE_URL"], name),
        DJANGO_SETTINGS_MODULE="config.settings",
        DJANGO_ENV="development",
        REWARDS_DATA_DIR=str(tmp_path / "data"),
        HOME=str(home),
    )
    env.pop("REWARDS_LISTEN", None)
    if os.environ.get("DATABASE_OWNER_URL"):
        env["DATABASE_OWNER_URL"] = on(owner, name)
    yield env
    _drop(admin, name)


class Started:
    def __init__(self, env: dict[str, str], log: Path, *args: str) -> None:
        self.port = free_port()
        self.log = log
        self.process = subprocess.Popen(
            [sys.executable, "-m", "config.launch", "serve", "--port", str(self.port),
             "--workers", "1", *args],
            cwd=ROOT,
            env=env,
            # A file, not a pipe: nobody reads a pipe while it runs.
            stdout=log.open("w"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_serving(self) -> None:
        deadline = time.monotonic() + 180
        while "serving on" not in self.output():
            assert self.process.poll() is None, self.output()[-4000:]
            assert time.monotonic() < deadline, self.output()[-4000:]
            time.sleep(0.5)

    def stop(self) -> int:
        """Ctrl-C, as in a terminal: SIGINT to the whole process group."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGINT)
        try:
            return self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
            raise


def _world_rows(url: str) -> dict[str, int]:
    with psycopg.connect(url) as conn:
        counts = conn.execute(
            """SELECT
                (SELECT count(*) FROM campaigns_campaign),
                (SELECT count(*) FROM ledger_ledgertransaction WHERE kind = 'funding.top_up'),
                (SELECT count(*) FROM vouchers_voucher),
                (SELECT count(*) FROM ledger_exchangeuser),
                (SELECT count(*) FROM ledger_quarantinedinput)"""
        ).fetchone()
    assert counts is not None
    return dict(
        zip(["campaigns", "top_ups", "vouchers", "users", "quarantined"], counts, strict=True)
    )


def _start_runs(url: str) -> set[str]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT job FROM jobs_jobrun WHERE trigger = 'start' AND status = 'succeeded'"
        ).fetchall()
    return {job for (job,) in rows}


@pytest.mark.heavy
def test_a_second_start_adds_nothing_to_the_demo_world(
    serve_env: dict[str, str], tmp_path: Path
) -> None:
    url = serve_env["DATABASE_URL"]
    first = Started(serve_env, tmp_path / "first.log")
    try:
        first.wait_serving()
        # Bound to 127.0.0.1 alone: another loopback address finds nothing there.
        assert _connects("127.0.0.1", first.port)
        assert not _connects("127.0.0.2", first.port)
        # Every interval job runs once at start (after 30 s of trading).
        deadline = time.monotonic() + 90
        while _start_runs(url) != INTERVAL_JOBS and time.monotonic() < deadline:
            time.sleep(1)
        assert _start_runs(url) == INTERVAL_JOBS, first.output()[-4000:]
    finally:
        assert first.stop() == 0, first.output()[-4000:]
    # One campaign; five pools topped up once (campaign, vouchers, referrals,
    # Earn USDT and USDC); a 20 USDT voucher for each of the 40 users and the
    # showcase user's 1,000 USDT one.
    world = {"campaigns": 1, "top_ups": 5, "vouchers": 41, "users": 40, "quarantined": 0}
    assert _world_rows(url) == world

    second = Started(serve_env, tmp_path / "second.log", "--listen", EVERY_INTERFACE)
    try:
        second.wait_serving()
        # --listen 0.0.0.0: every address of the machine.
        assert _connects("127.0.0.2", second.port)
        assert "serve: listening on 0.0.0.0, beyond this machine" in second.output()
        assert "as made on its first start" in second.output()
        assert "top-up demo:campaign:demo:USDT: already applied" in second.output()
        # The exchange has registered nobody again and trades: its events are stored.
        deadline = time.monotonic() + 60
        with psycopg.connect(url, autocommit=True) as conn:
            before = conn.execute("SELECT max(position) FROM ledger_event").fetchone()
            while time.monotonic() < deadline:
                now = conn.execute("SELECT max(position) FROM ledger_event").fetchone()
                if now != before:
                    break
                time.sleep(1)
        assert now != before, second.output()[-4000:]
    finally:
        assert second.stop() == 0, second.output()[-4000:]
    assert _world_rows(url) == world
    # Nothing in the home folder: no ~/.gunicorn, no runtime files.
    assert list(Path(serve_env["HOME"]).iterdir()) == []


def test_a_taken_port_is_said_plainly_and_nothing_starts(tmp_path: Path) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "config.launch", "serve", "--port", str(port)],
            cwd=ROOT,
            env={**os.environ, "REWARDS_DATA_DIR": str(tmp_path / "data")},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert result.returncode == 2
    assert result.stderr == (
        f"serve: port {port} on 127.0.0.1 is already in use (another ./bin/serve, or another"
        f" program); pick another with --port, e.g. ./bin/serve --port {port + 1}\n"
    )
    assert "serving on" not in result.stdout
    # It stopped before anything: no servers started, no data folder made.
    assert not (tmp_path / "data").exists()


def test_the_default_address_is_this_machine_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("REWARDS_LISTEN", raising=False)
    assert launch.arguments().parse_args(["serve"]).listen == "127.0.0.1"
    wider = ["serve", "--listen", EVERY_INTERFACE]
    assert launch.arguments().parse_args(wider).listen == EVERY_INTERFACE
    monkeypatch.setenv("REWARDS_LISTEN", EVERY_INTERFACE)
    assert launch.arguments().parse_args(["serve"]).listen == EVERY_INTERFACE
