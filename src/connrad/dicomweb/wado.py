"""WADO-RS (PS3.18 10.4): instances, metadata, frames, bulk data, rendered and thumbnails."""

from __future__ import annotations

import tempfile
import uuid
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import IO, Annotated, Any

from anyio import to_thread
from fastapi import APIRouter, Query, Request
from fastapi.responses import Response, StreamingResponse

from connrad.access import ReadCaller
from connrad.archive.followups import thumbnail_path
from connrad.archive.retrieve import NotFound, StoredObject
from connrad.dicom import frames as frame_io
from connrad.dicom import render, transcode
from connrad.dicom.metadata import instance_metadata
from connrad.dicom.uids import EXPLICIT_VR_LITTLE_ENDIAN
from connrad.dicomweb import audit
from connrad.dicomweb.deps import BaseDep, ServicesDep
from connrad.dicomweb.multipart import multipart_body
from connrad.dicomweb.negotiation import ANY_TS, FRAME_MEDIA_TYPES, acceptable
from connrad.dicomweb.responses import dicom_json, problem
from connrad.services import Services

router = APIRouter()

NATIVE_SYNTAXES = {
    "1.2.840.10008.1.2",
    "1.2.840.10008.1.2.1",
    "1.2.840.10008.1.2.2",
    "1.2.840.10008.1.2.1.99",
}
PIXEL_DATA = "7FE00010"


def _multipart(
    parts: Iterable[tuple[dict[str, str], Iterable[bytes]]], part_type: str
) -> StreamingResponse:
    boundary = uuid.uuid4().hex
    return StreamingResponse(
        multipart_body(parts, boundary),
        media_type=f'multipart/related; type="{part_type}"; boundary={boundary}',
    )


# ---------------------------------------------------------------- instances


def _choose_instance_syntax(accept: str | None, objects: list[StoredObject]) -> str | None:
    for choice in acceptable(accept, "application/dicom"):
        if choice.part_type not in ("application/dicom", "*/*"):
            continue
        syntax = choice.transfer_syntax or EXPLICIT_VR_LITTLE_ENDIAN
        if syntax == ANY_TS or all(
            transcode.can_produce(o.transfer_syntax_uid, syntax) for o in objects
        ):
            return syntax
    return None


Part = tuple[dict[str, str], Iterable[bytes]]


def _instance_parts(
    services: Services, objects: list[StoredObject], syntax: str
) -> tuple[list[Part], int]:
    """Parts for the objects, and how many could not be transcoded.

    Stored bytes are streamed from the blob store. Transcoded instances are produced before
    the response starts (spooled to disk past a few MB), so the status can still say
    whether everything is there; a stream cut halfway would tell the client nothing.
    """
    parts: list[Part] = []
    failed = 0
    for obj in objects:
        if syntax in (ANY_TS, obj.transfer_syntax_uid):
            headers = {
                "Content-Type": f"application/dicom; transfer-syntax={obj.transfer_syntax_uid}",
                "Content-Length": str(obj.size_bytes),
            }
            parts.append((headers, services.blobs.iter_chunks(obj.blob_key)))
            continue
        try:
            data = transcode.transcode(services.blobs.local_path(obj.blob_key), syntax)
        except transcode.TranscodeError:
            failed += 1
            continue
        spool = tempfile.SpooledTemporaryFile(max_size=8 << 20)  # noqa: SIM115
        spool.write(data)
        headers = {
            "Content-Type": f"application/dicom; transfer-syntax={syntax}",
            "Content-Length": str(len(data)),
        }
        parts.append((headers, _drain(spool)))
    return parts, failed


def _drain(spool: IO[bytes], chunk_size: int = 1 << 20) -> Iterator[bytes]:
    with spool:
        spool.seek(0)
        while chunk := spool.read(chunk_size):
            yield chunk


def _retrieve(
    request: Request,
    services: Services,
    caller: ReadCaller,
    study: str,
    series: str | None = None,
    sop: str | None = None,
) -> Response:
    try:
        objects = audit.instances(request, services, caller, study, series, sop)
    except NotFound as exc:
        return problem(404, str(exc))
    syntax = _choose_instance_syntax(_accept(request), objects)
    if syntax is None:
        return problem(406, "no acceptable media type or transfer syntax can be produced")
    parts, failed = _instance_parts(services, objects, syntax)
    if not parts:
        return problem(406, "the instances cannot be transcoded to the requested syntax")
    response = _multipart(parts, "application/dicom")
    if failed:
        # PS3.18 8.7.3.5: some of what was asked for is missing.
        response.status_code = 206
        response.headers["Warning"] = (
            f'299 connrad: "{failed} instance(s) could not be transcoded; ask for '
            'transfer-syntax=* to receive them as stored"'
        )
    return response


