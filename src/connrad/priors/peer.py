"""Talking to the site's PACS: a DIMSE association or an HTTP client for one destination.

Failures to reach the PACS become :class:`DestinationUnavailable`, whose message names the
condition and never the patient, so the job is retried and its recorded error is clean.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import httpx
from pynetdicom import AE, _config
from pynetdicom.presentation import PresentationContext

from connrad.routing.spec import DestinationSpec, DestinationUnavailable
from connrad.settings import Settings

ACSE_TIMEOUT = 30.0
DIMSE_TIMEOUT = 120.0  # a PACS may take a while to find a study on slow storage
NETWORK_TIMEOUT = 120.0
HTTP_TIMEOUT = httpx.Timeout(30.0, read=120.0)


class Unsupported(Exception):
    """The destination does not offer the service (no accepted context): retrying won't help."""


def require_context(assoc: Any, sop_class: str, service: str) -> None:
    if not any(cx.abstract_syntax == sop_class for cx in assoc.accepted_contexts):
        raise Unsupported(f"{service} not accepted by the destination")


@contextmanager
def association(
    spec: DestinationSpec,
    settings: Settings,
    contexts: Sequence[PresentationContext],
    *,
    ext_neg: Sequence[Any] = (),
    handlers: Sequence[tuple[Any, Callable[..., Any]]] = (),
) -> Iterator[Any]:
    """An established association to the destination, released (or aborted) afterwards."""
    # pynetdicom logs whole identifiers by default: the real PatientID would reach the logs.
    # Process-wide, like the DIMSE server's choice (dimse.query): no connrad use wants them.
    _config.LOG_REQUEST_IDENTIFIERS = False
    _config.LOG_RESPONSE_IDENTIFIERS = False
    ae = AE(ae_title=settings.ae_title)
    ae.acse_timeout = ACSE_TIMEOUT
    ae.dimse_timeout = DIMSE_TIMEOUT
    ae.network_timeout = NETWORK_TIMEOUT
    ae.requested_contexts = list(contexts)
    options: dict[str, Any] = {
        "ae_title": spec.ae_title,
        "ext_neg": list(ext_neg),
        "evt_handlers": list(handlers),
    }
    if spec.tls:
        options["tls_args"] = (_client_tls(settings), spec.host)
    try:
        assoc = ae.associate(spec.host, spec.port, **options)
    except (OSError, ssl.SSLError) as exc:
        raise DestinationUnavailable(f"connection failed ({type(exc).__name__})") from None
    if not assoc.is_established:
        condition = "rejected" if assoc.is_rejected else "not established"
        raise DestinationUnavailable(f"association {condition}")
    try:
        yield assoc
    except BaseException:
        assoc.abort()
        raise
    if assoc.is_established:
        assoc.release()


def _client_tls(settings: Settings) -> ssl.SSLContext:
    """DICOM TLS towards the PACS: its certificate checked, ours shown if we have one.

    The same rules as C-MOVE's outgoing associations (dimse.move), kept here so that a job
    worker need not import the DIMSE server.
    """
    context = ssl.create_default_context(cafile=settings.dimse_tls_ca_file)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if settings.dimse_tls_certfile is not None:
        context.load_cert_chain(settings.dimse_tls_certfile, settings.dimse_tls_keyfile)
    return context


class _RedactedUrls(logging.Filter):
    """Keeps httpx's request log lines, without the path and query under a prior source.

    A QIDO-RS query carries the real PatientID, a WADO-RS path the original study UID:
    httpx logs both at INFO. Only URLs under roots registered here are shortened.
    """

    def __init__(self) -> None:
        super().__init__()
        self.roots: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and any(isinstance(a, httpx.URL) for a in record.args):
            record.args = tuple(self._redact(a) for a in record.args)
        return True

    def _redact(self, value: object) -> object:
        if isinstance(value, httpx.URL):
            text = str(value)
            for root in self.roots:
                if text.startswith(root):
                    return root + "[...]"
        return value


_redacted = _RedactedUrls()
logging.getLogger("httpx").addFilter(_redacted)


def http_client(spec: DestinationSpec) -> httpx.Client:
    """A client for the destination's DICOMweb root, with its credentials."""
    base_url = spec.url.rstrip("/") + "/"
    _redacted.roots.add(str(httpx.URL(base_url)))
    headers: dict[str, str] = {}
    auth: httpx.Auth | None = None
    if spec.auth_kind == "bearer":
        headers["Authorization"] = f"Bearer {spec.auth_secret}"
    elif spec.auth_kind == "basic":
        user, _, password = spec.auth_secret.partition(":")
        auth = httpx.BasicAuth(user, password)
    return httpx.Client(base_url=base_url, headers=headers, auth=auth, timeout=HTTP_TIMEOUT)


def http_failure(exc: httpx.HTTPError) -> DestinationUnavailable:
    """A transport error as a retryable failure; the URL (it may hold a UID) is left out."""
    return DestinationUnavailable(f"DICOMweb request failed ({type(exc).__name__})")


def check_status(response: httpx.Response, what: str) -> None:
    """Raise a retryable failure for an answer that is neither success nor "nothing"."""
    if response.status_code >= 400 and response.status_code != 404:
        raise DestinationUnavailable(f"{what}: HTTP {response.status_code}")
