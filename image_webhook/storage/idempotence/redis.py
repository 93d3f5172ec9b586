"""The Redis store: the same claims, shared by every worker and every machine.

Redis expires the keys, so no cleanup thread runs and the key space stays bounded. When Redis cannot
answer, the request gets a 503 with Retry-After and nothing stays marked: the sender retries later,
and the job is neither dropped nor processed twice. The hard part is a command that times out on the
client but runs on the server anyway (Redis stalled, or its reply was lost); a plain `SET NX` then
either holds a claim for a request that got a 503, or makes the client's own retry find the key it set
itself: "Job déjà traité" for a job nobody processed. So:

- Each request claims with a token of its own, in ONE Lua script (CLAIM) that answers 1 when the key
  was free (it sets it) or already holds this token, 0 when another request's token holds it (the only
  "Job déjà traité"), and -1, touching nothing, when Redis runs it after its deadline.
- The deadline is the service's clock at sending + DEADLINE_SHARE x REDIS_TIMEOUT. A script that acts
  has run early enough for its reply to arrive before the client gives up; one that runs later (queued
  behind a stall, or sent on a connection the client has since closed) is a no-op.
- Running the script again with the same token is therefore harmless: after a timeout or a -1, the
  store asks again with a fresh deadline, up to ATTEMPTS times (about 3 x REDIS_TIMEOUT against a
  stalled Redis), and the answer says whether an earlier attempt's claim is ours. A stall shorter than
  the timeout only delays; a Redis slower than half the timeout on every command gets 503s. redis-py's
  own retries stay off: they would resend a stale deadline.
- When no attempt is answered, the request gets a 503. An attempt may still have run in time and lost
  its reply, so the token goes to a background thread that deletes the key if it still holds that token
  (compare-and-delete, safe to repeat) as soon as Redis answers: the sender's retry is then processed.
  A release that fails (the handling raised, Redis unreachable) goes the same way.

Assumptions. The service's and Redis's clocks agree well within half of REDIS_TIMEOUT: NTP keeps them
within milliseconds, and a skew above a quarter of it is logged once. A Redis clock behind by more than
(1 - DEADLINE_SHARE) x REDIS_TIMEOUT would let a late script act after the client gave up (undone only
if the background delete runs after it); one ahead by more than DEADLINE_SHARE x REDIS_TIMEOUT makes
every claim answer -1, so 503s. A script that reads TIME before writing needs effect replication: the
default from Redis 5, the only mode from Redis 7. A restarted Redis has forgotten the scripts: redis-py's
Script loads them again on NOSCRIPT (the script did not run). Left open, when a reply was lost: a worker
killed while a token waits for deletion leaves that claim until the window ends, and a sender's retry
that reaches Redis before the deletion is answered "Job déjà traité".
"""

from __future__ import annotations

import logging
import threading
import time
import uuid

import redis
from redis.backoff import NoBackoff
from redis.commands.core import Script
from redis.retry import Retry

from ...observability.logs import LOGGER
from ..errors import StoreUnavailable
from . import Claim

log = logging.getLogger(LOGGER)
ATTEMPTS = 3  # tries of one claim, each with a fresh deadline
DEADLINE_SHARE = 0.5  # of REDIS_TIMEOUT: the script's time to run; the rest is for its reply and clock skew
PAUSE = 0.05  # seconds between tries when Redis refuses connections (a timeout is its own pause)
BATCH = 100  # abandoned claims deleted per script call
# KEYS[1] the key; ARGV[1] this request's token; ARGV[2] the window (ms); ARGV[3] the deadline (Unix ms)
CLAIM = """
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
if now > tonumber(ARGV[3]) then return {-1, now} end
local held = redis.call('GET', KEYS[1])
if held == ARGV[1] then return {1, now} end
if held then return {0, now} end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return {1, now}
"""
# delete each key only if it still holds its token (another request may have claimed it since)
RELEASE = """
local deleted = 0
for i, key in ipairs(KEYS) do
  if redis.call('GET', key) == ARGV[i] then deleted = deleted + redis.call('DEL', key) end
end
return deleted
"""


