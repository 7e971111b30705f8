"""The OpenAPI 3.1 document, derived from the Endpoints tables' types (never written by hand)."""

from __future__ import annotations

import inspect
import re
from collections.abc import Iterable
from typing import Any

import msgspec

from roombook.http.endpoints import API_PREFIX, Endpoint, Endpoints
from roombook.http.problems import Problem

_REF = "#/components/schemas/{name}"
_PATH_PARAM = re.compile(r"\{([^}:]+)(?::[^}]*)?\}")


def openapi_document(tables: Iterable[Endpoints], *, title: str = "roombook", version: str = "1") -> dict[str, Any]:
    endpoints = [e for table in tables for e in table.items]
    types = {Problem}
    for e in endpoints:
        types |= {t for t in (e.request, e.response, e.query) if t is not None}
    ordered = sorted(types, key=lambda t: getattr(t, "__name__", repr(t)))
    schemas, components = msgspec.json.schema_components(ordered, ref_template=_REF)
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
                "cookie": {"type": "apiKey", "in": "cookie", "name": "access_token"},
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
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        for name in _PATH_PARAM.findall(e.path)
    ]
    if e.query is not None:
        params += _query_params(schema_of[e.query], components)
    if params:
        op["parameters"] = params
    if e.request is not None:
        op["requestBody"] = {"required": True, "content": {"application/json": {"schema": schema_of[e.request]}}}
    ok: dict[str, Any] = {"description": "OK" if e.status < 300 else "Done"}
    if e.response is not None:
        ok["content"] = {"application/json": {"schema": schema_of[e.response]}}
    responses: dict[str, Any] = {str(e.status): ok}
    errors = set(e.errors) | ({422} if e.request is not None or e.query is not None else set())
    if e.auth != "none":
        errors |= {401} | ({403} if e.auth == "admin" else set())
        op["security"] = [{"bearer": []}, {"cookie": []}]
    for status in sorted(errors):
        responses[str(status)] = {"description": "Problem", "content": problem}
    op["responses"] = responses
    return op


def _query_params(schema: dict[str, Any], components: dict[str, Any]) -> list[dict[str, Any]]:
    """The query struct's fields as parameters (the struct itself stays among the components)."""
    name = schema["$ref"].rsplit("/", 1)[-1]
    body = components[name]
    required = set(body.get("required", ()))
    return [
        {"name": field, "in": "query", "required": field in required, "schema": prop}
        for field, prop in body.get("properties", {}).items()
    ]
