"""Logging: the spec's emoji lines (LOG_FORMAT=text) or one JSON object per line (json), on stderr, one
record per line, written by a thread of their own (gunicorn's lines: server/loggers.py)."""

import json
import logging
import os
import sys
import threading
import time
import weakref

from flask.logging import default_handler

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


class LineBuffer(logging.Handler):
    """Formats each record in the thread that logs it and keeps the line; a thread of its own writes the kept
    lines every `interval` seconds in one write, at once after an error record.

    A write from a request thread gives up the GIL, and taking it back behind the other threads cost the
    service a fifth of its throughput under gunicorn's threads (BENCHMARKS.md). What a SIGKILL loses: the
    last `interval` of lines; an exit (gunicorn's worker_exit, logging.shutdown at exit) flushes them."""

    def __init__(self, stream, interval=0.05):
        super().__init__()
        self.stream = stream
        self.interval = interval
        self._lines = []
        self._writing = threading.Lock()  # one flush at a time, so batches are written in order
        self._pending = threading.Event()  # a first line is kept: the writer wakes (idle, it sleeps for good)
        self._urgent = threading.Event()  # an error line: no waiting out the interval
        self._thread = None
        _buffers.add(self)

    def emit(self, record):
        try:
            line = self.format(record)
        except Exception:
            self.handleError(record)
            return
        first = not self._lines  # Handler.handle holds the handler's lock around emit(), and flush() swaps under it
        self._lines.append(line + "\n")
        if self._thread is None:  # this process's first line
            self._thread = threading.Thread(target=self._run, name="log-writer", daemon=True)
            self._thread.start()
        if record.levelno >= logging.ERROR:
            self._urgent.set()
        if first:
            self._pending.set()

    def flush(self):
        # The handler's lock first, then the writing turn, as logging.shutdown() takes them (it holds the first
        # around flush()): the other order deadlocked a worker exiting while its writer thread flushed. The
        # handler's lock is let go before writing, so logging threads never wait for the stream.
        self.acquire()
        try:
            self._writing.acquire()  # batches are written in the order they were taken
            lines, self._lines = self._lines, []
        finally:
            self.release()
        try:
            if lines:
                self.stream.write("".join(lines))
                self.stream.flush()
        except (OSError, ValueError):
            pass  # stderr closed or gone: nowhere left to say so
        finally:
            self._writing.release()

    def close(self):
        self.flush()
        super().close()

    def _run(self):
        while True:
            self._pending.wait()
            self._pending.clear()
            self._urgent.wait(self.interval)  # the lines of the next `interval` join this write
            self._urgent.clear()
            self.flush()

    def _forked(self):
        # the parent wrote what was kept before the fork; its writer thread does not exist in the child
        self._lines, self._thread = [], None
        self._writing, self._pending, self._urgent = threading.Lock(), threading.Event(), threading.Event()


_buffers: weakref.WeakSet[LineBuffer] = weakref.WeakSet()  # reset in a forked child (a gunicorn worker)
os.register_at_fork(after_in_child=lambda: [buffer._forked() for buffer in list(_buffers)])


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
        _handler = LineBuffer(sys.stderr if stream is None else stream)
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


def flush():
    """Write the kept lines now (a worker's exit)."""
    if _handler is not None:
        _handler.flush()
