"""Response helpers: DICOM JSON and problem bodies that never quote patient data."""

from __future__ import annotations

import json
from typing import Any

from fastapi.responses import Response

DICOM_JSON = "application/dicom+json"


def dicom_json(content: Any, status_code: int = 200) -> Response:
    body = json.dumps(content, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    return Response(body, status_code=status_code, media_type=DICOM_JSON)


def problem(status_code: int, detail: str) -> Response:
    body = json.dumps({"detail": detail}).encode("utf-8")
    return Response(body, status_code=status_code, media_type="application/json")
