"""The memory store: a dict of claims in this process, bounded, expired by the maintenance thread."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from ...observability.logs import LOGGER
from . import Claim

log = logging.getLogger(LOGGER)
WARN_EVERY = 10  # seconds: a flood of distinct ids must not flood the log too
NOT_NEW = Claim(False)


class MemoryStore:
    """A dict key -> claim time behind a lock, oldest first, bounded, with an injectable clock.

    Insertion order is time order (claims read the monotonic clock under the lock), so expiry and
    eviction only ever pop from the front and stop at the first live entry. The claim time is the
    claim's token: two claims of one key cannot share a time, the second would fall in the window.
    """

    def __init__(
        self,
        *,
        window: float,
        max_entries: int,
        clock: Callable[[], float] = time.monotonic,
        batch: int = 1000,
        on_evict: Callable[[int], object] | None = None,
    ) -> None:
        self.window = window
        self.max_entries = max_entries
        self.clock = clock
        self.batch = batch
        self.on_evict = on_evict  # called with the number of live entries evicted (metrics)
        self.evicted = 0  # live entries dropped at the bound: the price of bounded memory
        self.expired = 0
        self._warned_at: float | None = None  # the eviction warning: at most once per WARN_EVERY seconds
        self._entries: dict[str, float] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def claim(self, key: str) -> Claim:
        evicted = 0
        with self._lock:
            now = self.clock()
            claimed_at = self._entries.get(key)
            if claimed_at is not None:
                if now - claimed_at < self.window:
                    return NOT_NEW
                del self._entries[key]  # expired: re-inserted at the end, keeping time order
            elif len(self._entries) >= self.max_entries:
                evicted = self._make_room(now)
            self._entries[key] = now
        if evicted:
            self._evicted(evicted, now)
        return Claim(True, now)

    def release(self, key: str, claim: Claim) -> bool:
        with self._lock:
            if claim.new and self._entries.get(key) == claim.token:
                del self._entries[key]
                return True
        return False

    def seen(self, key: str) -> bool:
        claimed_at = self._entries.get(key)
        return claimed_at is not None and self.clock() - claimed_at < self.window

    def not_ready(self) -> str | None:
        return None  # a dict in the process is always there

    def remove_expired(self) -> int:
        """Drop expired entries a batch at a time, so the lock is never held over the whole dict."""
        removed = 0
        while True:
            with self._lock:
                count = self._pop_front(self.clock() - self.window, self.batch)
            removed += count
            if count < self.batch:
                self.expired += removed
                return removed

    def _evicted(self, count: int, now: float) -> None:
        if self.on_evict:
            self.on_evict(count)
        if self._warned_at is None or now - self._warned_at >= WARN_EVERY:
            self._warned_at = now
            log.warning(
                "⚠️ [Image Webhook] IDEMPOTENCE_MAX_ENTRIES atteint: %d job(s) oubliés avant la fin de la "
                "fenêtre depuis le démarrage",
                self.evicted,
                extra={"event": "eviction"},
            )

    def _make_room(self, now: float) -> int:
        # expired entries go first; at the bound, the oldest live ones, a thousandth at a time
        # (a batch amortises the scan over the slots that deleted front entries leave behind)
        self.expired += self._pop_front(now - self.window, self.batch)
        if len(self._entries) < self.max_entries:
            return 0
        evicted = self._pop_front(float("inf"), max(1, self.max_entries // 1000))
        self.evicted += evicted
        return evicted

    def _pop_front(self, cutoff: float, limit: int) -> int:
        """Delete up to `limit` oldest entries claimed at or before `cutoff`; the caller holds the lock."""
        stale: list[str] = []
        for key, claimed_at in self._entries.items():
            if claimed_at > cutoff or len(stale) == limit:
                break
            stale.append(key)
        for key in stale:
            del self._entries[key]
        return len(stale)
