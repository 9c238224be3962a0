"""The README's first command with the demo world, on a time-lapse: started,
left to run, and checked to have moved money through the ledger soundly."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import redis
from psycopg import sql

from config import launch
from tests.demo.servers import free_port, on

ROOT = Path(__file__).resolve().parents[2]
# A simulated day in 21.6 s: the demo's three-day campaign is over, drawn and
# paid, with every program's next-day payouts, within about two minutes.
SPEED = 4000


def _drop(admin: str, *names: str) -> None:
    with psycopg.connect(admin, autocommit=True) as conn:
        for name in names:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


@pytest.fixture
def demo_database() -> Iterator[dict[str, str]]:
    """A database name of its own, handed to the demo, and the URLs of the one
    its time-lapse runs in (that name suffixed ``_timelapse``: the demo makes it
    afresh, migrates it as the owner role and runs in it as the application
    role); both dropped afterwards."""
    name = f"rewards_demo_{os.getpid()}"
    lapse = name + launch.TIME_LAPSE_SUFFIX
    owner = os.environ.get("DATABASE_OWNER_URL") or os.environ["DATABASE_URL"]
    admin = on(owner, "postgres")
    _drop(admin, name, lapse)
    urls = {"DATABASE_URL": on(os.environ["DATABASE_URL"], name)}
    if os.environ.get("DATABASE_OWNER_URL"):
        urls["DATABASE_OWNER_URL"] = on(owner, name)
    yield urls
    _drop(admin, name, lapse)


def _credits(url: str) -> dict[str, int]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT t.kind, count(*) FROM ledger_payoutinstruction p"
            " JOIN ledger_ledgertransaction t ON t.id = p.transaction_id GROUP BY t.kind"
        ).fetchall()
    return dict(rows)


def test_the_demo_moves_money_through_a_sound_ledger(
    demo_database: dict[str, str], tmp_path: Path
) -> None:
    env = {
        **os.environ,
        **demo_database,
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DJANGO_ENV": "development",
        # Streams of its own: nothing left over from another run is read.
        "EVENT_STREAM": f"demo-test-{os.getpid()}.events",
        "PAYOUT_STREAM": f"demo-test-{os.getpid()}.payouts",
    }
    env.pop("FROZEN_NOW", None)
    port = free_port()
    log = tmp_path / "demo.log"
    demo = subprocess.Popen(
        [sys.executable, "-m", "config.launch", "serve", "--port", str(port), "--workers", "1",
         "--time-lapse", str(SPEED)],
        cwd=ROOT,
        env=env,
        # A file, not a pipe: nobody reads a pipe while the demo runs, and a full one
        # would stop every process writing to it.
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )  # fmt: skip
    wanted = {
        "campaign.daily_prize",
        "voucher.compensation",
        "referral.commission",
        "earn.interest",
    }
    credits: dict[str, int] = {}
    lapse_env = {
        **env,
        **{
            key: launch._suffixed(url, launch.TIME_LAPSE_SUFFIX)
            for key, url in demo_database.items()
        },
    }
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and demo.poll() is None:
            time.sleep(5)
            try:
                credits = _credits(lapse_env["DATABASE_URL"])
            except psycopg.Error:
                continue  # not migrated yet
            if wanted <= set(credits):
                break
    finally:
        # Ctrl-C in a terminal signals the whole process group.
        os.killpg(demo.pid, signal.SIGINT)
        try:
            demo.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(demo.pid, signal.SIGKILL)
            demo.wait()
    output = log.read_text(errors="replace")
    assert wanted <= set(credits), f"credits so far: {credits}\n{output[-4000:]}"
    assert demo.returncode == 0, output[-4000:]
    assert "admin" in output and "JWT" in output  # it said where to look
    verify = subprocess.run(
        [sys.executable, "manage.py", "verify_ledger"],
        cwd=ROOT,
        env=lapse_env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert verify.returncode == 0 and "ledger sound" in verify.stdout, verify.stdout
    # The time-lapse's streams: the ones named, suffixed.
    redis.Redis.from_url(env["REDIS_URL"]).delete(
        env["EVENT_STREAM"] + ".timelapse", env["PAYOUT_STREAM"] + ".timelapse"
    )
    # The real-time demo's database was never made: the time-lapse is apart.
    with psycopg.connect(
        on(env.get("DATABASE_OWNER_URL") or env["DATABASE_URL"], "postgres")
    ) as conn:
        names = conn.execute(
            "SELECT datname FROM pg_database WHERE datname LIKE %s ORDER BY 1",
            [f"rewards_demo_{os.getpid()}%"],
        ).fetchall()
    assert names == [(f"rewards_demo_{os.getpid()}_timelapse",)]
