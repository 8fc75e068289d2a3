"""The OpenAPI document as the API really answers: media types per route, the error bodies,
and how to authenticate (a bearer credential, or the session cookie with its CSRF header).

FastAPI documents every route as ``application/json`` with a 422 validation error; connrad's
DICOMweb and FHIR routes answer in their own media types, and bad input is a 400.
"""

from __future__ import annotations

import re
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from connrad.dicomweb.negotiation import FRAME_MEDIA_TYPES

DICOM_JSON = "application/dicom+json"
MULTIPART = "multipart/related"
RENDERED = ("image/jpeg", "image/png", "image/gif")
FHIR_JSON = "application/fhir+json"

_ANY: dict[str, Any] = {}
_ARRAY: dict[str, Any] = {"type": "array", "items": {"type": "object"}}
_OBJECT: dict[str, Any] = {"type": "object"}
_PROBLEM = {
    "type": "object",
    "properties": {"detail": {"type": "string"}},
    "required": ["detail"],
}
_OAUTH_ERROR = {
    "type": "object",
    "properties": {"error": {"type": "string"}, "error_description": {"type": "string"}},
    "required": ["error"],
}
_OPERATION_OUTCOME = {
    "type": "object",
    "properties": {"resourceType": {"const": "OperationOutcome"}, "issue": {"type": "array"}},
    "required": ["resourceType", "issue"],
}

# (method, path pattern) -> {status: {media type: schema}}; first match wins.
_SUCCESS: list[tuple[str, re.Pattern[str], dict[str, dict[str, dict[str, Any]]]]] = [
    (
        "post",
        re.compile(r"^/dicomweb/studies"),
        {s: {DICOM_JSON: _OBJECT} for s in ("200", "202", "409")},
    ),
    ("get", re.compile(r"/metadata$"), {"200": {DICOM_JSON: _ARRAY}}),
    ("get", re.compile(r"/(rendered|thumbnail)$"), {"200": dict.fromkeys(RENDERED, _ANY)}),
    (
        "get",
        re.compile(r"/bulkdata/|/frames/\{frame_list\}$"),
        {"200": {MULTIPART: _ANY}, "206": {MULTIPART: _ANY}},
    ),
    (
        "get",
        re.compile(r"^/dicomweb/studies/\{study\}(/series/\{series\}(/instances/\{sop\})?)?$"),
        {"200": {MULTIPART: _ANY}, "206": {MULTIPART: _ANY}},
    ),
    (
        "get",
        re.compile(r"^/dicomweb/(studies|series|instances)|/(series|instances)$"),
        {"200": {DICOM_JSON: _ARRAY}},
    ),
    (
        "get",
        re.compile(r"^/dicomweb/wado$"),
        {"200": {"application/dicom": _ANY, **dict.fromkeys(RENDERED, _ANY)}},
    ),
    ("get", re.compile(r"^/fhir/"), {"200": {FHIR_JSON: _OBJECT}}),
]


def _error_schema(path: str) -> tuple[str, dict[str, Any]]:
    if path.startswith("/fhir/"):
        return FHIR_JSON, _OPERATION_OUTCOME
    if path == "/oauth/token":
        return "application/json", _OAUTH_ERROR
    return "application/json", _PROBLEM


_ERRORS = {
    "400": "Bad request: malformed parameters or body",
    "401": "No or invalid credentials",
    "403": "Not permitted for this caller",
    "404": "Not found (or not visible to this caller)",
    "406": "None of the accepted media types can be produced",
    "413": "Request body too large",
    "415": "Unsupported request media type",
    "422": "The stored object cannot be rendered as asked",
    "429": "Too many failed sign-ins; retry later",
    "503": "The audit trail cannot be written; retry later",
}


def describe(app: FastAPI) -> dict[str, Any]:
    """The app's OpenAPI document, corrected; cached on the app like FastAPI's own."""
    if app.openapi_schema:
        return app.openapi_schema
    schema = get_openapi(
        title=app.title,
        version=app.version,
        summary=app.summary,
        routes=app.routes,
    )
    schema.setdefault("components", {}).get("schemas", {}).pop("HTTPValidationError", None)
    schema["components"].get("schemas", {}).pop("ValidationError", None)
    for path, operations in schema.get("paths", {}).items():
        for method, operation in operations.items():
            _document(path, method, operation)
    app.openapi_schema = schema
    return schema


def _document(path: str, method: str, operation: dict[str, Any]) -> None:
    responses: dict[str, Any] = operation.setdefault("responses", {})
    for wanted_method, pattern, statuses in _SUCCESS:
        if method == wanted_method and pattern.search(path):
            for status, content in statuses.items():
                description = responses.get(status, {}).get("description", "Success")
                responses[status] = {
                    "description": description,
                    "content": {k: {"schema": v} for k, v in content.items()},
                }
            break
    if method == "get" and "/frames/" in path and not path.endswith(("rendered", "thumbnail")):
        frame_types = {**dict.fromkeys(set(FRAME_MEDIA_TYPES.values())), MULTIPART: None}
        responses["200"]["content"] = {t: {"schema": _ANY} for t in sorted(frame_types)}
    media_type, error = _error_schema(path)
    for status, description in _ERRORS.items():
        responses[status] = {"description": description, "content": {media_type: {"schema": error}}}
    responses.setdefault(
        "409",
        {"description": "Conflicts with existing data", "content": {media_type: {"schema": error}}},
    )
    if operation.get("security"):
        # A bearer credential, or the session cookie together with its CSRF header.
        operation["security"] = [{"HTTPBearer": []}, {"APIKeyCookie": [], "APIKeyHeader": []}]
