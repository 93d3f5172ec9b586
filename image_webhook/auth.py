"""Who may post: the spec's X-Webhook-Secret header and/or Standard Webhooks signatures.

Every credential a request presents must be valid; production also requires one accepted by the
mode (WEBHOOK_AUTH: secret, signature or any). Comparisons are constant-time; nothing is logged.
"""
import hmac

from standardwebhooks import Webhook
from werkzeug.exceptions import Unauthorized

SECRET_HEADER = "X-Webhook-Secret"
SIGNATURE_HEADERS = ("webhook-id", "webhook-timestamp", "webhook-signature")
MAX_MESSAGE_ID = 256


def matches_any(provided, secrets):
    """Compare `provided` with every secret in constant time (all are compared, whatever matches)."""
    provided = provided.encode("latin-1")  # WSGI header values are latin-1 strings
    results = [hmac.compare_digest(provided, secret.encode("utf-8")) for secret in secrets]
    return any(results)


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
        signed = self.verifiers and any(headers.get(name) is not None for name in SIGNATURE_HEADERS)
        if self.required and not (secret_ok or signed):
            raise Unauthorized("no accepted credential")
        return bool(signed)

    def verify_signature(self, headers, body):
        """Return the verified `webhook-id`, or raise 401: any malformed, stale or wrong signature."""
        message_id = headers.get("webhook-id", "")
        if not 0 < len(message_id) <= MAX_MESSAGE_ID:
            raise Unauthorized("bad webhook-id")
        signed = {name: headers.get(name, "") for name in SIGNATURE_HEADERS}
        for verifier in self.verifiers:
            try:
                verifier.verify(body, signed, json_parse=False)
                return message_id
            except Exception:  # the library raises ValueError, binascii.Error, UnicodeDecodeError... too
                continue
        raise Unauthorized("bad signature")