def _accept(request: Request) -> str | None:
    return request.query_params.get("accept") or request.headers.get("accept")


@router.get("/studies/{study}", summary="WADO-RS: retrieve a study")
def retrieve_study(
    study: str, request: Request, services: ServicesDep, caller: ReadCaller
) -> Response:
    return _retrieve(request, services, caller, study)


@router.get("/studies/{study}/series/{series}", summary="WADO-RS: retrieve a series")
def retrieve_series(
    study: str, series: str, request: Request, services: ServicesDep, caller: ReadCaller
) -> Response:
    return _retrieve(request, services, caller, study, series)


@router.get(
    "/studies/{study}/series/{series}/instances/{sop}", summary="WADO-RS: retrieve an instance"
)
def retrieve_instance(
    study: str, series: str, sop: str, request: Request, services: ServicesDep, caller: ReadCaller
) -> Response:
    return _retrieve(request, services, caller, study, series, sop)


# ---------------------------------------------------------------- metadata


def _metadata(
    request: Request,
    services: Services,
    caller: ReadCaller,
    base: str,
    study: str,
    series: str | None = None,
    sop: str | None = None,
) -> Response:
    try:
        objects = audit.instances(request, services, caller, study, series, sop)
    except NotFound as exc:
        return problem(404, str(exc))
    out: list[dict[str, Any]] = []
    for obj in objects:
        url = f"{base}/studies/{obj.study_uid}/series/{obj.series_uid}/instances/{obj.sop_uid}"
        out.append(instance_metadata(services.blobs.local_path(obj.blob_key), url))
    return dicom_json(out)


@router.get("/studies/{study}/metadata", summary="WADO-RS: study metadata")
def study_metadata(
    study: str, request: Request, services: ServicesDep, caller: ReadCaller, base: BaseDep
) -> Response:
    return _metadata(request, services, caller, base, study)


@router.get("/studies/{study}/series/{series}/metadata", summary="WADO-RS: series metadata")
def series_metadata(
    study: str,
    series: str,
    request: Request,
    services: ServicesDep,
    caller: ReadCaller,
    base: BaseDep,
) -> Response:
    return _metadata(request, services, caller, base, study, series)


@router.get(
    "/studies/{study}/series/{series}/instances/{sop}/metadata",
    summary="WADO-RS: instance metadata",
)
def instance_metadata_route(
    study: str,
    series: str,
    sop: str,
    request: Request,
    services: ServicesDep,
    caller: ReadCaller,
    base: BaseDep,
) -> Response:
    return _metadata(request, services, caller, base, study, series, sop)


# ---------------------------------------------------------------- frames and bulk data


def _frame_numbers(text: str) -> list[int] | None:
    try:
        numbers = [int(n) for n in text.replace("%2C", ",").split(",") if n.strip()]
    except ValueError:
        return None
    return numbers if numbers and all(n >= 1 for n in numbers) else None


def _frames_response(
    request: Request, path: Path, obj: StoredObject, numbers: list[int]
) -> Response:
    compressed = obj.transfer_syntax_uid not in NATIVE_SYNTAXES
    stored_type = FRAME_MEDIA_TYPES.get(obj.transfer_syntax_uid, "application/octet-stream")
    for choice in acceptable(_accept(request), "application/octet-stream"):
        syntax = choice.transfer_syntax
        as_stored = syntax in (ANY_TS, obj.transfer_syntax_uid) or (
            syntax is None and choice.part_type == stored_type
        )
        if compressed and as_stored:
            return _frames_parts(
                lambda: frame_io.stored_frames(path, numbers), stored_type, obj.transfer_syntax_uid
            )
        if choice.part_type in ("application/octet-stream", "*/*") and (
            syntax in (None, ANY_TS, EXPLICIT_VR_LITTLE_ENDIAN)
        ):
            return _frames_parts(
                lambda: frame_io.native_frames(path, numbers),
                "application/octet-stream",
                EXPLICIT_VR_LITTLE_ENDIAN,
            )
    return problem(406, "no acceptable media type or transfer syntax can be produced")


