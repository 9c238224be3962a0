"""The frontend's typed client, generated from the live schema and compiled
against an example that calls every user endpoint (clients/typescript): a
change of the API that would break a frontend breaks this test.

The generator and the compiler are pinned in clients/typescript/package-lock.json
and installed with ``npm ci`` from the npm registry.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from drf_spectacular.generators import SchemaGenerator

ROOT = Path(__file__).resolve().parents[2]
CLIENT = ROOT / "clients" / "typescript"
BIN = CLIENT / "node_modules" / ".bin"


@pytest.fixture(scope="module")
def installed() -> Path:
    """The pinned packages, installed as the lock file says (once per run)."""
    subprocess.run(
        ["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"],
        cwd=CLIENT,
        check=True,
        env={**os.environ, "npm_config_update_notifier": "false"},
    )
    return BIN


def _schema() -> dict[str, Any]:
    generated = SchemaGenerator().get_schema(request=None, public=True)
    return json.loads(json.dumps(generated, default=str))


def _compile(
    schema: dict[str, Any], where: Path, bin_dir: Path
) -> subprocess.CompletedProcess[str]:
    """Generate the client's types from ``schema`` beside a copy of the
    example, and compile: the completed ``tsc``."""
    shutil.copytree(CLIENT / "src", where / "src", ignore=shutil.ignore_patterns("schema.d.ts"))
    shutil.copy(CLIENT / "tsconfig.json", where / "tsconfig.json")
    (where / "node_modules").symlink_to(CLIENT / "node_modules")
    (where / "openapi.json").write_text(json.dumps(schema))
    subprocess.run(
        [bin_dir / "openapi-typescript", "openapi.json", "--output", "src/schema.d.ts"],
        cwd=where,
        check=True,
        capture_output=True,
    )
    return subprocess.run(
        [bin_dir / "tsc", "--noEmit", "--pretty", "false"],
        cwd=where,
        capture_output=True,
        text=True,
        check=False,
    )


def test_the_generated_client_compiles_against_every_user_endpoint(
    installed: Path, tmp_path: Path
) -> None:
    schema = _schema()
    result = _compile(schema, tmp_path, installed)
    assert result.returncode == 0, result.stdout + result.stderr
    # "Every user endpoint": each operation a user JWT takes is called in the example.
    example = (CLIENT / "src" / "example.ts").read_text()
    called = set(re.findall(r'client\.(GET|POST|DELETE|PUT)\("([^"]+)"', example))
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            if {"userJwt": []} in operation.get("security", []):
                assert (method.upper(), path) in called, f"{method.upper()} {path} not called"


def test_a_contract_break_breaks_the_build(installed: Path, tmp_path: Path) -> None:
    """The check can fail: a voucher's ``remaining`` renamed in the schema is
    a compile error in the example, at the line that reads it."""
    schema = _schema()
    voucher = schema["components"]["schemas"]["Voucher"]
    voucher["properties"]["left"] = voucher["properties"].pop("remaining")
    voucher["required"] = ["left" if name == "remaining" else name for name in voucher["required"]]
    result = _compile(schema, tmp_path, installed)
    assert result.returncode != 0
    assert "Property 'remaining' does not exist" in result.stdout
