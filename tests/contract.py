"""The API's answers, held to its published schema.

Every JSON answer under ``/api/v1/`` that any test receives is checked
against the live OpenAPI description (``tests/conftest.py`` hooks the test
clients), made strict: an object may hold no field the schema does not
declare, and must hold every field it marks required. So a view that adds,
drops or renames a field without declaring it fails the test that called it,
with the operation and the path of the field at fault.
"""

from __future__ import annotations

import functools
import json
import re
from typing import Any

import jsonschema
from drf_spectacular.generators import SchemaGenerator

API_PREFIX = "/api/v1/"


def _strict(node: Any) -> Any:
    """OpenAPI 3.0 to JSON Schema, strict: ``nullable`` becomes a union with
    null, and every object with declared properties admits no other field."""
    if isinstance(node, list):
        return [_strict(item) for item in node]
    if not isinstance(node, dict):
        return node
    node = {key: _strict(value) for key, value in node.items()}
    if "$ref" in node:
        node["$ref"] = node["$ref"].replace("#/components/schemas/", "#/$defs/")
    if "properties" in node and "additionalProperties" not in node:
        node["additionalProperties"] = False
    if node.pop("nullable", False):
        return {"anyOf": [node, {"type": "null"}]}
    return node


@functools.cache
def _schema() -> dict[str, Any]:
    generated = SchemaGenerator().get_schema(request=None, public=True)
    # Through JSON: the generator's output holds lazy strings and tuples.
    return json.loads(json.dumps(generated, default=str))


@functools.cache
def _routes() -> list[tuple[re.Pattern[str], str]]:
    """Each path of the schema as a pattern; literal paths first, so that
    ``/vouchers/grants`` is not taken for ``/vouchers/{voucher_id}``."""
    paths = sorted(_schema()["paths"], key=lambda path: (path.count("{"), path))
    return [
        (re.compile("^" + re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(path)) + "$"), path)
        for path in paths
    ]


def _definitions() -> dict[str, Any]:
    return {name: _strict(body) for name, body in _schema()["components"]["schemas"].items()}


@functools.cache
def _validator(path: str, method: str, status: str) -> jsonschema.Draft202012Validator | None:
    operation = _schema()["paths"][path].get(method)
    if operation is None:
        return None  # a method the path does not take: 405, checked by its own tests
    if status not in operation["responses"]:
        raise AssertionError(
            f"{method.upper()} {path} answered {status}, which it does not declare"
        )
    content = operation["responses"][status].get("content", {}).get("application/json")
    if content is None:
        return None
    schema = {**_strict(content["schema"]), "$defs": _definitions()}
    return jsonschema.Draft202012Validator(schema)


def check_answer(method: str, path: str, status: int, content_type: str, body: bytes) -> None:
    """Raise AssertionError where a JSON answer of an operation the schema
    declares has a status it does not declare, or a body it does not describe."""
    if not path.startswith(API_PREFIX) or "json" not in content_type:
        return
    template = next((t for pattern, t in _routes() if pattern.match(path)), None)
    if template is None:
        return  # no route: the 404 of an unknown path is checked by its own tests
    validator = _validator(template, method.lower(), str(status))
    if validator is None:
        return
    answer = json.loads(body)
    error = next(iter(sorted(validator.iter_errors(answer), key=lambda e: list(e.path))), None)
    if error is not None:
        where = "/".join(str(part) for part in error.absolute_path) or "(body)"
        raise AssertionError(
            f"{method.upper()} {template} answered {status} off its schema at {where}:"
            f" {error.message}"
        )
