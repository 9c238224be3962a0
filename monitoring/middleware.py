"""The request id: one id per HTTP request, in its response and in its log lines."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from typing import Any

from django.http import HttpRequest, HttpResponseBase

from monitoring import logs

HEADER = "X-Request-ID"
# A caller's id is kept only if it is short and plain: it goes verbatim into
# log lines and a response header, so nothing that could forge either is taken.
_ACCEPTED = re.compile(r"[A-Za-z0-9._:-]{1,128}")


def accepted_request_id(value: str | None) -> str | None:
    """The caller's X-Request-ID if it is safe to reuse, else None."""
    if value and _ACCEPTED.fullmatch(value):
        return value
    return None


class RequestIdMiddleware:
    """Takes ``X-Request-ID`` from the request (a load balancer or the calling
    service set it) or makes one, puts it on every log line written while the
    request is handled, and returns it in the response header, so a caller
    reporting a problem can name the exact lines to look at."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        value = accepted_request_id(request.headers.get(HEADER)) or uuid.uuid4().hex
        # Not reset when the chain returns: Django logs a 4xx or 5xx answer
        # after the middleware has returned it. forget_request_id clears it when
        # the request has finished.
        logs.request_id.set(value)
        response = self.get_response(request)
        response[HEADER] = value
        return response


def forget_request_id(**kwargs: Any) -> None:
    """On ``request_finished``: lines logged after a request no longer name it."""
    logs.request_id.set(None)
