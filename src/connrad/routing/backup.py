"""Backup workers: drain the deliveries outbox to each destination, then confirm.

A worker loops over the destinations with due work. For one destination it leases a batch,
prepares each instance (the stored bytes, or for a trusted destination the instance as the
clinic sent it, re-identified from the vault), sends the batch over the destination's
persistent association (or HTTP connection), records each answer, then asks the destination
which of the sent instances it holds (C-FIND / QIDO-RS) and marks those confirmed.

Failures: an instance the destination refuses is retried with backoff and jitter, and dead
after ``backup_max_attempts``; a destination that cannot be reached opens its circuit
breaker (no attempt until it closes, with growing waits) and costs the batch no attempt.
Several threads per process, and several processes, may run: leases keep them apart.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import socket
import threading
import time
from collections import defaultdict
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import pydicom
from sqlalchemy import select

from connrad.deid.reidentify import egress_bytes
from connrad.routing import outbox
from connrad.routing.models import Destination
from connrad.routing.outbox import Claimed
from connrad.routing.senders.base import CannotConfirm, Outgoing, Sender, sender_for
from connrad.routing.spec import DestinationSpec, DestinationUnavailable

if TYPE_CHECKING:
    from connrad.services import Services

log = logging.getLogger(__name__)
T = Destination.__table__
_UID_TAGS = ["StudyInstanceUID", "SOPInstanceUID"]
_IDLE_CLOSE_SECONDS = 60.0


class BackupWorker:
    def __init__(self, services: Services) -> None:
        self.services = services
        settings = services.settings
        self.batch = settings.backup_batch_size
        self.lease = timedelta(seconds=settings.backup_lease_seconds)
        self.max_attempts = settings.backup_max_attempts
        self.backoff = outbox.jittered_backoff(
            settings.backup_backoff_base_seconds, settings.backup_backoff_cap_seconds
        )
        self.poll = settings.worker_poll_seconds
        self.calling_ae = settings.ae_title
        self.name = f"{socket.gethostname()}:{os.getpid()}:{id(self):x}"
        self._senders: dict[int, tuple[DestinationSpec, Sender, float]] = {}
        self._stop = threading.Event()

    # --- one round ---------------------------------------------------------------------

    def run_once(self) -> int:
        """Send and confirm one batch per destination with due work; rows handled."""
        handled = 0
        for destination_id in outbox.due_destinations(self.services.engine):
            try:
                handled += self._destination(destination_id)
            except DestinationUnavailable as exc:
                self._unavailable(destination_id, str(exc))
        self._close_idle()
        return handled

    def _destination(self, destination_id: int) -> int:
        spec = self._spec(destination_id)
        if spec is None:
            return 0
        handled = self._send(spec)
        handled += self._confirm(spec)
        return handled

    def _send(self, spec: DestinationSpec) -> int:
        engine = self.services.engine
        batch = outbox.claim(
            engine, self.name, spec.id, state=outbox.QUEUED, limit=self.batch, lease=self.lease
        )
        if not batch:
            return 0
        prepared: list[tuple[Claimed, Outgoing, str, str]] = []
        unsendable: list[tuple[Claimed, str]] = []
        for claimed in batch:
            try:
                prepared.append(self._prepare(spec, claimed))
            except Exception as exc:  # a stored file that cannot be read or re-identified
                log.warning("backup: instance not prepared: %s", type(exc).__name__)
                unsendable.append((claimed, f"not prepared: {type(exc).__name__}"))
        sender = self._sender(spec)
        try:
            answers = sender.send([outgoing for _, outgoing, _, _ in prepared])
        except DestinationUnavailable as exc:
            self._drop_sender(spec.id)
            # Answers received before the destination went away stand; the rest wait.
            done = {a.key: a for a in getattr(exc, "results", [])}
            self._record(prepared, done, unsendable, only_answered=True)
            outbox.retry_later(
                engine,
                self.name,
                [(c, str(exc)) for c, _, _, _ in prepared if c.id not in done],
                max_attempts=self.max_attempts,
                backoff=self.backoff,
                count_attempt=False,
            )
            raise
        outbox.destination_ok(engine, spec.id)
        self._record(prepared, {a.key: a for a in answers}, unsendable)
        return len(batch)

    def _record(
        self,
        prepared: list[tuple[Claimed, Outgoing, str, str]],
        by_key: dict[int, Any],
        unsendable: list[tuple[Claimed, str]],
        *,
        only_answered: bool = False,
    ) -> None:
        engine = self.services.engine
        sent: list[tuple[int, str, str]] = []
        refused: list[tuple[Claimed, str]] = list(unsendable)
        for claimed, _outgoing, study_uid, sop_uid in prepared:
            answer = by_key.get(claimed.id)
            if answer is None and only_answered:
                continue
            if answer is not None and answer.ok:
                sent.append((claimed.id, study_uid, sop_uid))
            else:
                refused.append((claimed, answer.error if answer else "no answer"))
        outbox.mark_sent(engine, self.name, sent)
        outbox.retry_later(
            engine, self.name, refused, max_attempts=self.max_attempts, backoff=self.backoff
        )

    def _prepare(
        self, spec: DestinationSpec, claimed: Claimed
    ) -> tuple[Claimed, Outgoing, str, str]:
        """The bytes to send and the UIDs the destination will know them by."""
        data = None
        if spec.trusted:
            data = egress_bytes(self.services, claimed.site_id, claimed.sop_uid, claimed.blob_key)
        if data is None:
            outgoing = Outgoing(
                key=claimed.id,
                sop_class_uid=claimed.sop_class_uid,
                sop_instance_uid=claimed.sop_uid,
                transfer_syntax_uid=claimed.transfer_syntax_uid,
                path=self.services.blobs.local_path(claimed.blob_key),
            )
            return claimed, outgoing, claimed.study_uid, claimed.sop_uid
        header = pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True, specific_tags=_UID_TAGS)
        outgoing = Outgoing(
            key=claimed.id,
            sop_class_uid=claimed.sop_class_uid,
            sop_instance_uid=str(header.SOPInstanceUID),
            transfer_syntax_uid=str(header.file_meta.TransferSyntaxUID),
            data=data,
        )
        return claimed, outgoing, str(header.StudyInstanceUID), str(header.SOPInstanceUID)

    def _confirm(self, spec: DestinationSpec) -> int:
        engine = self.services.engine
        rows = outbox.claim(
            engine, self.name, spec.id, state=outbox.SENT, limit=self.batch * 4, lease=self.lease
        )
        if not rows:
            return 0
        by_study: dict[str, list[Claimed]] = defaultdict(list)
        for row in rows:
            by_study[row.remote_study_uid or row.study_uid].append(row)
        sender = self._sender(spec)
        confirmed: list[int] = []
        missing: list[tuple[Claimed, str]] = []
        try:
            for study_uid, group in by_study.items():
                held = sender.held(study_uid, [r.remote_sop_uid or r.sop_uid for r in group])
                for row in group:
                    if (row.remote_sop_uid or row.sop_uid) in held:
                        confirmed.append(row.id)
                    else:
                        missing.append((row, "sent but not found at the destination"))
        except CannotConfirm:
            # A peer without C-FIND / QIDO-RS: its acknowledgement is all there is. The rows
            # stay "sent" (a partial backup) and are asked about again much later.
            outbox.mark_confirmed(engine, self.name, confirmed)
            left = [r.id for r in rows if r.id not in set(confirmed)]
            outbox.release(engine, self.name, left, delay=self.backoff(30))
            return len(rows)
        except DestinationUnavailable as exc:
            # Not held against sending: a PACS that is really down fails the next send and
            # opens the circuit there; one that only refuses queries must still get data.
            log.warning("backup destination %s: confirmation failed: %s", spec.id, exc)
            self._drop_sender(spec.id)
            outbox.mark_confirmed(engine, self.name, confirmed)
            left = [r.id for r in rows if r.id not in set(confirmed)]
            outbox.release(engine, self.name, left, delay=self.backoff(5))
            return len(rows)
        outbox.mark_confirmed(engine, self.name, confirmed)
        # Acknowledged but not held: send again (counts as an attempt).
        outbox.retry_later(
            engine, self.name, missing, max_attempts=self.max_attempts, backoff=self.backoff
        )
        return len(rows)

    # --- destinations --------------------------------------------------------------------

    def _spec(self, destination_id: int) -> DestinationSpec | None:
        with self.services.engine.connect() as conn:
            row = conn.execute(select(T).where(T.c.id == destination_id)).mappings().first()
        return None if row is None or row["paused"] else DestinationSpec.from_row(row)

    def _sender(self, spec: DestinationSpec) -> Sender:
        cached = self._senders.get(spec.id)
        if cached is not None and cached[0] == spec:
            self._senders[spec.id] = (spec, cached[1], time.monotonic())
            return cached[1]
        if cached is not None:
            self._drop_sender(spec.id)  # the destination changed: new address or credentials
        sender = sender_for(spec, calling_ae=self.calling_ae)
        self._senders[spec.id] = (spec, sender, time.monotonic())
        return sender

    def _drop_sender(self, destination_id: int) -> None:
        cached = self._senders.pop(destination_id, None)
        if cached is not None:
            with contextlib.suppress(Exception):  # closing a broken association may fail too
                cached[1].close()

    def _close_idle(self) -> None:
        now = time.monotonic()
        for destination_id, (_, _, used) in list(self._senders.items()):
            if now - used > _IDLE_CLOSE_SECONDS:
                self._drop_sender(destination_id)

    def _unavailable(self, destination_id: int, error: str) -> None:
        log.warning("backup destination %s unavailable: %s", destination_id, error)
        outbox.destination_failed(self.services.engine, destination_id, error, self.backoff)

    # --- loop ----------------------------------------------------------------------------

    def run_forever(self) -> None:
        while not self._stop.is_set():
            try:
                busy = self.run_once()
            except Exception:
                log.exception("backup worker error; retrying")
                busy = 0
            if not busy:
                self._stop.wait(self.poll)
        for destination_id in list(self._senders):
            self._drop_sender(destination_id)

    def start_thread(self) -> threading.Thread:
        thread = threading.Thread(target=self.run_forever, name="connrad-backup", daemon=True)
        thread.start()
        return thread

    def stop(self) -> None:
        self._stop.set()


def start_backup_workers(services: Services) -> list[BackupWorker]:
    workers = [BackupWorker(services) for _ in range(services.settings.backup_threads)]
    for worker in workers:
        worker.start_thread()
    return workers


def register(services: Services) -> Any:
    """The ingest hook that fills the outbox (the workers start with the job workers)."""
    from connrad.routing.rules import RuleCache

    cache = RuleCache(services.engine)
    services.ingest.follow_ups.append(outbox.enqueue_hook(cache))
    return cache
