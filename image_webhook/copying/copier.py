"""The copiers: threads that claim copy tasks with a lease, fetch, verify and store each image, and record the end."""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import random
import tempfile
import threading
import time
from pathlib import Path
from typing import BinaryIO, cast

from ..domain.images import CopyState, image_key, thumbnail_key
from ..observability.context import ACTIVITY
from ..observability.logs import LOGGER
from ..observability.metrics import Metrics
from ..storage.database import Database, copies
from ..storage.errors import ImageStoreUnavailable, Unavailable
from ..storage.images import ImageStore
from .fetch import Fetcher, FetchFailed
from .sources import Refused
from .verify import NotAnImage, verify

log = logging.getLogger(LOGGER)
MAX_DELAY = 600  # seconds: the retries' backoff stops doubling there
POLL = 1.0  # seconds between two looks for due tasks when nothing woke the copiers
NICE = 19  # the copiers' threads: the lowest priority
YIELD = 0.25  # seconds a copy step waits at most for this process's requests to be answered
BACK_OFF = 5.0  # seconds the copiers leave the database alone after it did not answer (the webhook's writes first)


def lowest_priority() -> None:
    """Give this thread the lowest CPU priority (Linux: a thread is a task of its own): a copy's decoding and
    encoding take the CPU the webhook leaves, and never slow its answers (make bench-images measures it)."""
    with contextlib.suppress(AttributeError, OSError):  # not Linux, or not allowed: the default priority
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), NICE)


