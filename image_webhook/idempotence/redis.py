"""The Redis store: the same claims, shared by every worker and every machine.

A claim is one atomic `SET key token NX PX window`; Redis expires the keys, so no cleanup thread
runs and the key space stays bounded. Releasing deletes the key only if it still holds this
request's token. When Redis cannot answer, the request gets a 503 with Retry-After and nothing is
marked: the sender retries later, and the job is neither dropped nor processed twice.
"""
import uuid

import redis
from redis.backoff import ExponentialBackoff
from redis.retry import Retry
from werkzeug.exceptions import ServiceUnavailable

from . import Claim

RETRY_AFTER = 5  # seconds the sender is asked to wait while Redis is unavailable
# delete the key only if it still holds our token (another request may have claimed it since)
RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0"


class StoreUnavailable(ServiceUnavailable):
    """Redis did not answer in time: 503 with Retry-After."""

    def __init__(self):
        super().__init__("Stockage d'idempotence indisponible, réessayez plus tard", retry_after=RETRY_AFTER)


class RedisStore:
    """Claims in Redis under `prefix`, each expiring after `window` seconds."""

    def __init__(self, *, url: str, prefix: str, window: float, timeout: float) -> None:
        # bounded: a slow or absent Redis costs at most about 3 x timeout, far under the backend's 30 s
        self.client = redis.Redis.from_url(
            url, socket_timeout=timeout, socket_connect_timeout=timeout,
            retry=Retry(ExponentialBackoff(cap=0.2, base=0.02), retries=2),
        )
        self.prefix = prefix
        self.window_ms = int(window * 1000)
        self._release = self.client.register_script(RELEASE)

    def claim(self, key: str) -> Claim:
        token = uuid.uuid4().hex
        try:
            new = bool(self.client.set(self.prefix + key, token, nx=True, px=self.window_ms))
        except redis.RedisError:
            raise StoreUnavailable() from None
        return Claim(True, token) if new else Claim(False)

    def release(self, key: str, claim: Claim) -> bool:
        try:
            return bool(self._release(keys=[self.prefix + key], args=[claim.token]))
        except redis.RedisError:
            raise StoreUnavailable() from None

    def seen(self, key: str) -> bool:
        """Whether `key` was claimed within the window (False when Redis cannot tell: it only
        decides whether a progress notification is logged as late)."""
        try:
            return bool(self.client.exists(self.prefix + key))
        except redis.RedisError:
            return False

    def not_ready(self) -> str | None:
        try:
            self.client.ping()
        except redis.RedisError:
            return "Redis ne répond pas"
        return None
