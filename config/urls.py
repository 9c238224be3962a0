from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView
from rest_framework.renderers import BaseRenderer
from rest_framework.request import Request

from support.landing import landing


class _AlwaysThePage:
    """A docs page: one HTML page, whatever the Accept header asks for.

    Refused content negotiation would render DRF's 406 through the page's
    template, whose context reads ``request.user`` and so authenticates for
    the first time outside the view: a bad token then escaped as a 500. The
    page is chosen instead, so a bad token is the view's own 401.
    """

    def perform_content_negotiation(
        self, request: Request, force: bool = False
    ) -> tuple[BaseRenderer, str]:
        return super().perform_content_negotiation(request, force=True)  # type: ignore[misc]


class SwaggerPage(_AlwaysThePage, SpectacularSwaggerView):
    """Swagger UI at /api/docs/."""


class RedocPage(_AlwaysThePage, SpectacularRedocView):
    """Redoc at /api/redoc/."""


urlpatterns = [
    path("", landing, name="landing"),
    path("admin/", admin.site.urls),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SwaggerPage.as_view(url_name="schema"), name="api-docs"),
    path("api/redoc/", RedocPage.as_view(url_name="schema"), name="api-redoc"),
    path("api/v1/", include("ledger.urls")),
    path("api/v1/", include("campaigns.urls")),
    path("api/v1/", include("vouchers.urls")),
    path("api/v1/", include("referrals.urls")),
    path("api/v1/", include("earn.urls")),
    path("", include("monitoring.urls")),
]
