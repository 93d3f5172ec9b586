"""gunicorn's own errors (malformed requests, limits, head timeouts) answered as the service's JSON errors."""

from __future__ import annotations

import json
import socket
from datetime import datetime
from ssl import SSLError
from typing import Any

from gunicorn import util
from gunicorn.http import errors
from gunicorn.http.wsgi import Response, default_environ

from ..intake.body import ONLY_CHUNKED


class HeadTimeout(errors.ParseException):
    """The request head was not complete within the header timeout."""

    def __str__(self) -> str:
        return "request head timeout"


# gunicorn's status for each of its errors (Worker.handle_error), looked up along the exception's MRO: any other
# ParseException is a 400 as gunicorn answers (but InvalidProxyHeader, a 500 with a traceback there: the proxy's
# fault). None: a header the application tried to send, a 500 like any application error.
ERRORS: dict[type[BaseException], tuple[int, str, str] | None] = {
    HeadTimeout: (408, "Request Timeout", "En-têtes de requête incomplets ou trop lents à arriver"),
    errors.InvalidResponseHeader: None,
    errors.InvalidResponseHeaderName: None,
    errors.LimitRequestLine: (414, "URI Too Long", "Ligne de requête trop longue"),
    errors.LimitRequestHeaders: (431, "Request Header Fields Too Large", "En-têtes de requête trop volumineux"),
    errors.ExpectationFailed: (417, "Expectation Failed", "Valeur de l'en-tête Expect non prise en charge"),
    errors.ForbiddenProxyRequest: (403, "Forbidden", "Requête refusée"),
    SSLError: (403, "Forbidden", "Requête refusée"),
    errors.UnsupportedTransferCoding: (501, "Not Implemented", ONLY_CHUNKED),
    errors.ConfigurationProblem: (500, "Internal Server Error", "Erreur de configuration du serveur"),
    errors.ParseException: (400, "Bad Request", "Requête HTTP mal formée"),
}
UNEXPECTED = (500, "Internal Server Error", "Erreur inattendue du serveur")


def json_error(status: int, reason: str, message: str) -> bytes:
    """A whole HTTP/1.1 response with the service's JSON error body (never the client's bytes)."""
    body = json.dumps({"error": reason, "message": message}, ensure_ascii=False, separators=(",", ":")).encode()
    return (
        f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json; charset=utf-8\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode("latin-1") + body


def answer_error(worker: Any, req: Any, client: socket.socket, addr: Any, exc: BaseException) -> None:
    """gunicorn's status, logs and access log for one of its own errors (Worker.handle_error), with a JSON body."""
    started = datetime.now()
    addr = addr or ("", -1)  # a unix socket
    known = next((ERRORS[cls] for cls in type(exc).__mro__ if cls in ERRORS), None)
    if known:
        worker.log.warning("Invalid request from ip=%s: %s", addr[0], exc)
    elif hasattr(req, "uri"):
        worker.log.exception("Error handling request %s %s", getattr(req, "method", ""), req.uri)
    else:
        worker.log.exception("Error handling request (no URI read)")
    status, reason, message = known or UNEXPECTED
    if req is None and isinstance(exc, (errors.InvalidHeader, errors.InvalidHeaderName)):
        req = getattr(exc, "req", None)  # for the access log, as gunicorn does
    payload = json_error(status, reason, message)
    if req is not None:
        environ = default_environ(req, client, worker.cfg)
        environ["REMOTE_ADDR"], environ["REMOTE_PORT"] = addr[0], str(addr[1])
        resp = Response(req, client, worker.cfg)
        resp.status, resp.sent = f"{status} {reason}", len(payload)  # gunicorn logs 0 bytes
        worker.log.access(resp, req, environ, datetime.now() - started)
    try:
        util.write_nonblock(client, payload)
    except Exception:  # best effort: the client may be gone, or not reading
        worker.log.debug("Failed to send error message.")
