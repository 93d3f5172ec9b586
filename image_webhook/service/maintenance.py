"""The maintenance thread: the chores that keep the state bounded (the window's expiry, the records' retention)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable

from ..observability.logs import LOGGER
from ..storage.idempotence.memory import MemoryStore

log = logging.getLogger(LOGGER)


class MaintenanceThread(threading.Thread):
    """Every `interval` seconds until `stop()`, surviving their failures: each memory store's
    `remove_expired()`, then the other `chores` (the retention purge, with a database)."""

    def __init__(
        self,
        stores: Iterable[MemoryStore],
        interval: float,
        on_run: Callable[[int], object] | None = None,
        chores: Iterable[Callable[[], object]] = (),
    ) -> None:
        super().__init__(name="maintenance", daemon=True)
        self.stores = tuple(stores)
        self.chores = tuple(chores)
        self.interval = interval
        self.on_run = on_run  # called with the number of entries removed (metrics)
        self._stopping = threading.Event()

    def run(self) -> None:
        while not self._stopping.wait(self.interval):
            try:
                removed = sum(store.remove_expired() for store in self.stores)
                for chore in self.chores:
                    chore()
            except Exception:
                log.exception(
                    "❌ [Image Webhook] Échec du nettoyage des jobs traités", extra={"event": "cleanup_failed"}
                )
                continue
            if self.on_run:
                self.on_run(removed)
            log.debug(
                "ℹ️ [Image Webhook] Nettoyage: %d entrée(s) expirée(s) retirée(s), %d suivie(s)",
                removed,
                sum(len(store) for store in self.stores),
                extra={"event": "cleanup"},
            )

    def stop(self, timeout: float = 5) -> None:
        """Ask the thread to end and wait for it."""
        self._stopping.set()
        self.join(timeout)
