"""Production settings refuse laptop defaults; product code has one clock."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PRODUCT_CODE = [
    "access",
    "config",
    "jobs",
    "ledger",
    "campaigns",
    "vouchers",
    "referrals",
    "earn",
    "monitoring",
    "support",
    "demo",
]
WALL_CLOCK = re.compile(
    r"datetime\.now\(|timezone\.now|\.utcnow\(|time\.time\(\)|date\.today\(|auto_now"
)


def test_only_the_clock_reads_the_wall_clock() -> None:
    offenders = []
    for app in PRODUCT_CODE:
        for path in (ROOT / app).rglob("*.py"):
            if path == ROOT / "config" / "clock.py":
                continue
            for number, line in enumerate(path.read_text().splitlines(), start=1):
                if WALL_CLOCK.search(line):
                    offenders.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert offenders == []


def _production(**overrides: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "DJANGO_ENV": "production",
        "DJANGO_SECRET_KEY": "a-real-secret-of-sufficient-length-for-production",
        "JWT_SIGNING_KEY": "a-real-jwt-key-of-sufficient-length-for-hs256",
        "DJANGO_SETTINGS_MODULE": "config.settings",
    }
    env.pop("FROZEN_NOW", None)
    env.update(overrides)
    return subprocess.run(
        [sys.executable, "-c", "import django; django.setup(); print('started')"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"FROZEN_NOW": "2026-11-20T00:00:00Z"}, "FROZEN_NOW"),
        ({"DJANGO_SECRET_KEY": ""}, "DJANGO_SECRET_KEY"),
        ({"JWT_SIGNING_KEY": ""}, "JWT_SIGNING_KEY or JWT_PUBLIC_KEY"),
        ({"DATABASE_URL": ""}, "production needs DATABASE_URL and REDIS_URL"),
    ],
)
def test_production_refuses_unsafe_settings(overrides: dict[str, str], message: str) -> None:
    result = _production(**overrides)
    assert result.returncode != 0
    assert message in result.stderr


def test_production_starts_with_real_settings() -> None:
    result = _production()
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "started"
