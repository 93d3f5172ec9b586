"""Logging: the spec's emoji lines (LOG_FORMAT=text) or one JSON object per line (json), on stderr,
written in batches by one background thread; gunicorn's own lines follow the same format."""

import atexit
import collections
import json
import logging
import sys
import threading
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
_writer = None


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


class BatchWriter(logging.Handler):
    """Request threads only append their records; one thread formats and writes them every `interval`
    seconds (at once for an error), in one write.

    Writing each line from the request threads (a system call, a GIL hand-off per line) cost a third
    of the service's throughput under gunicorn's threads (BENCHMARKS.md).
    """

    def __init__(self, stream, interval=0.1):
        super().__init__()
        self.stream = stream
        self.interval = interval
        self._pending: collections.deque[logging.LogRecord] = collections.deque()
        self._wake = threading.Event()
        self._flushing = threading.Lock()
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="log-writer", daemon=True)
        self._thread.start()

    def handle(self, record):
        # no handler lock: deque.append is atomic, and emit() does nothing else
        if self.filter(record):
            self.emit(record)
        return record

    def emit(self, record):
        if record.exc_info:  # format the traceback while its frames are the request's
            record.exc_text = logging.Formatter().formatException(record.exc_info)
            record.exc_info = None
        self._pending.append(record)
        if record.levelno >= logging.ERROR:
            self._wake.set()

    def flush(self):
        with self._flushing:  # the writer thread and a worker's exit may flush at once
            lines = []
            while True:
                try:
                    record = self._pending.popleft()
                except IndexError:
                    break
                try:
                    lines.append(self.format(record) + "\n")
                except Exception:
                    self.handleError(record)
            self._write(lines)

    def _write(self, lines):
        if lines:
            try:
                self.stream.write("".join(lines))
                self.stream.flush()
            except Exception:
                pass  # nowhere left to report a failing stderr

    def _run(self):
        while not self._stopping:
            self._wake.wait(self.interval)
            self._wake.clear()
            self.flush()

    def close(self):
        """Write what is pending and stop the thread."""
        self._stopping = True
        self._wake.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(5)
        self.flush()
        super().close()


def formatter(log_format):
    return JsonFormatter() if log_format == "json" else TextFormatter()


def configure(level="INFO", log_format="text", stream=None):
    """Give the service's logger its handler (once per process, writing to `stream`, default
    stderr), its format and its level."""
    global _writer
    # Records need no caller (file, line): not looking it up saves a third of a record's cost (the
    # "Optimization" section of the logging HOWTO). Process and thread stay: gunicorn's format uses them.
    logging._srcfile = None
    logger = logging.getLogger(LOGGER)
    if _writer is None:
        _writer = BatchWriter(sys.stderr if stream is None else stream)
        _writer.addFilter(RequestContext())
        atexit.register(_writer.close)
        logger.addHandler(_writer)
    # Flask adds its multi-line plain-text handler if app.logger (this logger) is first used with no handler
    # (its log_exception writes the traceback of an unexpected exception): the writer is that handler.
    logger.removeHandler(default_handler)
    _writer.setFormatter(formatter(log_format))
    logger.setLevel(level)
    return logger


def logger():
    """The service's logger."""
    return logging.getLogger(LOGGER)


def flush():
    """Write the pending lines now (before a worker exits)."""
    if _writer is not None:
        _writer.flush()


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