class Copiers:
    """`concurrency` copier threads fed by one dispatcher thread, which claims due tasks (a cheap read first,
    then a claim in a write transaction), hands them out and renews the leases of those still running."""

    def __init__(
        self,
        db: Database,
        store: ImageStore,
        fetcher: Fetcher,
        metrics: Metrics,
        *,
        concurrency: int,
        lease: float,
        attempts: int,
        retry_base: float,
    ) -> None:
        self.db, self.store, self.fetcher, self.metrics = db, store, fetcher, metrics
        self.concurrency, self.lease, self.attempts, self.retry_base = concurrency, lease, attempts, retry_base
        self._tasks: queue.SimpleQueue[copies.Task | None] = queue.SimpleQueue()
        self._running: dict[str, copies.Task] = {}  # by lease token: the leases the dispatcher renews
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._quiet_until = 0.0  # monotonic: no copier writes before, the database did not answer
        self._threads: list[threading.Thread] = []
        self._background = True

    def start(self, *, background: bool = True) -> Copiers:
        """Start the threads; `background` (inside the service): at the lowest CPU priority, and each copy step
        after this process's requests (`images work` copies at full speed: it serves no request)."""
        self._background = background
        if self.concurrency and not self._threads:
            self._threads = [threading.Thread(target=self._dispatch, name="copy-dispatcher", daemon=True)]
            self._threads += [
                threading.Thread(target=self._copy_loop, name=f"copier-{n}", daemon=True)
                for n in range(self.concurrency)
            ]
            for thread in self._threads:
                thread.start()
        return self

    def wake(self) -> None:
        """Look for tasks now (a completed job was just recorded)."""
        self._wake.set()

    def stop(self, timeout: float = 30) -> None:
        """Claim nothing more; the copies under way finish (their leases renewed meanwhile) within `timeout`."""
        self._stopping.set()
        self._wake.set()
        for _ in range(self.concurrency):
            self._tasks.put(None)
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))

    def _dispatch(self) -> None:
        if self._background:
            lowest_priority()
        renewed = time.monotonic()
        while not self._stopping.is_set() or self._running:  # stopping: claim nothing, keep the leases running
            try:
                if time.monotonic() >= self._quiet_until:  # not backing off
                    renewed = self._turn(renewed)
            except Unavailable:
                self._back_off()
            except Exception:
                log.exception("❌ [Image Webhook] Échec du répartiteur des copies", extra={"event": "copy_error"})
            pause = max(self._quiet_until - time.monotonic(), min(POLL, self.lease / 3))
            self._wake.wait(pause * random.uniform(0.8, 1.2))
            self._wake.clear()

    def _turn(self, renewed: float) -> float:
        """Claim due tasks for the free copiers, and renew the leases under way when a third has run."""
        free = self.concurrency - len(self._running)
        if not self._stopping.is_set() and free > 0 and copies.due(self.db):
            for task in copies.claim(self.db, limit=free, lease=self.lease):
                with self._lock:
                    self._running[task.token] = task
                self._tasks.put(task)
        if self._running and time.monotonic() - renewed > self.lease / 3:
            with self._lock:
                tokens = list(self._running)
            copies.renew(self.db, tokens, lease=self.lease)
            return time.monotonic()
        return renewed

    def _back_off(self) -> None:
        """The database did not answer (locked or gone): the copiers' writes would only queue behind the
        webhook's, and lengthen its wait, so they leave it alone for BACK_OFF seconds. A task under way keeps
        its lease (renewed once the database answers) or, if it ran out, is claimed again."""
        with self._lock:
            if time.monotonic() < self._quiet_until:
                return  # another copier thread saw it first
            pause = BACK_OFF * random.uniform(0.8, 1.2)
            self._quiet_until = time.monotonic() + pause
        log.warning(
            "⚠️ [Image Webhook] Base de données indisponible: copies en pause pendant %.0f s",
            pause,
            extra={"event": "copy_paused"},
        )

    def _copy_loop(self) -> None:
        if self._background:
            lowest_priority()
        while (task := self._tasks.get()) is not None:
            try:
                self._stopping.wait(max(0.0, self._quiet_until - time.monotonic()))
                self.copy(task)
            except Unavailable:
                self._back_off()  # the task is left to its lease: claimed again once it runs out
            except Exception:
                log.exception("❌ [Image Webhook] Échec inattendu d'une copie", extra={"event": "copy_error"})
            finally:
                with self._lock:
                    self._running.pop(task.token, None)
                self._wake.set()

    def copy(self, task: copies.Task) -> None:
        """One attempt at one task, ending in exactly one of: stored, queued again, failed, refused."""
        started = time.perf_counter()
        if task.attempts > self.attempts:  # its copier died on the last attempt
            self._end(task, CopyState.FAILED, f"abandonnée après {self.attempts} tentatives", started)
            return
        try:
            size = self._store(task)
        except Refused as exc:
            self._end(task, CopyState.REFUSED, str(exc), started)
        except (FetchFailed, NotAnImage) as exc:
            self._failed(task, str(exc), exc.permanent, started)
        except ImageStoreUnavailable as exc:
            self._failed(task, str(exc), False, started)
        else:
            if size is not None:
                self.metrics.copied("stored", time.perf_counter() - started, size)

    def _store(self, task: copies.Task) -> int | None:
        with tempfile.NamedTemporaryFile(prefix="image-copy-") as file:
            self._after_requests()
            fetched = self.fetcher.fetch(task.url, cast(BinaryIO, file))
            file.flush()
            self._after_requests()
            verified = verify(Path(file.name), fetched.size, task.claims)
            if not copies.hashed(self.db, task, fetched.sha256):
                return None  # the lease ran out and another copier has the task: it will record the end
            self.store.put(image_key(fetched.sha256, verified.content_type), Path(file.name), verified.content_type)
            self.store.put_bytes(thumbnail_key(fetched.sha256), verified.thumbnail, "image/webp")
        stored = copies.StoredFile(
            fetched.sha256, fetched.size, verified.content_type, verified.width, verified.height, verified.mismatches
        )
        if not copies.stored(self.db, task, stored):
            return None
        extra = {"event": "image_stored", "job_id": task.job_id}
        log.info(
            "ℹ️ [Image Webhook] Image copiée: %s n°%d (%d octets, %s)",
            task.job_id,
            task.position,
            fetched.size,
            verified.content_type,
            extra=extra,
        )
        if verified.mismatches:
            said = ", ".join(f"{m.field} {m.actual} (annoncé {m.claimed})" for m in verified.mismatches)
            log.warning(
                "⚠️ [Image Webhook] Image différente de sa description: %s n°%d: %s",
                task.job_id,
                task.position,
                said,
                extra={**extra, "event": "image_mismatch"},
            )
        return fetched.size

    def _after_requests(self) -> None:
        """Inside the service, a copy step waits (YIELD at most) for this process's requests to be answered."""
        if self._background:
            ACTIVITY.wait_quiet(YIELD)

    def _failed(self, task: copies.Task, reason: str, permanent: bool, started: float) -> None:
        if permanent or task.attempts >= self.attempts:
            self._end(task, CopyState.FAILED, reason, started)
            return
        delay = min(MAX_DELAY, self.retry_base * 2 ** (task.attempts - 1)) * random.uniform(0.5, 1.0)
        if copies.ended(self.db, task, CopyState.QUEUED, reason, retry_in=delay):
            self.metrics.copied("retried", time.perf_counter() - started)
            log.warning(
                "⚠️ [Image Webhook] Échec de copie (tentative %d/%d, nouvel essai dans %.0f s): %s n°%d: %s",
                task.attempts,
                self.attempts,
                delay,
                task.job_id,
                task.position,
                reason,
                extra={"event": "copy_retry", "job_id": task.job_id},
            )

    def _end(self, task: copies.Task, state: CopyState, reason: str, started: float) -> None:
        if not copies.ended(self.db, task, state, reason):
            return
        self.metrics.copied(state.value, time.perf_counter() - started)
        refused = state is CopyState.REFUSED
        line = "⚠️ [Image Webhook] Copie refusée" if refused else "❌ [Image Webhook] Copie abandonnée"
        log.log(
            logging.WARNING if refused else logging.ERROR,
            line + ": %s n°%d: %s",
            task.job_id,
            task.position,
            reason,
            extra={"event": f"copy_{state.value}", "job_id": task.job_id},
        )
