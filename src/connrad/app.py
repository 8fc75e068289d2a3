"""Assembles the ASGI application from the domain routers."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from anyio import to_thread
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse, Response

from connrad import __version__, openapi
from connrad.access import PublicCaller, audit_refusal, auth_error_response
from connrad.api import admin, auth, identity, oauth, orders, qc, routing
from connrad.audit.log import AuditUnavailable
from connrad.body_limits import BodyLimits
from connrad.dicomweb import qido, stow, wado, wado_uri
from connrad.fhir import audit_event
from connrad.identity.authenticate import AuthError
from connrad.security_headers import SecurityHeaders
from connrad.services import Services, build_services
from connrad.settings import Settings

log = logging.getLogger(__name__)


def create_app(settings: Settings, services: Services | None = None) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Migrations and recovery ran in the parent before the workers were started.
        built = services or build_services(settings, migrate=False)
        app.state.services = built
        worker = built.worker() if settings.run_workers else None
        senders = built.backup_workers() if settings.run_workers else []
        if worker is not None:
            worker.start_thread()
        try:
            yield
        finally:
            if worker is not None:
                worker.stop()
            for sender in senders:
                sender.stop()
            if services is None:
                built.close()

    app = FastAPI(
        title="connrad",
        summary="Connected Radiology: DICOMweb archive for remote clinics",
        version=__version__,
        lifespan=lifespan,
        docs_url="/api/docs",
        openapi_url="/api/openapi.json",
        redoc_url=None,
        swagger_ui_oauth2_redirect_url="/api/docs/oauth2-redirect",
    )
    app.state.settings = settings
    app.add_middleware(BodyLimits, max_body_bytes=settings.max_json_body_bytes)
    app.add_middleware(SecurityHeaders)
    app.add_middleware(
        CORSMiddleware,
        allow_origins=settings.cors_origins,
        allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"],
        allow_headers=["*"],
        expose_headers=["Warning", "Content-Location"],
    )
    for router in (stow.router, qido.router, wado.router, wado_uri.router):
        app.include_router(router, prefix="/dicomweb", tags=["dicomweb"])
    app.include_router(wado_uri.router, include_in_schema=False)
    for router in (
        auth.router,
        oauth.router,
        admin.router,
        identity.router,
        identity.held_router,
        qc.router,
        orders.router,
        routing.router,
        audit_event.router,
    ):
        app.include_router(router)

    @app.exception_handler(AuthError)
    async def _refused(request: Request, exc: AuthError) -> Response:
        if exc.status in (401, 403, 404) and not getattr(request.state, "refusal_audited", False):
            await to_thread.run_sync(audit_refusal, request, exc)
        return auth_error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> Response:
        # Name the parameters, never echo their values (they may be patient data).
        fields = sorted({".".join(str(p) for p in e["loc"][1:]) for e in exc.errors()})
        return JSONResponse({"detail": f"invalid parameters: {', '.join(fields)}"}, 400)

    @app.exception_handler(AuditUnavailable)
    async def _unaudited(request: Request, exc: AuditUnavailable) -> Response:
        # No read may happen unrecorded: refuse it while the trail cannot be written.
        return JSONResponse({"detail": "audit trail unavailable; try again"}, 503)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        log.error("unhandled %s on %s", type(exc).__name__, request.url.path.split("/")[1:3])
        return JSONResponse({"detail": "internal error"}, 500)

    app.openapi = lambda: openapi.describe(app)  # type: ignore[method-assign]

    @app.get("/healthz", include_in_schema=False)
    def healthz(caller: PublicCaller) -> dict[str, str]:
        return {"status": "ok", "version": __version__}

    return app


def app_from_environment() -> FastAPI:
    """Factory for uvicorn's worker processes (``connrad serve`` with several workers)."""
    _die_with_parent()
    return create_app(Settings())


def _die_with_parent() -> None:
    """A worker whose supervisor was killed (kill -9) must not linger holding the port."""
    import ctypes
    import signal
    import sys

    if sys.platform.startswith("linux"):
        pr_set_pdeathsig = 1
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)
