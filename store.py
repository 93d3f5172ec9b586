"""Idempotence: which terminal notifications were processed during the last window."""
import contextlib
import logging
import threading
import time

log = logging.getLogger("image_webhook")
WARN_EVERY = 10  # seconds: a flood of distinct ids must not flood the log too


class Store:
    """What the blueprint needs of an idempotence store: claim, release, seen, holding, not_ready."""

    def claim(self, key):
        raise NotImplementedError

    def release(self, key, token):
        raise NotImplementedError

    @contextlib.contextmanager
    def holding(self, key):
        """Claim `key` for the block: yields the token (None for a duplicate); an exception
        leaving the block releases the claim, so the sender's retry is processed."""
        token = self.claim(key)
        try:
            yield token
        except BaseException:
            if token is not None:
                self.release(key, token)
            raise


class IdempotenceStore(Store):
    """A dict job_id -> claim time behind a lock, oldest first, bounded, with an injectable clock.

    Insertion order is time order (claims read the monotonic clock under the lock), so expiry and
    eviction only ever pop from the front and stop at the first live entry.
    """

    def __init__(self, *, window, max_entries, clock=time.monotonic, batch=1000, on_evict=None):
        self.window = window
        self.max_entries = max_entries
        self.clock = clock
        self.batch = batch
        self.on_evict = on_evict  # called with the number of live entries evicted (metrics)
        self.evicted = 0  # live entries dropped at the bound: the price of bounded memory
        self.expired = 0
        self._warned_at = None  # the eviction warning is logged at most once per WARN_EVERY seconds
        self._entries = {}
        self._lock = threading.Lock()

    def __len__(self):
        return len(self._entries)

    def claim(self, key):
        """Atomically mark `key` as processed; return a token, or None if it already is (a duplicate)."""
        evicted = 0
        with self._lock:
            now = self.clock()
            claimed_at = self._entries.get(key)
            if claimed_at is not None:
                if now - claimed_at < self.window:
                    return None
                del self._entries[key]  # expired: re-inserted at the end, keeping time order
            elif len(self._entries) >= self.max_entries:
                evicted = self._make_room(now)
            self._entries[key] = now
        if evicted and self.on_evict:
            self.on_evict(evicted)
        if evicted and (self._warned_at is None or now - self._warned_at >= WARN_EVERY):
            self._warned_at = now
            log.warning("⚠️ [Image Webhook] IDEMPOTENCE_MAX_ENTRIES atteint: %d job(s) oubliés avant la fin de la "
                        "fenêtre depuis le démarrage", self.evicted, extra={"event": "eviction"})
        return now

    def release(self, key, token):
        """Forget the claim `token` on `key` (its processing failed), unless a newer claim replaced it."""
        with self._lock:
            if token is not None and self._entries.get(key) == token:
                del self._entries[key]

    def not_ready(self):
        return None  # a dict in the process is always there

    def seen(self, key):
        """Return whether `key` was claimed within the window."""
        claimed_at = self._entries.get(key)
        return claimed_at is not None and self.clock() - claimed_at < self.window

    def remove_expired(self):
        """Drop expired entries a batch at a time, so the lock is never held over the whole dict."""
        removed = 0
        while True:
            with self._lock:
                count = self._pop_front(self.clock() - self.window, self.batch)
            removed += count
            if count < self.batch:
                self.expired += removed
                return removed

    def _make_room(self, now):
        # expired entries go first; at the bound, the oldest live ones, a thousandth at a time
        # (a batch amortises the scan over the slots that deleted front entries leave behind)
        self.expired += self._pop_front(now - self.window, self.batch)
        if len(self._entries) < self.max_entries:
            return 0
        evicted = self._pop_front(float("inf"), max(1, self.max_entries // 1000))
        self.evicted += evicted
        return evicted

    def _pop_front(self, cutoff, limit):
        """Delete up to `limit` oldest entries claimed at or before `cutoff`; the caller holds the lock."""
        stale = []
        for key, claimed_at in self._entries.items():
            if claimed_at > cutoff or len(stale) == limit:
                break
            stale.append(key)
        for key in stale:
            del self._entries[key]
        return len(stale)


class CleanupThread(threading.Thread):
    """Calls `store.remove_expired()` every `interval` seconds until `stop()`; survives its failures."""

    def __init__(self, store, interval, on_run=None):
        super().__init__(name="idempotence-cleanup", daemon=True)
        self.store = store
        self.interval = interval
        self.on_run = on_run  # called with the number of entries removed (metrics)
        self._stopping = threading.Event()

    def run(self):
        while not self._stopping.wait(self.interval):
            try:
                removed = self.store.remove_expired()
            except Exception:
                log.exception("❌ [Image Webhook] Échec du nettoyage des jobs traités", extra={"event": "cleanup_failed"})
                continue
            if self.on_run:
                self.on_run(removed)
            log.debug("ℹ️ [Image Webhook] Nettoyage: %d job(s) expiré(s) retiré(s), %d suivi(s)", removed, len(self.store),
                      extra={"event": "cleanup"})

    def stop(self, timeout=5):
        """Ask the thread to end and wait for it."""
        self._stopping.set()
        self.join(timeout)