class RedisStore:
    """Claims in Redis under `prefix`, each expiring after `window` seconds."""

    def __init__(self, *, url: str, prefix: str, window: float, timeout: float) -> None:
        self.client = redis.Redis.from_url(
            url,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            retry=Retry(NoBackoff(), 0),
        )
        self.prefix = prefix
        self.window_ms = int(window * 1000)
        self.timeout = timeout
        self._claim = self.client.register_script(CLAIM)
        self._release = self.client.register_script(RELEASE)
        self._abandoned = Abandoned(self._release, window)
        self._skew_logged = False

    def claim(self, key: str) -> Claim:
        name, token = self.prefix + key, uuid.uuid4().hex
        for attempt in range(ATTEMPTS):
            sent = time.time()
            deadline = int((sent + DEADLINE_SHARE * self.timeout) * 1000)
            try:
                code, now = self._claim(keys=[name], args=[token, self.window_ms, deadline])
            except (redis.ConnectionError, redis.TimeoutError) as exc:
                if not isinstance(exc, redis.TimeoutError) and attempt + 1 < ATTEMPTS:
                    time.sleep(PAUSE * (attempt + 1))
                continue
            except redis.RedisError:
                break
            self._check_clock(sent, now, time.time())
            if code >= 0:
                return Claim(True, token) if code else Claim(False)
        self._abandoned.add(name, token)  # an unanswered attempt may have claimed the key after all
        raise StoreUnavailable()

    def release(self, key: str, claim: Claim) -> bool:
        token = str(claim.token)
        try:
            return bool(self._release(keys=[self.prefix + key], args=[token]))
        except redis.RedisError:
            self._abandoned.add(self.prefix + key, token)
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

    def _check_clock(self, sent: float, now_ms: int, received: float) -> None:
        """Log once when Redis's clock (read by the script between `sent` and `received`) is off by more
        than a quarter of the timeout: the deadlines assume the clocks agree."""
        behind, ahead = sent - now_ms / 1000, now_ms / 1000 - received
        if max(behind, ahead) > self.timeout / 4 and not self._skew_logged:
            self._skew_logged = True
            log.warning(
                "⚠️ [Image Webhook] Horloge de Redis %s d'au moins %d ms sur celle du service",
                "en retard" if behind > 0 else "en avance",
                max(behind, ahead) * 1000,
                extra={"event": "clock_skew"},
            )


class Abandoned:
    """Claims of requests refused with a 503 (or whose release failed): a background thread deletes each
    key if it still holds the token, as soon as Redis answers or until the window has expired it."""

    def __init__(self, release: Script, window: float) -> None:
        self._release = release
        self._window = window
        self._pending: dict[tuple[str, str], float] = {}  # (key, token) -> when the window has expired it
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def add(self, key: str, token: str) -> None:
        with self._lock:
            self._pending[(key, token)] = time.monotonic() + self._window
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="redis-abandoned-claims", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        """Delete the pending claims until none is left (bounded by the window: expired ones are dropped)."""
        pause = PAUSE
        while True:
            with self._lock:
                now = time.monotonic()
                self._pending = {claim: until for claim, until in self._pending.items() if until > now}
                if not self._pending:
                    self._thread = None
                    return
                batch = list(self._pending)[:BATCH]
            try:
                deleted = self._release(keys=[key for key, _ in batch], args=[token for _, token in batch])
            except redis.TimeoutError:
                continue  # the timeout was the pause, and keeps a command queued in a stalled Redis
            except redis.RedisError:
                time.sleep(pause)
                pause = min(2 * pause, 1.0)
                continue
            pause = PAUSE
            with self._lock:
                for claim in batch:
                    self._pending.pop(claim, None)
            if deleted:  # a claim ran but its reply was lost
                log.warning(
                    "⚠️ [Image Webhook] %d revendication(s) de requêtes refusées supprimée(s) de Redis",
                    deleted,
                    extra={"event": "abandoned_claims"},
                )
