"""Paging of list endpoints: opaque cursors, stable under concurrent inserts."""

from __future__ import annotations

from rest_framework.pagination import CursorPagination


class NewestFirst(CursorPagination):
    """``?cursor=`` pages of ``page_size`` (default 100, at most 500), newest first."""

    ordering = ("-created_at", "-id")
    page_size_query_param = "page_size"
    max_page_size = 500
