"""The idempotence store's memory and pauses: bytes per tracked job, longest lock hold of a cleanup."""

import gc
import logging
import time
import tracemalloc
from typing import ClassVar

from image_webhook.storage.idempotence.memory import MemoryStore


class Clock:
    now = 0.0

    def __call__(self):
        return self.now


class TimedStore(MemoryStore):
    """Records how long each locked section of a cleanup lasts."""

    holds: ClassVar[list[float]] = []

    def _pop_front(self, cutoff, limit):
        started = time.perf_counter()
        try:
            return super()._pop_front(cutoff, limit)
        finally:
            self.holds.append(time.perf_counter() - started)


def job_id(i):
    """A 36-character id shaped like a uuid4 (os.urandom per id would dominate the run)."""
    return f"{i:08x}-7430-4845-bf8e-{i:012x}"


def bytes_per_job(count):
    """Memory of a store tracking `count` jobs (uuid-shaped job ids, the ids included), per job."""
    gc.collect()
    tracemalloc.start()
    clock = Clock()
    store = MemoryStore(window=300, max_entries=count, clock=clock)
    for i in range(count):
        clock.now += 1e-6
        store.claim(job_id(i))
    size = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    return size / count


def longest_hold(count, expired_share):
    """Longest time the lock is held while a cleanup expires `expired_share` of `count` entries."""
    clock = Clock()
    store = TimedStore(window=300, max_entries=count, clock=clock)
    old = int(count * expired_share)
    for i in range(count):
        clock.now = 0.0 if i < old else 100.0
        store.claim(job_id(i))
    clock.now = 300.0
    TimedStore.holds = []
    started = time.perf_counter()
    removed = store.remove_expired()
    total = time.perf_counter() - started
    assert removed == old
    return max(TimedStore.holds), total


def flood(bound, ids):
    """A flood of distinct ids: the store stays at its bound."""
    store = MemoryStore(window=300, max_entries=bound, clock=Clock())
    for i in range(ids):
        store.claim(f"flood-{i}")
    return len(store), store.evicted


def main():
    logging.getLogger("image_webhook").setLevel(logging.ERROR)  # the flood's eviction warnings
    for count in (100_000, 1_000_000):
        print(f"store: {bytes_per_job(count):6.1f} bytes per tracked job at {count:>9,} entries")
    for share in (0.01, 0.10):
        hold, total = longest_hold(1_000_000, share)
        print(
            f"store: cleanup expiring {share:.0%} of 1,000,000: longest lock hold {hold * 1000:.2f} ms "
            f"(whole cleanup {total * 1000:.1f} ms, lock released between batches)"
        )
    size, evicted = flood(100_000, 200_000)
    print(
        f"store: flood of 200,000 distinct ids with IDEMPOTENCE_MAX_ENTRIES=100,000: {size:,} entries kept, "
        f"{evicted:,} evicted"
    )


if __name__ == "__main__":
    main()
