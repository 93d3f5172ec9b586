"""Idempotence: which terminal notifications (and signed messages) were already handled in the window."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Hashable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

if TYPE_CHECKING:
    from ..db import Database
    from ..metrics import Metrics
    from .memory import CleanupThread


class Claim(NamedTuple):
    """What claiming a key did: `new` is False when the key was already claimed (a duplicate)."""

    new: bool
    token: Hashable = None  # identifies this claim to `release`, so a newer claim is never dropped


class IdempotenceStore(Protocol):
    """Claims of keys for a window: `MemoryStore` (one process) and `RedisStore` (shared)."""

    def claim(self, key: str) -> Claim:
        """Atomically claim `key` unless it is claimed within the window."""
        ...

    def release(self, key: str, claim: Claim) -> bool:
        """Drop `claim` on `key` (its handling failed); False when the key no longer holds it."""
        ...

    def seen(self, key: str) -> bool:
        """Whether `key` is claimed within the window."""
        ...

    def not_ready(self) -> str | None:
        """Why the store cannot answer now, or None."""
        ...


@contextlib.contextmanager
def claimed(store: IdempotenceStore, key: str) -> Iterator[bool]:
    """Claim `key` for the block and yield whether the claim is new; an exception leaving the block
    releases the claim, so the sender's retry is handled."""
    claim = store.claim(key)
    try:
        yield claim.new
    except BaseException:
        if claim.new:
            store.release(key, claim)
        raise


def make_stores(
    settings: Mapping[str, Any], metrics: Metrics, clock: Callable[[], float]
) -> tuple[IdempotenceStore, IdempotenceStore]:
    """The job and message stores IDEMPOTENCE_BACKEND names (Redis namespaces them `job:` and `message:`)."""
    from .memory import MemoryStore
    from .redis import RedisStore

    if settings["IDEMPOTENCE_BACKEND"] == "redis":
        return tuple(  # type: ignore[return-value]
            RedisStore(
                url=settings["REDIS_URL"],
                prefix=settings["IDEMPOTENCE_KEY_PREFIX"] + namespace,
                window=settings["IDEMPOTENCE_WINDOW"],
                timeout=settings["REDIS_TIMEOUT"],
            )
            for namespace in ("job:", "message:")
        )
    jobs, messages = (
        MemoryStore(
            window=settings["IDEMPOTENCE_WINDOW"],
            max_entries=settings["IDEMPOTENCE_MAX_ENTRIES"],
            on_evict=metrics.evictions.inc,
            clock=clock,
        )
        for _ in range(2)
    )
    metrics.count_entries(lambda: len(jobs) + len(messages))
    return jobs, messages


def make_cleanup(
    settings: Mapping[str, Any], metrics: Metrics, stores: tuple[IdempotenceStore, ...], db: Database | None
) -> CleanupThread | None:
    """The thread that expires the memory stores' entries and purges old records, when there is anything to do."""
    from ..db.retention import purge
    from .memory import CleanupThread, MemoryStore

    memory = [store for store in stores if isinstance(store, MemoryStore)]
    chores = []
    if db is not None:
        days = {"delivery_days": settings["DELIVERY_RETENTION_DAYS"], "job_days": settings["JOB_RETENTION_DAYS"]}
        chores.append(lambda: purge(db, **days))
    if not memory and not chores:
        return None
    return CleanupThread(
        memory,
        settings["CLEANUP_INTERVAL"],
        chores=chores,
        on_run=lambda removed: metrics.cleanup_ran(removed, time.time()),
    )
