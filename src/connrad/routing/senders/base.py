"""What every sender takes and answers, whatever protocol it speaks to the destination.

The outbox hands a sender a batch of ``Outgoing`` instances and gets one ``Sent`` per
instance back: a refused instance is retried alone, while a destination that cannot be
reached at all raises ``DestinationUnavailable`` so the whole batch waits (circuit breaker).
"""

from __future__ import annotations

import ssl
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from connrad.routing.spec import DestinationSpec, DestinationUnavailable


@dataclass(frozen=True)
class Outgoing:
    """One instance to send: Part 10 bytes or a Part 10 file (a stored blob)."""

    key: int  # the caller's id for it (a delivery row id), echoed in results
    sop_class_uid: str
    sop_instance_uid: str  # as in the bytes sent
    transfer_syntax_uid: str
    data: bytes | None = field(default=None, repr=False)
    path: Path | None = None


@dataclass(frozen=True)
class Sent:
    """The destination's answer for one instance; ``error`` never holds patient data."""

    key: int
    ok: bool
    status: int | None  # DIMSE status or HTTP-derived status (0 on success); None: not sent
    error: str = ""


class BatchInterrupted(DestinationUnavailable):
    """The destination went away in the middle of a batch.

    ``results`` holds the answers received before that (their instances need no resend);
    every other instance of the batch is unacknowledged.
    """

    def __init__(self, message: str, results: Sequence[Sent]) -> None:
        super().__init__(message)
        self.results = list(results)


class CannotConfirm(DestinationUnavailable):
    """The destination offers no query service (C-FIND / QIDO-RS) to confirm with."""


class Sender(Protocol):
    def send(self, batch: Sequence[Outgoing]) -> list[Sent]:
        """One answer per instance, in batch order.

        Raises ``DestinationUnavailable`` (``BatchInterrupted`` once some were answered)
        when the destination cannot be reached at all.
        """
        ...

    def held(self, study_uid: str, sop_uids: Collection[str]) -> set[str]:
        """Which of `sop_uids` the destination confirms it holds in that study."""
        ...

    def close(self) -> None: ...


def sender_for(
    spec: DestinationSpec,
    *,
    calling_ae: str,
    timeout: float = 30.0,
    tls_context: ssl.SSLContext | None = None,
) -> Sender:
    """The sender for a destination; it opens its association or connection when first used.

    `tls_context` replaces the default one (system trust store, no client certificate)
    for a DICOM TLS or an https destination.
    """
    if spec.kind == "dicom":
        from connrad.routing.senders.dimse import DicomSender

        return DicomSender(spec, calling_ae=calling_ae, timeout=timeout, tls_context=tls_context)
    if spec.kind == "dicomweb":
        from connrad.routing.senders.dicomweb import DicomwebSender

        return DicomwebSender(spec, timeout=timeout, tls_context=tls_context)
    raise ValueError(f"unknown destination kind {spec.kind!r}")


def probe(
    spec: DestinationSpec,
    *,
    calling_ae: str,
    timeout: float = 10.0,
    tls_context: ssl.SSLContext | None = None,
) -> tuple[bool, str]:
    """Whether the destination answers (C-ECHO, or a QIDO-RS search), with a detail to show.

    Never raises for an unreachable destination: that is an answer, not an error.
    """
    if spec.kind == "dicom":
        from connrad.routing.senders.dimse import echo

        return echo(spec, calling_ae=calling_ae, timeout=timeout, tls_context=tls_context)
    if spec.kind == "dicomweb":
        from connrad.routing.senders.dicomweb import qido_probe

        return qido_probe(spec, timeout=timeout, tls_context=tls_context)
    return False, f"unknown destination kind {spec.kind!r}"
