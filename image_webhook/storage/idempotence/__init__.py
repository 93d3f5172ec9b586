"""Idempotence: which terminal notifications (and signed messages) were already handled in the window."""

from __future__ import annotations

import contextlib
from collections.abc import Hashable, Iterator
from typing import NamedTuple, Protocol


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
