"""The idempotence store, driven through its injectable clock (no sleeping)."""

import logging
import threading
import time

import pytest

from image_webhook.service.maintenance import MaintenanceThread
from image_webhook.storage.idempotence.memory import MemoryStore


@pytest.fixture
def store(clock):
    return MemoryStore(window=300, max_entries=1000, clock=clock)


def test_claim_once_per_window(store, clock):
    """A key is claimed once; claimed again only when the window has passed."""
    assert store.claim("a").new is True
    assert store.claim("a").new is False
    clock.advance(299.999)
    assert store.claim("a").new is False
    clock.advance(0.001)
    assert store.claim("a").new is True


def test_seen_follows_the_window(store, clock):
    """seen() is true during the window only, even before any cleanup."""
    assert not store.seen("a")
    store.claim("a")
    assert store.seen("a")
    clock.advance(300)
    assert not store.seen("a")


def test_release_forgets_only_its_own_claim(store, clock):
    """release() of an expired claim leaves the newer claim in place, and says so."""
    old = store.claim("a")
    clock.advance(300)
    new = store.claim("a")
    assert store.release("a", old) is False
    assert store.claim("a").new is False
    assert store.release("a", new) is True
    assert store.claim("a").new is True


def test_release_of_an_absent_key_is_harmless(store):
    """release() of a key that holds no claim (a duplicate's, or one already released) changes nothing.

    Regression: found by the hypothesis state machine, release("x", None) raised KeyError.
    """
    duplicate = store.claim("a")
    duplicate = store.claim("a")
    assert store.release("never-claimed", duplicate) is False
    assert store.release("a", duplicate) is False and store.seen("a")
    claim = store.claim("b")
    assert store.release("b", claim) is True
    assert store.release("b", claim) is False
    assert len(store) == 1


def test_remove_expired_stops_at_the_first_live_entry(clock):
    """Cleanup removes exactly the expired entries, oldest first, across several batches."""
    store = MemoryStore(window=10, max_entries=10_000, clock=clock, batch=7)
    for i in range(50):
        store.claim(f"old-{i}")
    clock.advance(5)
    for i in range(20):
        store.claim(f"new-{i}")
    clock.advance(5)
    assert store.remove_expired() == 50
    assert len(store) == 20 and store.expired == 50
    assert store.remove_expired() == 0


def test_bound_evicts_the_oldest_first(clock, caplog):
    """At IDEMPOTENCE_MAX_ENTRIES the oldest entry is forgotten first, with a warning."""
    store = MemoryStore(window=300, max_entries=3, clock=clock)
    for key in "abc":
        store.claim(key)
        clock.advance(1)
    store.claim("d")
    assert len(store) == 3 and store.evicted == 1
    assert store.claim("a").new is True  # forgotten
    assert store.claim("d").new is False
    assert any("IDEMPOTENCE_MAX_ENTRIES" in r.getMessage() for r in caplog.records)


def test_bound_drops_expired_entries_before_live_ones(clock):
    """At the bound, expired entries make room first and no live entry is evicted."""
    store = MemoryStore(window=10, max_entries=3, clock=clock)
    store.claim("a")
    clock.advance(5)
    store.claim("b")
    store.claim("c")
    clock.advance(5)
    store.claim("d")
    assert store.evicted == 0 and store.claim("b").new is False


def test_flood_of_distinct_ids_stays_bounded(clock):
    """Whatever the number of distinct ids, the store never holds more than its bound."""
    store = MemoryStore(window=300, max_entries=5000, clock=clock)
    for i in range(20_000):
        store.claim(f"flood-{i}")
        assert len(store) <= 5000
    assert store.evicted == 15_000


def test_eviction_warnings_are_rate_limited(clock, caplog):
    """A flood at the bound logs one eviction warning per 10 seconds, not one per eviction."""
    store = MemoryStore(window=300, max_entries=10, clock=clock)
    for i in range(1000):
        store.claim(f"flood-{i}")
    clock.advance(10)
    store.claim("one-more")
    warnings = [r for r in caplog.records if "IDEMPOTENCE_MAX_ENTRIES" in r.getMessage()]
    assert len(warnings) == 2


def test_concurrent_claims_of_one_key_succeed_once(store):
    """Of 32 threads claiming the same key at once, exactly one wins."""
    barrier = threading.Barrier(32)
    wins = []

    def claim():
        barrier.wait()
        wins.append(store.claim("same").new)

    threads = [threading.Thread(target=claim) for _ in range(32)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert wins.count(True) == 1


def test_cleanup_thread_removes_expired_entries_and_stops(clock):
    """The cleanup thread runs every interval and stops when asked."""
    store = MemoryStore(window=10, max_entries=100, clock=clock)
    store.claim("a")
    clock.advance(10)
    thread = MaintenanceThread([store], interval=0.01)
    thread.start()
    deadline = time.monotonic() + 5
    while len(store) and time.monotonic() < deadline:
        time.sleep(0.01)
    thread.stop()
    assert len(store) == 0 and not thread.is_alive()


def test_failing_cleanup_is_logged_and_the_thread_keeps_running(caplog):
    """A cleanup run that raises is logged with ❌ and the next run still happens."""
    runs = []

    class FlakyStore:
        def remove_expired(self):
            runs.append(1)
            if len(runs) == 1:
                raise RuntimeError("boom")
            return 0

        def __len__(self):
            return 0

    thread = MaintenanceThread([FlakyStore()], interval=0.01)
    thread.start()
    deadline = time.monotonic() + 5
    while len(runs) < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    thread.stop()
    assert len(runs) >= 3
    assert any(r.levelno == logging.ERROR and r.getMessage().startswith("❌") for r in caplog.records)