def _frames_parts(read: Callable[[], list[bytes]], media_type: str, syntax: str) -> Response:
    try:
        data = read()
    except frame_io.FrameError as exc:
        return problem(404 if "range" in str(exc) else 406, str(exc))
    part_headers = {"Content-Type": f"{media_type}; transfer-syntax={syntax}"}
    parts = [({**part_headers, "Content-Length": str(len(d))}, [d]) for d in data]
    return _multipart(parts, media_type)


@router.get(
    "/studies/{study}/series/{series}/instances/{sop}/frames/{frame_list}",
    summary="WADO-RS: retrieve frames",
)
def retrieve_frames(
    study: str,
    series: str,
    sop: str,
    frame_list: str,
    request: Request,
    services: ServicesDep,
    caller: ReadCaller,
) -> Response:
    numbers = _frame_numbers(frame_list)
    if numbers is None:
        return problem(400, "frame list must be positive integers separated by commas")
    try:
        (obj,) = audit.instances(request, services, caller, study, series, sop)
    except NotFound as exc:
        return problem(404, str(exc))
    return _frames_response(request, services.blobs.local_path(obj.blob_key), obj, numbers)


@router.get(
    "/studies/{study}/series/{series}/instances/{sop}/bulkdata/{tag}",
    summary="WADO-RS: retrieve bulk data",
)
def retrieve_bulkdata(
    study: str,
    series: str,
    sop: str,
    tag: str,
    request: Request,
    services: ServicesDep,
    caller: ReadCaller,
) -> Response:
    try:
        (obj,) = audit.instances(request, services, caller, study, series, sop)
    except NotFound as exc:
        return problem(404, str(exc))
    path = services.blobs.local_path(obj.blob_key)
    if tag.upper() == PIXEL_DATA:
        count = obj.number_of_frames or 1
        return _frames_response(request, path, obj, list(range(1, count + 1)))
    from connrad.dicom.metadata import bulk_value

    value = bulk_value(path, tag)
    if value is None:
        return problem(404, "bulk data not found")
    return _multipart(
        [({"Content-Type": "application/octet-stream"}, [value])], "application/octet-stream"
    )


# ---------------------------------------------------------------- rendered and thumbnails


def _render_options(request: Request) -> tuple[str, dict[str, Any]] | str:
    media_type = "image/jpeg"
    for choice in acceptable(_accept(request), "image/jpeg"):
        if choice.part_type in ("image/jpeg", "image/png", "*/*", "image/*"):
            media_type = (
                "image/jpeg" if choice.part_type in ("*/*", "image/*") else (choice.part_type)
            )
            break
    else:
        return "rendered media type must be image/jpeg or image/png"
    options: dict[str, Any] = {"media_type": media_type}
    params = request.query_params
    try:
        if "window" in params:
            center, width, *function = params["window"].split(",")
            options["window"] = (
                float(center),
                float(width),
                (function[0] if function else "linear").upper(),
            )
        if "viewport" in params:
            # PS3.18 8.3.5.1.3: viewport=vw,vh — width first.
            width, height = params["viewport"].split(",")[:2]
            options["viewport"] = (int(height), int(width))
        if "quality" in params:
            options["quality"] = max(1, min(100, int(params["quality"])))
    except ValueError:
        return "window=center,width[,function], viewport=width,height, quality=1..100"
    return media_type, options


async def _rendered(
    request: Request,
    services: Services,
    caller: ReadCaller,
    study: str,
    series: str,
    sop: str,
    frame: int,
) -> Response:
    options = _render_options(request)
    if isinstance(options, str):
        return problem(406 if "media type" in options else 400, options)
    media_type, kwargs = options
    try:
        (obj,) = audit.instances(request, services, caller, study, series, sop)
    except NotFound as exc:
        return problem(404, str(exc))
    path = services.blobs.local_path(obj.blob_key)
    try:
        image = await to_thread.run_sync(lambda: render.render_frame(path, frame, **kwargs))
    except frame_io.FrameError as exc:
        return problem(404 if "range" in str(exc) else 422, str(exc))
    except ValueError:
        return problem(400, "invalid window, viewport or quality")
    return Response(image, media_type=media_type)


