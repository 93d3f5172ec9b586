"""Logging set-up: the spec's emoji lines on stderr, written in batches by one background thread."""
import atexit
import collections
import logging
import sys
import threading
import time

LOGGER = "image_webhook"
_writer = None


class TextFormatter(logging.Formatter):
    """`2025-10-21 16:45:00,123 INFO <message>`, formatting the date once a second, not once a line."""

    def __init__(self):
        super().__init__("%(asctime)s %(levelname)s %(message)s")
        self._second = None
        self._date = ""

    def formatTime(self, record, datefmt=None):
        second = int(record.created)
        if second != self._second:  # a race only formats the same second twice
            self._date, self._second = time.strftime("%Y-%m-%d %H:%M:%S", self.converter(second)), second
        return f"{self._date},{int(record.msecs):03d}"


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
        self._pending = collections.deque()
        self._wake = threading.Event()
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
        lines = []
        while self._pending:
            record = self._pending.popleft()
            try:
                lines.append(self.format(record) + "\n")
            except Exception:
                self.handleError(record)
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


def configure(level="INFO", stream=None):
    """Give the service's logger its handler (once per process, writing to `stream`, default
    stderr) and its level."""
    global _writer
    # Records need no caller (file, line): not looking it up saves a third of a record's cost (the
    # "Optimization" section of the logging HOWTO). Process and thread stay: gunicorn's format uses them.
    logging._srcfile = None
    logger = logging.getLogger(LOGGER)
    if _writer is None:
        _writer = BatchWriter(sys.stderr if stream is None else stream)
        _writer.setFormatter(TextFormatter())
        atexit.register(_writer.close)
        logger.addHandler(_writer)
    logger.setLevel(level)
    return logger


def flush():
    """Write the pending lines now (before a worker exits, in tests reading the output)."""
    if _writer is not None:
        _writer.flush()
