"""Who may post: the spec's X-Webhook-Secret header and/or Standard Webhooks signatures.

Every credential a request presents must be valid; production also requires one accepted by the
mode (WEBHOOK_AUTH: secret, signature or any). Comparisons are constant-time; nothing is logged.
"""

import hashlib
import hmac
import os
from typing import Any

from standardwebhooks import Webhook
from werkzeug.datastructures import Authorization
from werkzeug.exceptions import Unauthorized
from werkzeug.security import check_password_hash, generate_password_hash

from .throttle import LoginThrottle

SECRET_HEADER = "X-Webhook-Secret"
SIGNATURE_HEADERS = ("webhook-id", "webhook-timestamp", "webhook-signature")
# the same headers under the names Svix's client libraries send: svix-id, svix-timestamp, svix-signature
SVIX_HEADERS = tuple(name.replace("webhook-", "svix-") for name in SIGNATURE_HEADERS)
MAX_MESSAGE_ID = 256


def matches_any(provided, secrets):
    """Compare `provided` with every secret in constant time (all are compared, whatever matches)."""
    provided = provided.encode("latin-1")  # WSGI header values are latin-1 strings
    results = [hmac.compare_digest(provided, secret.encode("utf-8")) for secret in secrets]
    return any(results)


def signature_headers(headers):
    """The request's signature headers under their webhook-* names, read from the webhook-* or the svix-*
    set; {} if it sends neither. Raise 401 if it sends both and they differ (a mixed set included)."""
    standard = {name: value for name in SIGNATURE_HEADERS if (value := headers.get(name)) is not None}
    svix = {
        name: value
        for name, alias in zip(SIGNATURE_HEADERS, SVIX_HEADERS, strict=True)
        if (value := headers.get(alias)) is not None
    }
    if standard and svix and standard != svix:
        raise Unauthorized("webhook-* and svix-* headers differ")
    return standard or svix


class Authenticator:
    """Checks a request's credentials: the header before the body is read, the signature after."""

    def __init__(self, *, mode, secrets, signing_secrets, required):
        self.secrets = tuple(secrets) if mode in ("secret", "any") else ()
        self.verifiers = tuple(Webhook(s) for s in signing_secrets) if mode in ("signature", "any") else ()
        self.required = required

    def check_headers(self, headers):
        """Raise 401 unless the headers can authenticate the request; return whether a signature
        remains to be verified against the body."""
        provided = headers.get(SECRET_HEADER)
        secret_ok = provided is not None and bool(self.secrets) and matches_any(provided, self.secrets)
        if provided is not None and self.secrets and not secret_ok:
            raise Unauthorized("wrong secret")
        signed = bool(self.verifiers) and bool(signature_headers(headers))
        if self.required and not (secret_ok or signed):
            raise Unauthorized("no accepted credential")
        return signed

    def verify_signature(self, headers, body):
        """Return the verified message id (webhook-id or svix-id), or raise 401: any malformed, stale or
        wrong signature."""
        signed = {name: "" for name in SIGNATURE_HEADERS} | signature_headers(headers)
        message_id = signed["webhook-id"]
        if not 0 < len(message_id) <= MAX_MESSAGE_ID:
            raise Unauthorized("bad webhook-id")
        for verifier in self.verifiers:
            try:
                verifier.verify(body, signed, json_parse=False)
                return message_id
            except Exception:  # the library raises ValueError, binascii.Error, UnicodeDecodeError... too
                continue
        raise Unauthorized("bad signature")


class BearerTokens:
    """Who may read the jobs: `Authorization: Bearer <token>` against JOBS_API_TOKENS, in constant time.
    Without tokens: open in development, closed in production (`required`)."""

    def __init__(self, tokens, *, required):
        self.tokens = tuple(tokens)
        self.required = required

    def allows(self, authorization):
        if not self.tokens:
            return not self.required
        scheme, _, token = (authorization or "").partition(" ")
        return scheme.lower() == "bearer" and bool(token) and matches_any(token.strip(), self.tokens)


class Challenge(Unauthorized):
    """401 with its WWW-Authenticate challenge: Bearer for the read API, Basic for the page's login."""

    def __init__(self, challenge: str) -> None:
        super().__init__()
        self.challenge = challenge

    def get_headers(self, environ: Any = None, scope: Any = None) -> list[tuple[str, str]]:
        return [*super().get_headers(environ, scope), ("WWW-Authenticate", self.challenge)]


class BasicUsers:
    """HTTP Basic against DASHBOARD_USERS, `required` in production (open otherwise). A hash is checked whatever
    the name, so the time does not tell which names exist; a pair that passed is remembered (an HMAC under a key
    of this process), so that the page's polling does not pay a scrypt every second. The hashes a client may cost
    are bounded by `throttle` (intake/throttle.py): over budget, Throttled (429) before any hash."""

    def __init__(self, users: dict[str, str], *, required: bool, throttle: LoginThrottle | None = None) -> None:
        self.users = dict(users)
        self.required = required
        self.throttle = throttle or LoginThrottle()
        self._key = os.urandom(32)
        self._verified: set[bytes] = set()
        self._decoy: str | None = None

    def allows(self, credentials: Authorization | None, address: str | None = None) -> bool:
        """Whether `credentials` name a user with the right password; raise Throttled when `address` (the
        client's) or this process spent its budget of hashes."""
        if not self.required:
            return True
        if credentials is None or credentials.type != "basic" or not self.users:
            return False
        name, password = credentials.username or "", credentials.password or ""
        pair = f"{len(name)}:{name}{password}".encode("utf-8", "surrogatepass")
        seal = hmac.new(self._key, pair, hashlib.sha256).digest()
        if seal in self._verified:
            return True
        hashed = self.users.get(name)
        decoy = self.decoy()  # made before admission: its own hash is not a login's
        self.throttle.admit(address)
        passed = False
        try:
            passed = check_password_hash(hashed or decoy, password) and hashed is not None
        finally:
            self.throttle.release(address, failed=not passed)
        if not passed:
            return False
        if len(self._verified) >= 64:  # bounded: a few people, a few passwords
            self._verified.clear()
        self._verified.add(seal)
        return True

    def decoy(self) -> str:
        """A hash no password matches, made like the users' ones (same method and cost)."""
        if self._decoy is None:
            method = next(iter(self.users.values()), "scrypt").split("$")[0]
            self._decoy = generate_password_hash(os.urandom(16).hex(), method=method)
        return self._decoy
