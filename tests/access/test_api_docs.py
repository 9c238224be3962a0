"""The API's docs pages load everything from the project, never from a CDN:
they work on a machine without internet."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from django.contrib.staticfiles import finders
from django.test import Client

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("page", "script"),
    [
        ("/api/docs/", "drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js"),
        ("/api/redoc/", "drf_spectacular_sidecar/redoc/bundles/redoc.standalone.js"),
    ],
)
def test_a_docs_page_serves_its_scripts_from_the_project(page: str, script: str) -> None:
    answer = Client().get(page)
    assert answer.status_code == 200
    html = answer.content.decode()
    assert f"/static/{script}" in html
    # Every script and stylesheet the page loads is the project's own.
    sources = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert sources and all(not source.startswith(("http:", "https:", "//")) for source in sources)
    assert finders.find(script) is not None


def _operations_in_docs() -> set[tuple[str, str]]:
    """``METHOD /path`` of each endpoint docs/api.md describes (path names
    and query strings aside)."""
    text = (Path(__file__).resolve().parents[2] / "docs" / "api.md").read_text()
    found = re.findall(r"`(GET|POST|PUT|DELETE) (/[^`?\s]*)", text)
    # Paths under /api/v1/ are written without it; /api/schema/ and the like are not endpoints.
    return {
        (method, re.sub(r"\{[^}]+\}", "{}", path))
        for method, path in found
        if not path.startswith("/api/")
    }


def test_docs_api_md_and_the_live_schema_name_the_same_operations() -> None:
    answer = Client().get("/api/schema/?format=json")
    assert answer.status_code == 200 and answer["Content-Type"].endswith("+json")
    schema = json.loads(answer.content)
    live = {
        (method.upper(), re.sub(r"\{[^}]+\}", "{}", path.removeprefix("/api/v1")))
        for path, operations in schema["paths"].items()
        for method in operations
    }
    assert _operations_in_docs() == live
