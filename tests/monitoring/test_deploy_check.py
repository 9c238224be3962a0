"""Production settings pass Django's deployment checklist without a warning."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_check_deploy_is_clean_in_production() -> None:
    env = {
        **os.environ,
        "DJANGO_ENV": "production",
        "DJANGO_SETTINGS_MODULE": "config.settings",
        # What production requires (docs/operations.md); the servers are this run's.
        "DJANGO_SECRET_KEY": "k3H9-a-real-secret-of-fifty-or-more-characters-xQ7vZp2LmN8wR4tY6uB1",
        "JWT_SIGNING_KEY": "a-real-jwt-key-of-sufficient-length-for-hs256",
        "DJANGO_ALLOWED_HOSTS": "rewards.internal.example.com",
    }
    for variable in ("FROZEN_NOW", "TIME_LAPSE", "DJANGO_DEBUG", "DJANGO_HSTS_SECONDS"):
        env.pop(variable, None)
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == "System check identified no issues (0 silenced)."
    assert "WARNING" not in result.stderr
