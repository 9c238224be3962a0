"""Puts the ops dashboard and the support view on the admin site.

The pages have no model of their own, so they are added to the site's own
URLs (``AdminSite.get_urls``), under ``/admin/support/``, and linked from the
admin index (a box with the dashboard link and a user id search). The project
keeps Django's default site, so config/urls.py stays as it is.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.contrib import admin
from django.urls import path

from support import views


def _with_support_urls(
    site: admin.AdminSite, site_urls: Callable[[], list[Any]]
) -> Callable[[], list[Any]]:
    def get_urls() -> list[Any]:
        return [
            path(
                "support/dashboard/",
                site.admin_view(views.dashboard_view),
                name="support_dashboard",
            ),
            path(
                "support/users/",
                site.admin_view(views.user_search_view),
                name="support_user_search",
            ),
            # ``path``: a user id is the exchange's string, whatever characters it holds.
            path(
                "support/users/<path:user_id>/",
                site.admin_view(views.user_view),
                name="support_user",
            ),
            *site_urls(),
        ]

    return get_urls


admin.site.get_urls = _with_support_urls(admin.site, admin.site.get_urls)  # type: ignore[method-assign]
admin.site.index_template = "support/admin_index.html"
