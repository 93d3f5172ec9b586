"""Reading request heads in the poller: one recv at a time, until gunicorn's parser can answer them."""

from __future__ import annotations

import re
import socket
from typing import Any

from gunicorn.http.message import DEFAULT_MAX_HEADERFIELD_SIZE, MAX_HEADERS, MAX_REQUEST_LINE

BARE_LF = re.compile(rb"(?<!\r)\n")  # gunicorn's parser rejects it at once: no need to wait for more bytes


class HeadRules:
    """gunicorn's own bounds on a request head (limit_request_line, _fields, _field_size), as its parser
    applies them, so that the poller hands a head over exactly when the parser would stop reading."""

    def __init__(self, cfg: Any) -> None:
        line = cfg.limit_request_line if 0 < cfg.limit_request_line < MAX_REQUEST_LINE else MAX_REQUEST_LINE
        self.limit_line = line if cfg.limit_request_line else 0  # as the parser: 0 unlimited, at most 8190
        fields = cfg.limit_request_fields if 0 < cfg.limit_request_fields <= MAX_HEADERS else MAX_HEADERS
        size = cfg.limit_request_field_size if cfg.limit_request_field_size > 0 else DEFAULT_MAX_HEADERFIELD_SIZE
        self.max_head = line + 4 + fields * (size + 2) + 4  # the parser's own bounds, and their CRLFs

    def parser_can_answer(self, head: bytearray, scan: int) -> bool:
        """Whether the head is complete, or already wrong in a way the parser refuses (`scan`: where the
        bytes not yet looked at start, three bytes early so a CRLFCRLF split across reads is found)."""
        return b"\r\n\r\n" in head[scan:] or bool(BARE_LF.search(head, scan)) or self.line_too_long(head)

    def line_too_long(self, head: bytearray) -> bool:
        """Whether the parser raises LimitRequestLine on these bytes (after one leading CRLF it skips)."""
        start = 2 if head.startswith(b"\r\n") else 0
        end = head.find(b"\r\n", start, start + self.limit_line + 3)
        return self.limit_line > 0 and (end if end >= 0 else len(head) - 2) - start > self.limit_line


def receive(sock: socket.socket, size: int) -> bytes | None:
    """One non-blocking recv: None if there is nothing yet, b"" at EOF or on a socket error."""
    try:
        return sock.recv(size)
    except (BlockingIOError, InterruptedError):
        return None
    except OSError:
        return b""
