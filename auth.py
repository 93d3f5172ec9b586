"""Authentication of the sender, from the request headers only (the body is not read before it passes)."""
import hmac

from werkzeug.exceptions import Unauthorized

SECRET_HEADER = "X-Webhook-Secret"


def matches_any(provided, secrets):
    """Compare `provided` with every secret in constant time (all are compared, whatever matches)."""
    provided = provided.encode("latin-1")  # WSGI header values are latin-1 strings
    results = [hmac.compare_digest(provided, secret.encode("utf-8")) for secret in secrets]
    return any(results)


def authenticate(headers, *, secrets, required):
    """Raise Unauthorized (401) unless the X-Webhook-Secret header is acceptable.

    A sent header must match a configured secret; with `required` (production) it must be sent.
    """
    provided = headers.get(SECRET_HEADER)
    if provided is None:
        if required:
            raise Unauthorized("missing secret header")
        return
    if secrets and not matches_any(provided, secrets):
        raise Unauthorized("wrong secret")
