"""gunicorn's own lines (its errors, the access log) in the service's format: one record per line, text or JSON."""

import logging
import os

from gunicorn import glogging

from ..observability.logs import JsonFormatter, LineBuffer, one_line
from .master import RELOADER


class OneLineFormatter(logging.Formatter):
    """Another formatter's output with its line breaks escaped: gunicorn's text lines, tracebacks included."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def format(self, record):
        return one_line(self.inner.format(record))


class MasterOnly(logging.Filter):
    """Drops gunicorn's --reload warning in the workers, each of which logs it as it boots: the master, the
    process that set the logger up, logs it once for the service (server/master.py)."""

    def __init__(self):
        super().__init__()
        self.master = os.getpid()

    def filter(self, record):
        return record.msg != RELOADER or os.getpid() == self.master


class GunicornTextLogger(glogging.Logger):
    """gunicorn's logger with LOG_FORMAT=text: its usual lines, each record on one line (a traceback too)."""

    def setup(self, cfg):
        super().setup(cfg)
        for old in [f for f in self.error_log.filters if isinstance(f, MasterOnly)]:  # setup() again: SIGHUP
            self.error_log.removeFilter(old)
        self.error_log.addFilter(MasterOnly())
        self.names_headers = "{" in cfg.access_log_format  # a {name}i, {name}o or {name}e atom
        for handler in self.error_log.handlers + self.access_log.handlers:
            handler.setFormatter(self.line_formatter(handler.formatter or logging.Formatter()))
        for handler in self.access_log.handlers:
            if type(handler) is logging.StreamHandler:  # accesslog = "-": a line per request, written later
                buffered = LineBuffer(handler.stream)
                buffered.setFormatter(handler.formatter)
                self.access_log.removeHandler(handler)
                self.access_log.addHandler(buffered)

    def line_formatter(self, current):
        return OneLineFormatter(current)

    def atoms(self, resp, req, environ, request_time):
        """gunicorn's atoms, without the `{name}i`, `{name}o` and `{name}e` ones unless the format names one:
        those copy every request header and environ variable, per request (BENCHMARKS.md). The Basic user field
        is never written: a token typed as a user name (`curl -u TOKEN:`) would land in the log."""
        if self.names_headers:
            made = super().atoms(resp, req, environ, request_time)
        else:
            made = super().atoms(resp, (), Lookups(environ), request_time)
        made["u"] = "-"
        return made


class Lookups:
    """An environ for gunicorn's atoms(): its lookups answer, it has no items to copy."""

    __slots__ = ("environ",)

    def __init__(self, environ):
        self.environ = environ

    def get(self, key, default=None):
        return self.environ.get(key, default)

    def __getitem__(self, key):
        return self.environ[key]

    def items(self):
        return ()


class GunicornJsonLogger(GunicornTextLogger):
    """gunicorn's logger with LOG_FORMAT=json: its own messages and the access log as JSON lines."""

    def line_formatter(self, current):
        return JsonFormatter()

    def access(self, resp, req, environ, request_time):
        if not self.access_log_enabled:
            return
        method, path = environ.get("REQUEST_METHOD"), environ.get("PATH_INFO")
        self.access_log.info(
            "%s %s %s",
            method,
            path,
            resp.status_code,
            extra={
                "event": "access",
                "status": None,
                "method": method,
                "path": path,
                "http_status": resp.status_code,
                "request_id": next((value for name, value in resp.headers if name == "X-Request-ID"), None),
                "processing_time_ms": round(request_time.total_seconds() * 1000, 3),
                "remote": environ.get("REMOTE_ADDR", "-"),
            },
        )
