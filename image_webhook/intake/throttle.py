"""What a failed login may cost: a budget of failures per client address and of password hashes per process.

A Basic login is checked with scrypt (~75 ms of CPU, constant time, for unknown names too): without a bound, a
few connections sending wrong passwords keep the cores busy and the webhook waits behind them. Over budget, a
login is answered 429 at once, without hashing; the buckets refill, so the real user gets in again within
seconds of the flood's end (and one who already logged in is recognised without a hash, never throttled).
"""

from __future__ import annotations

import ipaddress
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable

from werkzeug.exceptions import TooManyRequests

from ..domain.values import Outcome

TOO_MANY = "Trop de tentatives de connexion, réessayez plus tard"


class Throttled(TooManyRequests):
    """429 with Retry-After: this login was not checked (its address or the process is over budget)."""

    outcome = Outcome.UNAUTHORIZED  # a refused login, as its 401 is counted

    def __init__(self, wait: float) -> None:
        super().__init__(TOO_MANY, retry_after=max(1, math.ceil(wait)))  # werkzeug writes Retry-After


class Bucket:
    """A token bucket: `burst` tokens, one more every `interval` seconds; `take` spends one."""

    __slots__ = ("tokens", "updated")

    def __init__(self, burst: float, now: float) -> None:
        self.tokens, self.updated = burst, now

    def wait(self, burst: float, interval: float, now: float) -> float:
        """Seconds until a token is there (0: one is there now), the bucket refilled up to `now`."""
        self.tokens = min(burst, self.tokens + (now - self.updated) / interval)
        self.updated = now
        return 0.0 if self.tokens >= 1 else (1 - self.tokens) * interval

    def take(self) -> None:
        self.tokens -= 1


def client_key(address: str | None) -> str:
    """The address a budget is kept for: the IPv4 address, an IPv6 address's /64 (one host holds a whole /64)."""
    try:
        parsed = ipaddress.ip_address(address or "")
    except ValueError:
        return address or ""
    if isinstance(parsed, ipaddress.IPv6Address):
        mapped = parsed.ipv4_mapped
        return str(mapped) if mapped else str(ipaddress.ip_network(f"{parsed}/64", strict=False))
    return str(parsed)


class LoginThrottle:
    """Per client address, `burst` failed logins then one every `interval` seconds; per process, at most
    `hashes` hash checks in a burst then `hash_rate` a second, and `concurrent` at once. At most `max_addresses`
    addresses are remembered (the oldest forgotten first): the memory stays bounded whoever floods."""

    def __init__(
        self,
        *,
        burst: int = 5,
        interval: float = 1.0,
        hashes: int = 10,
        hash_rate: float = 2.0,
        concurrent: int = 1,
        max_addresses: int = 4096,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.burst, self.interval = burst, interval
        self.hashes, self.hash_interval = hashes, 1 / hash_rate
        self.max_addresses = max_addresses
        self.clock = clock
        self._lock = threading.Lock()
        self._checks = threading.BoundedSemaphore(concurrent)
        self._failures: OrderedDict[str, Bucket] = OrderedDict()
        self._process = Bucket(hashes, clock())

    def admit(self, address: str | None) -> None:
        """Raise Throttled unless a hash may be checked now for `address` (its token taken: call `release`)."""
        key, now = client_key(address), self.clock()
        with self._lock:
            bucket = self._failures.get(key)
            wait = bucket.wait(self.burst, self.interval, now) if bucket is not None else 0.0
            wait = wait or self._process.wait(self.hashes, self.hash_interval, now)
            if wait:
                raise Throttled(wait)
            if not self._checks.acquire(blocking=False):  # another thread is hashing: not one more core busy
                raise Throttled(1)
            self._process.take()

    def release(self, address: str | None, *, failed: bool) -> None:
        """The hash admitted for `address` is done; a failure spends one of the address's tokens."""
        self._checks.release()
        if not failed:
            return
        key, now = client_key(address), self.clock()
        with self._lock:
            bucket = self._failures.pop(key, None) or Bucket(self.burst, now)
            bucket.wait(self.burst, self.interval, now)
            bucket.take()
            self._failures[key] = bucket  # the newest at the end
            while len(self._failures) > self.max_addresses:
                self._failures.popitem(last=False)

    def tracked(self) -> int:
        """How many addresses have a budget in memory."""
        return len(self._failures)
