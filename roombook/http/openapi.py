"""The OpenAPI 3.1 document, derived from the Endpoints tables' types (never written by hand).

What the types alone do not say is added here, once for every operation: the problems the
middleware answers (400 malformed JSON and 413 too large for a body, 422 invalid input, 401/421
for a protected operation, 403 for an admin one or for a cookie-authenticated unsafe request that
fails the CSRF check), the optional X-CSRF-Token header, and Retry-After on 429.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Iterable
from typing import Any

import msgspec

from roombook.http.authn import ACCESS_COOKIE, CSRF_HEADER, CsrfToken
from roombook.http.endpoints import API_PREFIX, Endpoint, Endpoints
from roombook.http.problems import Problem

_REF = "#/components/schemas/{name}"
_PATH_PARAM = re.compile(r"\{([^}:]+)(?::[^}]*)?\}")
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# The JSON encoder writes decimals as numbers (decimal_format="number") and the decoder takes
# numbers, but msgspec's schema says a decimal is a string: the document says what is sent.
_DECIMAL_SCHEMA = {"type": "string", "format": "decimal"}


def openapi_document(tables: Iterable[Endpoints], *, title: str = "roombook", version: str = "1") -> dict[str, Any]:
    endpoints = [e for table in tables for e in table.items]
    types = {Problem, str, CsrfToken | None}
    for e in endpoints:
        types |= {t for t in (e.request, e.response, e.query) if t is not None}
        types |= set(e.path_params.values()) | set(e.headers.values())
    ordered = sorted(types, key=lambda t: getattr(t, "__name__", repr(t)))
    schemas, components = msgspec.json.schema_components(ordered, ref_template=_REF)
    schemas, components = _decimals_as_numbers(schemas), _decimals_as_numbers(components)
    schema_of = dict(zip(ordered, schemas, strict=True))
    paths: dict[str, dict[str, Any]] = {}
    for e in endpoints:
        path = API_PREFIX + _PATH_PARAM.sub(r"{\1}", e.path)
        paths.setdefault(path, {})[e.method.lower()] = _operation(e, schema_of, components)
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version},
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
                "cookie": {"type": "apiKey", "in": "cookie", "name": ACCESS_COOKIE},
            },
        },
    }


def _operation(e: Endpoint, schema_of: dict[Any, Any], components: dict[str, Any]) -> dict[str, Any]:
    problem = {"application/problem+json": {"schema": schema_of[Problem]}}
    op: dict[str, Any] = {"operationId": e.handler.__name__, "summary": e.summary}
    doc = inspect.getdoc(e.handler)
    if doc:
        op["description"] = doc
    if e.tags:
        op["tags"] = list(e.tags)
    params = [
        {"name": name, "in": "path", "required": True, "schema": schema_of[e.path_params.get(name, str)]}
        for name in _PATH_PARAM.findall(e.path)
    ]
    if e.query is not None:
        params += _query_params(schema_of[e.query], components)
    headers = dict(e.headers)
    cookie_csrf = e.auth != "none" and e.method not in _SAFE_METHODS
    if cookie_csrf:
        headers.setdefault(CSRF_HEADER, CsrfToken | None)
    for name, type_ in headers.items():
        params.append(_header_param(name, schema_of[type_]))
    if params:
        op["parameters"] = params
    if e.request is not None:
        content = {"application/json": {"schema": schema_of[e.request]}}
        op["requestBody"] = {"required": e.body_required, "content": content}
    if e.upload:
        binary = {"type": "string", "format": "binary"}
        content = {media: {"schema": binary} for media in e.upload}
        form = {"type": "object", "properties": {"image": binary}, "required": ["image"]}
        content["multipart/form-data"] = {"schema": form}
        op["requestBody"] = {"required": True, "content": content}
    ok: dict[str, Any] = {"description": "OK" if e.status < 300 else "Done"}
    if e.response is not None:
        ok["content"] = {e.media_type: {"schema": schema_of[e.response]}}
    responses: dict[str, Any] = {str(e.status): ok}
    errors = set(e.errors)
    if e.request is not None or e.query is not None or e.headers:
        errors.add(422)
    if e.request is not None:
        errors |= {400, 413}
    if e.upload:
        errors |= {413, 415, 422}
    if e.auth != "none":
        errors |= {401, 421}
        op["security"] = [{"bearer": []}, {"cookie": []}]
    if e.auth == "admin" or cookie_csrf:
        errors.add(403)
    for status in sorted(errors):
        responses[str(status)] = {"description": "Problem", "content": problem}
        if status == 429:
            retry_after = {"description": "Seconds to wait", "schema": {"type": "integer", "minimum": 0}}
            responses["429"]["headers"] = {"Retry-After": retry_after}
    op["responses"] = responses
    return op


def _header_param(name: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "in": "header", "required": not _is_nullable(schema), "schema": _not_null(schema)}


def _query_params(schema: dict[str, Any], components: dict[str, Any]) -> list[dict[str, Any]]:
    """The query struct's fields as parameters (the struct itself stays among the components).

    A query parameter is sent or left out, never null: `X | None = None` becomes an optional X.
    """
    name = schema["$ref"].rsplit("/", 1)[-1]
    body = components[name]
    required = set(body.get("required", ()))
    return [
        {"name": field, "in": "query", "required": field in required, "schema": _not_null(prop)}
        for field, prop in body.get("properties", {}).items()
    ]


def _is_nullable(schema: dict[str, Any]) -> bool:
    return {"type": "null"} in schema.get("anyOf", ())


def _not_null(schema: dict[str, Any]) -> dict[str, Any]:
    """`schema` without its null alternative and null default (an absent value is no value)."""
    schema = {k: v for k, v in schema.items() if not (k == "default" and v is None)}
    alternatives = [s for s in schema.get("anyOf", ()) if s != {"type": "null"}]
    if "anyOf" not in schema:
        return schema
    rest = {k: v for k, v in schema.items() if k != "anyOf"}
    return rest | alternatives[0] if len(alternatives) == 1 else rest | {"anyOf": alternatives}


def _decimals_as_numbers(node: Any) -> Any:
    if isinstance(node, dict) and _DECIMAL_SCHEMA.items() <= node.items():
        return {k: v for k, v in node.items() if k != "format"} | {"type": "number"}
    if isinstance(node, dict):
        return {k: _decimals_as_numbers(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_decimals_as_numbers(v) for v in node]
    return node
