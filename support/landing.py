"""The page at ``/``: where everything a person opens lives.

The admin's "View site" leads here, and so does a fresh ``./bin/serve``. It
shows links only, no data, so it needs no login; each page it lists asks for
its own credentials.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import reverse
from django.views.decorators.http import require_GET


@dataclass(frozen=True)
class Link:
    url: str
    title: str
    what: str


def links() -> list[tuple[str, list[Link]]]:
    return [
        (
            "Operations (staff login)",
            [
                Link(
                    reverse("admin:index"), "Admin", "campaigns, programs, ledger, jobs, quarantine"
                ),
                Link(
                    reverse("admin:support_dashboard"),
                    "Ops dashboard",
                    "charts per campaign and program, job health, payout queue, ingestion lag",
                ),
                Link(
                    reverse("admin:support_user_search"),
                    "Support view",
                    "everything about one user",
                ),
            ],
        ),
        (
            "API",
            [
                Link(reverse("api-docs"), "API docs (Swagger UI)", "try the endpoints"),
                Link(reverse("api-redoc"), "API reference (Redoc)", "the same schema, to read"),
                Link(reverse("schema"), "OpenAPI schema", "YAML, for client generators"),
            ],
        ),
        (
            "Health",
            [
                Link(reverse("healthz"), "/healthz", "the process answers"),
                Link(reverse("readyz"), "/readyz", "PostgreSQL, Redis, migrations and consumers"),
                Link(reverse("metrics"), "/metrics", "Prometheus metrics"),
            ],
        ),
    ]


@require_GET
def landing(request: HttpRequest) -> HttpResponse:
    return TemplateResponse(request, "support/landing.html", {"groups": links()})
