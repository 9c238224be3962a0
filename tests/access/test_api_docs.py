"""The API's docs pages load everything from the project, never from a CDN:
they work on a machine without internet."""

from __future__ import annotations

import re

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
