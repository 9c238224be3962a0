"""What a request may contain, checked before any view reads it.

A path or query string is text a caller chose, and some text cannot go where a
view would put it: PostgreSQL refuses NUL in any string, a lone surrogate
cannot be encoded again (a cache key, a log line), and an unbounded value
costs every layer it passes. :class:`RequestInputMiddleware` refuses, with a
400 in the API's error shape naming the parameter, any path segment or query
parameter (name or value) of any request, the admin's included, that

- is not UTF-8 once percent-decoded: ``%FF``; ``%ED%A0%80``, an encoded lone
  surrogate; ``%C0%80``, an overlong NUL,
- holds a control character (U+0000-U+001F, U+007F-U+009F), or
- is longer than its bound: a path segment or a parameter's value
  :data:`TEXT_MAX` characters, a parameter's name :data:`NAME_MAX`, at most
  :data:`PARAMETERS_MAX` parameters.

Views then hold the parameters they read to tighter bounds with
:func:`require_text` (a campaign slug, an order id) and
:func:`user_id_problem` (a user id, the JWT ``sub`` included). docs/api.md,
"What a request may contain", lists them all.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from urllib.parse import unquote_to_bytes

from django.http import HttpRequest, HttpResponseBase, JsonResponse
from django.urls import Resolver404, get_resolver
from rest_framework.exceptions import ValidationError

from access.errors import invalid_body

TEXT_MAX = 256  # a path segment, a query parameter's value
NAME_MAX = 64
PARAMETERS_MAX = 32
USER_ID_MAX = 64  # CONTRACT.md: a user id is 1-64 characters

# C0, DEL and C1 controls, and lone surrogates (a str made from a surrogate
# escape holds them; UTF-8 bytes never decode to one).
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
_KWARG = re.compile(r"<(?:\w+:)?(\w+)>")
# Django keeps the raw path only as ``path_info``, where each byte that is not
# part of valid UTF-8 (``%FF``; ``%ED%A0%80``, an encoded surrogate) is escaped
# again as ``%80``-``%FF``. Such an escape is how a path's broken bytes show; a
# literal one (sent as ``%25FF``) is refused with them: no id of the API holds one.
_BROKEN_BYTE = re.compile("%[89A-F][0-9A-F]")
NOT_UTF8 = "must be UTF-8 text (invalid bytes or an encoded lone surrogate)"


def text_problem(value: str, *, max_length: int, min_length: int = 0) -> str | None:
    """What makes ``value`` unusable as a parameter, or None when nothing does."""
    if len(value) > max_length:
        return f"must be at most {max_length} characters, not {len(value)}"
    if len(value) < min_length:
        return f"must be at least {min_length} character{'s' if min_length > 1 else ''}"
    unsafe = _UNSAFE.search(value)
    if unsafe is None:
        return None
    char = unsafe.group()
    if "\ud800" <= char <= "\udfff":
        return f"must be UTF-8 text: U+{ord(char):04X} is a lone surrogate"
    return f"must not hold control character U+{ord(char):04X}"


def user_id_problem(value: str) -> str | None:
    """A user id is 1-64 printable characters and not only spaces: the
    contract's 1-64 characters, none of which can hide in a log line or an
    admin page (control, format, private-use, unassigned or separator
    characters other than the ASCII space)."""
    problem = text_problem(value, max_length=USER_ID_MAX, min_length=1)
    if problem is not None:
        return problem
    if not value.isprintable():
        char = next(c for c in value if not c.isprintable())
        return f"must hold printable characters only, not U+{ord(char):04X}"
    if not value.strip():
        return "must not be blank"
    return None


def require_text(name: str, value: str, *, max_length: int) -> str:
    """``value`` of the parameter ``name``, or a 400 naming it."""
    problem = text_problem(value, max_length=max_length, min_length=1)
    if problem is not None:
        raise ValidationError({name: [problem]})
    return value


def require_user_id(name: str, value: str) -> str:
    problem = user_id_problem(value)
    if problem is not None:
        raise ValidationError({name: [problem]})
    return value


def _raw(environ_text: str) -> bytes:
    # WSGI hands over bytes as latin-1 text; text that is not (another
    # server's already decoded query) is encoded back, lone surrogates kept so
    # that the strict decoding below refuses them.
    try:
        return environ_text.encode("iso-8859-1")
    except UnicodeEncodeError:
        return environ_text.encode("utf-8", "surrogatepass")


def _text(raw: bytes) -> tuple[str | None, str | None]:
    """(the text, None), or (None, what is wrong with the bytes)."""
    try:
        return raw.decode("utf-8"), None
    except UnicodeDecodeError:
        return None, NOT_UTF8


def _segment_names(request: HttpRequest, bad: set[int]) -> dict[int, str]:
    """The URL pattern's name for each offending path segment, e.g. ``order_id``.

    A hostile segment often does not match its converter (NUL in a slug), so
    the path is resolved with each offending segment replaced by ``0``, which
    every converter of the API accepts, and the route read segment by segment.
    """
    parts = request.path_info.split("/")
    probe = "/".join("0" if index in bad else part for index, part in enumerate(parts))
    try:
        match = get_resolver(getattr(request, "urlconf", None)).resolve(probe)
    except Resolver404:
        return {}
    route = ["", *match.route.split("/")]
    if len(route) != len(parts):
        return {}
    names = {}
    for index in bad:
        named = _KWARG.fullmatch(route[index])
        if named:
            names[index] = named.group(1)
    return names


def _path_problems(request: HttpRequest) -> dict[str, list[str]]:
    problems: dict[int, str] = {}
    for index, segment in enumerate(request.path_info.split("/")):
        problem = (
            NOT_UTF8 if _BROKEN_BYTE.search(segment) else text_problem(segment, max_length=TEXT_MAX)
        )
        if problem is not None:
            problems[index] = problem
    if not problems:
        return {}
    names = _segment_names(request, set(problems))
    fields: dict[str, list[str]] = {}
    for index, problem in problems.items():
        fields.setdefault(names.get(index, "path"), []).append(problem)
    return fields


def _query_problems(request: HttpRequest) -> dict[str, list[str]]:
    raw_query = _raw(request.META.get("QUERY_STRING", ""))
    # Split as Django's QueryDict splits: on "&", empty pairs skipped.
    pairs = [pair for pair in raw_query.split(b"&") if pair]
    if len(pairs) > PARAMETERS_MAX:
        return {"query": [f"at most {PARAMETERS_MAX} parameters, not {len(pairs)}"]}
    fields: dict[str, list[str]] = {}
    for pair in pairs:
        raw_name, _, raw_value = pair.partition(b"=")
        name, problem = _text(unquote_to_bytes(raw_name.replace(b"+", b" ")))
        if name is not None:
            problem = text_problem(name, max_length=NAME_MAX)
        if problem is not None:
            # A name that cannot be shown is not echoed: the query is named instead.
            fields.setdefault("query", []).append(f"a parameter name {problem}")
            continue
        value, problem = _text(unquote_to_bytes(raw_value.replace(b"+", b" ")))
        if value is not None:
            problem = text_problem(value, max_length=TEXT_MAX)
        if problem is not None:
            fields.setdefault(name or "query", []).append(problem)
    return fields


class RequestInputMiddleware:
    """Refuses a request whose path or query string no view may be handed
    (see the module's docstring) with a 400 naming each offending part, before
    authentication, throttling or any query runs."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        fields = _path_problems(request)
        for name, problems in _query_problems(request).items():
            fields.setdefault(name, []).extend(problems)
        if fields:
            return JsonResponse(
                invalid_body(fields), status=400, json_dumps_params={"separators": (",", ":")}
            )
        return self.get_response(request)


class ApiNotFoundMiddleware:
    """A path under /api/ that no route matches is a 404 in the API's error
    shape, never Django's HTML page: not the plain one, nor the debug page a
    development server shows (DEBUG is on in the demo)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        response = self.get_response(request)
        if (
            response.status_code == 404
            and request.path_info.startswith("/api/")
            and "json" not in response.get("Content-Type", "")
        ):
            return JsonResponse(
                {"error": {"code": "not_found", "message": "no such route"}},
                status=404,
                json_dumps_params={"separators": (",", ":")},
            )
        return response
