"""The gunicorn internals the server edge relies on: an upgrade that drops or renames one fails at start, named.

The head-reading worker subclasses gunicorn's gthread worker and calls into its parser, its logger and its
arbiter; none of these is a public API, so `missing()` checks each name against the installed gunicorn.
gunicorn.conf.py refuses to start when one is gone, and tests/test_gunicorn_internals.py fails naming it.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Mapping
from typing import Any

# object path: the attributes the edge reads, calls or overrides on it
NAMES: dict[str, tuple[str, ...]] = {
    "gunicorn.workers.gthread": ("STOP_KEEPALIVE_LINGER", "TConn", "ThreadWorker"),
    "gunicorn.workers.gthread.ThreadWorker": (
        "accept",
        "enqueue_req",
        "finish_request",
        "handle_error",
        "handle_quit",
        "init_signals",
        "murder_keepalived",
        "murder_pending",
        "on_client_socket_readable",
        "wait_for_and_dispatch_events",
        "_keepalive_after",
    ),
    "gunicorn.workers.gthread.TConn": ("init",),
    "gunicorn.http.unreader.Unreader": ("take_buffered", "unread"),
    "gunicorn.http.message": ("DEFAULT_MAX_HEADERFIELD_SIZE", "MAX_HEADERS", "MAX_REQUEST_LINE"),
    "gunicorn.http2.negotiation": ("prior_knowledge_allowed",),
    "gunicorn.util": ("close", "write_nonblock"),
    "gunicorn.http.wsgi": ("Response", "default_environ"),
    "gunicorn.http.errors": (
        "ConfigurationProblem",
        "ExpectationFailed",
        "ForbiddenProxyRequest",
        "InvalidHeader",
        "InvalidHeaderName",
        "InvalidResponseHeader",
        "InvalidResponseHeaderName",
        "LimitRequestHeaders",
        "LimitRequestLine",
        "ParseException",
        "UnsupportedTransferCoding",
    ),
    "gunicorn.glogging.Logger": ("access", "access_log_enabled", "atoms", "setup"),
}
# method path: the instance attributes the edge uses, which that method must still assign
ASSIGNED: dict[str, tuple[str, ...]] = {
    "gunicorn.workers.base.Worker.__init__": ("alive", "cfg", "log"),
    "gunicorn.workers.gthread.ThreadWorker.__init__": ("keepalived_conns", "method_queue", "nr_conns"),
    "gunicorn.workers.gthread.ThreadWorker.init_process": ("poller", "tpool"),
    "gunicorn.workers.gthread.TConn.__init__": ("client", "data_ready", "parser", "sock"),
    "gunicorn.glogging.Logger.__init__": ("access_log", "error_log"),
    "gunicorn.arbiter.Arbiter.__init__": ("SIG_QUEUE",),
}
# the edge's own classes: every method they define that gunicorn does not have is listed here, so a method
# gunicorn renamed (the override no longer called) is caught too
OVERRIDES: dict[str, tuple[str, frozenset[str]]] = {
    "image_webhook.server.worker.HeadReadingWorker": (
        "gunicorn.workers.gthread.ThreadWorker",
        frozenset({"start_head", "read_head", "add_to_head", "hand_over", "drop", "linger", "drain"}),
    ),
    "image_webhook.server.loggers.GunicornTextLogger": ("gunicorn.glogging.Logger", frozenset({"line_formatter"})),
    "image_webhook.server.loggers.GunicornJsonLogger": ("gunicorn.glogging.Logger", frozenset({"line_formatter"})),
}


def missing(
    names: Mapping[str, tuple[str, ...]] = NAMES,
    assigned: Mapping[str, tuple[str, ...]] = ASSIGNED,
    overrides: Mapping[str, tuple[str, frozenset[str]]] = OVERRIDES,
) -> list[str]:
    """Every internal the installed gunicorn lacks, as `path.attribute` (an empty list: all there)."""
    gone = []
    for path, attributes in names.items():
        found = _resolve(path)
        gone += [f"{path}.{name}" for name in attributes if found is None or not hasattr(found, name)]
    for path, attributes in assigned.items():
        method = _resolve(path)
        source = inspect.getsource(method) if method is not None else ""
        gone += [f"{path} (self.{name} = ...)" for name in attributes if f"self.{name} =" not in source]
    for path, (base_path, own) in overrides.items():
        ours, base = _resolve(path), _resolve(base_path)
        defined = [name for name, value in vars(ours).items() if callable(value) and not name.startswith("__")]
        gone += [f"{base_path}.{name}" for name in defined if name not in own and not hasattr(base, name)]
    return gone


def _resolve(path: str) -> Any:
    """The module, class or function a dotted path names, or None."""
    parts = path.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            found: Any = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for name in parts[cut:]:
            found = getattr(found, name, None)
        return found
    return None
