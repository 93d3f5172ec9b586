"""Logging: the spec's emoji lines (LOG_FORMAT=text) or one JSON object per line (json), on stderr;
gunicorn's own lines follow the same format, one record per line."""

import json
import logging
import sys
import time

from flask.logging import default_handler
from gunicorn import glogging

from .context import current_request

LOGGER = "image_webhook"  # the service's logger; every module logs through it
FIELDS = ("event", "job_id", "status", "outcome", "processing_time_ms", "request_id")
ACCESS_FIELDS = ("method", "path", "http_status", "remote")  # gunicorn's access lines
# Every character str.splitlines() ends a line at, and its JSON escape written instead: a record stays one
# line for any reader, and a logged value (an error message, a header) cannot forge another record.
LINE_BREAKS = str.maketrans({char: json.dumps(char)[1:-1] for char in "\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029"})
_handler = None


def one_line(text):
    """`text` with its line breaks escaped; in a JSON document they can only be inside strings, where the
    escapes read back as the same characters."""
    return text if text.isprintable() else text.translate(LINE_BREAKS)  # isprintable(): the common case, fast


class LazyJson:
    """Formats its value as JSON only if the log record is actually written."""

    __slots__ = ("value",)

    def __init__(self, value):
        self.value = value

    def __str__(self):
        return json.dumps(self.value, ensure_ascii=False)


class RequestContext(logging.Filter):
    """Stamps each record, in the thread that logs it, with what its request knows so far."""

    def filter(self, record):
        state = current_request()
        for name in ("request_id", "job_id", "status", "outcome"):
            if getattr(record, name, None) is None:
                setattr(record, name, getattr(state, name) if state is not None else None)
        return True


class TextFormatter(logging.Formatter):
    """`2025-10-21 16:45:00,123 INFO [request id] <message>`, the date formatted once a second; a traceback
    follows the message on the same line, its line breaks escaped like the message's."""

    def __init__(self):
        super().__init__("%(asctime)s %(levelname)s [%(request_id)s] %(message)s")
        self._second = None
        self._date = ""

    def formatTime(self, record, datefmt=None):
        second = int(record.created)
        if second != self._second:  # a race only formats the same second twice
            self._date, self._second = time.strftime("%Y-%m-%d %H:%M:%S", self.converter(second)), second
        return f"{self._date},{int(record.msecs):03d}"

    def format(self, record):
        if getattr(record, "request_id", None) is None:
            record.request_id = "-"
        return one_line(super().format(record))


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message (the same emoji text), the FIELDS and, for an
    exception, its traceback in `exc_info`."""

    def format(self, record):
        line = {
            "time": record.created,
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        line.update((name, getattr(record, name, None)) for name in FIELDS)
        line.update((name, getattr(record, name)) for name in ACCESS_FIELDS if hasattr(record, name))
        if record.exc_info or getattr(record, "exc_text", None):
            line["exc_info"] = record.exc_text or self.formatException(record.exc_info)
        if record.stack_info:
            line["stack_info"] = self.formatStack(record.stack_info)
        # ensure_ascii=False keeps the French and the emoji readable, but leaves U+0085, U+2028, U+2029 raw
        return one_line(json.dumps(line, ensure_ascii=False))


def formatter(log_format):
    return JsonFormatter() if log_format == "json" else TextFormatter()


def configure(level="INFO", log_format="text", stream=None):
    """Give the service's logger its handler (once per process, writing to `stream`, default
    stderr), its format and its level."""
    global _handler
    # No caller look-up (file, line) for records, as the logging HOWTO's "Optimization" section says:
    # 1.1 µs a record, about 5 % of a request (BENCHMARKS.md). Process and thread stay: gunicorn uses them.
    logging._srcfile = None
    logger = logging.getLogger(LOGGER)
    if _handler is None:
        _handler = logging.StreamHandler(sys.stderr if stream is None else stream)
        _handler.addFilter(RequestContext())
        logger.addHandler(_handler)
    # Flask adds its multi-line plain-text handler if app.logger (this logger) is first used with no handler
    # (its log_exception writes the traceback of an unexpected exception): ours is that handler.
    logger.removeHandler(default_handler)
    _handler.setFormatter(formatter(log_format))
    logger.setLevel(level)
    return logger


def logger():
    """The service's logger."""
    return logging.getLogger(LOGGER)


class OneLineFormatter(logging.Formatter):
    """Another formatter's output with its line breaks escaped: gunicorn's text lines, tracebacks included."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def format(self, record):
        return one_line(self.inner.format(record))


class GunicornTextLogger(glogging.Logger):
    """gunicorn's logger with LOG_FORMAT=text: its usual lines, each record on one line (a traceback too)."""

    def setup(self, cfg):
        super().setup(cfg)
        for handler in self.error_log.handlers + self.access_log.handlers:
            handler.setFormatter(self.line_formatter(handler.formatter or logging.Formatter()))

    def line_formatter(self, current):
        return OneLineFormatter(current)


class GunicornJsonLogger(GunicornTextLogger):
    """gunicorn's logger with LOG_FORMAT=json: its own messages and the access log as JSON lines."""

    def line_formatter(self, current):
        return JsonFormatter()

    def access(self, resp, req, environ, request_time):
        if not (self.cfg.accesslog or self.cfg.logconfig or self.cfg.logconfig_dict or self.cfg.syslog):
            return
        atoms = self.atoms(resp, req, environ, request_time)
        self.access_log.info(
            "%s %s %s",
            atoms["m"],
            atoms["U"],
            atoms["s"],
            extra={
                "event": "access",
                "status": None,
                "method": atoms["m"],
                "path": atoms["U"],
                "http_status": resp.status_code,
                "request_id": dict(resp.headers).get("X-Request-ID"),
                "processing_time_ms": round(request_time.total_seconds() * 1000, 3),
                "remote": atoms["h"],
            },
        )