@router.get(
    "/studies/{study}/series/{series}/instances/{sop}/rendered",
    summary="WADO-RS: rendered instance (first frame)",
)
async def rendered_instance(
    study: str, series: str, sop: str, request: Request, services: ServicesDep, caller: ReadCaller
) -> Response:
    return await _rendered(request, services, caller, study, series, sop, 1)


@router.get(
    "/studies/{study}/series/{series}/instances/{sop}/frames/{frame}/rendered",
    summary="WADO-RS: rendered frame",
)
async def rendered_frame(
    study: str,
    series: str,
    sop: str,
    frame: int,
    request: Request,
    services: ServicesDep,
    caller: ReadCaller,
) -> Response:
    return await _rendered(request, services, caller, study, series, sop, frame)


async def _thumbnail(
    request: Request,
    services: Services,
    caller: ReadCaller,
    study: str,
    series: str | None,
    sop: str | None,
    frame: int | None,
    size: int,
) -> Response:
    media_type = _image_type(request)
    if media_type is None:
        return problem(406, "thumbnail media type must be image/jpeg or image/png")
    try:
        objects = audit.instances(request, services, caller, study, series, sop)
    except NotFound as exc:
        return problem(404, str(exc))
    if series is None and size == 128 and media_type == "image/jpeg":
        cached = thumbnail_path(services, study)
        if cached.is_file():  # rendered by the study.thumbnail job
            return Response(cached.read_bytes(), media_type=media_type)
    images = [o for o in objects if o.rows is not None]
    if not images:
        return problem(404, "no image to make a thumbnail from")
    # From the middle outwards: one undecodable image should not cost the series its face.
    middle = len(images) // 2
    candidates = sorted(range(len(images)), key=lambda i: abs(i - middle))[:3]
    error: frame_io.FrameError | None = None
    for index in candidates:
        path = services.blobs.local_path(images[index].blob_key)
        try:
            image = await to_thread.run_sync(_render_thumbnail, path, frame, size, media_type)
        except frame_io.FrameError as exc:
            error = exc
            continue
        return Response(image, media_type=media_type)
    assert error is not None
    return problem(404 if "range" in str(error) else 422, str(error))


def _render_thumbnail(path: Path, frame: int | None, size: int, media_type: str) -> bytes:
    if frame is None:
        return render.thumbnail(path, size=size, media_type=media_type)
    return render.render_frame(path, frame, media_type=media_type, viewport=(size, size))


def _image_type(request: Request) -> str | None:
    for choice in acceptable(_accept(request), "image/jpeg"):
        if choice.part_type in ("image/jpeg", "image/png"):
            return choice.part_type
        if choice.part_type in ("*/*", "image/*"):
            return "image/jpeg"
    return None


SizeQuery = Annotated[int, Query(ge=16, le=1024)]


@router.get("/studies/{study}/thumbnail", summary="WADO-RS: study thumbnail")
async def study_thumbnail(
    study: str,
    request: Request,
    services: ServicesDep,
    caller: ReadCaller,
    size: SizeQuery = 128,
) -> Response:
    return await _thumbnail(request, services, caller, study, None, None, None, size)


@router.get("/studies/{study}/series/{series}/thumbnail", summary="WADO-RS: series thumbnail")
async def series_thumbnail(
    study: str,
    series: str,
    request: Request,
    services: ServicesDep,
    caller: ReadCaller,
    size: SizeQuery = 128,
) -> Response:
    return await _thumbnail(request, services, caller, study, series, None, None, size)


@router.get(
    "/studies/{study}/series/{series}/instances/{sop}/thumbnail",
    summary="WADO-RS: instance thumbnail",
)
async def instance_thumbnail(
    study: str,
    series: str,
    sop: str,
    request: Request,
    services: ServicesDep,
    caller: ReadCaller,
    size: SizeQuery = 128,
) -> Response:
    return await _thumbnail(request, services, caller, study, series, sop, None, size)


@router.get(
    "/studies/{study}/series/{series}/instances/{sop}/frames/{frame}/thumbnail",
    summary="WADO-RS: frame thumbnail",
)
async def frame_thumbnail(
    study: str,
    series: str,
    sop: str,
    frame: int,
    request: Request,
    services: ServicesDep,
    caller: ReadCaller,
    size: SizeQuery = 128,
) -> Response:
    return await _thumbnail(request, services, caller, study, series, sop, frame, size)
