"""The idempotence store on Redis, shared by every worker and every machine.

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

from store import Store

RETRY_AFTER = 5  # seconds the sender is asked to wait while Redis is unavailable
# delete the key only if it still holds our token (another request may have claimed it since)
RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0"


class StoreUnavailable(ServiceUnavailable):
    """Redis did not answer in time: 503 with Retry-After."""

    def __init__(self):
        super().__init__("Stockage d'idempotence indisponible, réessayez plus tard", retry_after=RETRY_AFTER)


class RedisStore(Store):
    """Claims in Redis under `prefix`, each expiring after `window` seconds."""

    def __init__(self, *, url, prefix, window, timeout):
        # bounded: a slow or absent Redis costs at most about 3 x timeout, far under the backend's 30 s
        self.client = redis.Redis.from_url(
            url, socket_timeout=timeout, socket_connect_timeout=timeout,
            retry=Retry(ExponentialBackoff(cap=0.2, base=0.02), retries=2),
        )
        self.prefix = prefix
        self.window_ms = int(window * 1000)
        self._release = self.client.register_script(RELEASE)

    def claim(self, key):
        token = uuid.uuid4().hex
        try:
            return token if self.client.set(self.prefix + key, token, nx=True, px=self.window_ms) else None
        except redis.RedisError:
            raise StoreUnavailable() from None

    def release(self, key, token):
        try:
            self._release(keys=[self.prefix + key], args=[token])
        except redis.RedisError:
            raise StoreUnavailable() from None

    def seen(self, key):
        """Whether `key` was claimed within the window (False when Redis cannot tell: it only
        decides whether a progress notification is logged as late)."""
        try:
            return bool(self.client.exists(self.prefix + key))
        except redis.RedisError:
            return False

    def not_ready(self):
        try:
            self.client.ping()
        except redis.RedisError:
            return "Redis ne répond pas"
        return None
