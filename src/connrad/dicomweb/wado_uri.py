"""WADO-URI (PS3.18 9): one object by UIDs, as application/dicom, image/jpeg or image/png."""

from __future__ import annotations

from typing import Annotated

from anyio import to_thread
from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from connrad.access import ReadCaller
from connrad.archive.retrieve import NotFound
from connrad.dicom import frames as frame_io
from connrad.dicom import render, transcode
from connrad.dicomweb import audit
from connrad.dicomweb.deps import ServicesDep
from connrad.dicomweb.responses import problem

router = APIRouter()

_MEDIA_TYPES = ("application/dicom", "image/jpeg", "image/png")


@router.get("/wado", summary="WADO-URI: retrieve one object")
async def wado_uri(
    request: Request,
    services: ServicesDep,
    caller: ReadCaller,
    request_type: Annotated[str, Query(alias="requestType")],
    study_uid: Annotated[str, Query(alias="studyUID")],
    series_uid: Annotated[str, Query(alias="seriesUID")],
    object_uid: Annotated[str, Query(alias="objectUID")],
    content_type: Annotated[str, Query(alias="contentType")] = "image/jpeg",
    transfer_syntax: Annotated[str | None, Query(alias="transferSyntax")] = None,
    frame_number: Annotated[int, Query(alias="frameNumber", ge=1)] = 1,
    window_center: Annotated[float | None, Query(alias="windowCenter")] = None,
    window_width: Annotated[float | None, Query(alias="windowWidth", gt=0)] = None,
    rows: Annotated[int | None, Query(ge=1, le=render.MAX_VIEWPORT)] = None,
    columns: Annotated[int | None, Query(ge=1, le=render.MAX_VIEWPORT)] = None,
    image_quality: Annotated[int, Query(alias="imageQuality", ge=1, le=100)] = 90,
) -> Response:
    if request_type != "WADO":
        return problem(400, "requestType must be WADO")
    media_type = content_type.split(",")[0].split(";")[0].strip().lower()
    if media_type in ("*/*", "image/*", ""):
        media_type = "image/jpeg"
    if media_type not in _MEDIA_TYPES:
        return problem(406, "contentType must be application/dicom, image/jpeg or image/png")
    try:
        (obj,) = audit.instances(request, services, caller, study_uid, series_uid, object_uid)
    except NotFound as exc:
        return problem(404, str(exc))
    path = services.blobs.local_path(obj.blob_key)
    if media_type == "application/dicom":
        # WADO-URI's default for application/dicom is the syntax as stored (PS3.18 9.4.3).
        wanted = transfer_syntax or obj.transfer_syntax_uid
        if not transcode.can_produce(obj.transfer_syntax_uid, wanted):
            return problem(406, "the object cannot be produced in that transfer syntax")
        try:
            data = await to_thread.run_sync(lambda: transcode.transcode(path, wanted))
        except transcode.TranscodeError:
            return problem(406, "the object cannot be produced in that transfer syntax")
        return Response(data, media_type="application/dicom")
    window = None
    if window_center is not None and window_width is not None:
        window = (window_center, window_width, "LINEAR")
    viewport = (rows or columns or 0, columns or rows or 0) if (rows or columns) else None
    try:
        image = await to_thread.run_sync(
            lambda: render.render_frame(
                path,
                frame_number,
                media_type=media_type,
                window=window,
                viewport=viewport,
                quality=image_quality,
            )
        )
    except frame_io.FrameError as exc:
        return problem(404 if "range" in str(exc) else 422, str(exc))
    except ValueError:
        return problem(400, "invalid window, viewport or quality")
    return Response(image, media_type=media_type)
