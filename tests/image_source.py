"""The backend's image server in the tests: files on a loopback port, what it was asked, and its faults on demand."""

from __future__ import annotations

import io
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from PIL import Image

from tests.servers import free_port


def image_bytes(kind="PNG", size=(64, 48), color=(200, 30, 90)):
    """A real image file of `kind` (PNG, JPEG, WEBP, GIF), as a generator would serve it."""
    mode = "RGB" if kind in ("JPEG", "PNG", "WEBP") else "P"
    buffer = io.BytesIO()
    Image.new(mode, size, color if mode == "RGB" else 3).save(buffer, kind)
    return buffer.getvalue()


class ImageSource:
    """Serves `files` (path: (bytes, content type)) on 127.0.0.1; records each request's path; `hold` makes a
    transfer send half its body and wait until released; `stop()` then `start()` keeps the same port."""

    def __init__(self, port=None):
        self.port = port or free_port()
        self.files: dict[str, tuple[bytes, str]] = {}
        self.redirects: dict[str, str] = {}
        self.unsized: set[str] = set()  # paths answered without Content-Length, ended by closing the connection
        self.requests: list[str] = []
        self.connections = 0
        self.hold = threading.Event()  # set: transfers stop half-way until `release` is set
        self.release = threading.Event()
        self.holding = threading.Event()  # a transfer is being held
        self._server = None

    @property
    def origin(self):
        return f"http://127.0.0.1:{self.port}"

    def url(self, path):
        return self.origin + path

    def add(self, path, data, content_type="image/png"):
        self.files[path] = (data, content_type)
        return self.url(path)

    def start(self):
        source = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self):
                source.connections += 1
                super().setup()

            def do_GET(self):
                source.requests.append(self.path)
                if self.path in source.redirects:
                    self.send_response(302)
                    self.send_header("Location", source.redirects[self.path])
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                if self.path not in source.files:
                    self.send_error(404)
                    return
                data, content_type = source.files[self.path]
                self.send_response(200)
                self.send_header("Content-Type", content_type)
                if self.path in source.unsized:
                    self.send_header("Connection", "close")
                    self.close_connection = True
                else:
                    self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if source.hold.is_set():
                    self.wfile.write(data[: len(data) // 2])
                    self.wfile.flush()
                    source.holding.set()
                    source.release.wait(30)
                    return  # the rest never comes: the connection closes short of Content-Length
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self):
        if self._server is not None:
            self.release.set()
            self._server.shutdown()
            self._server.server_close()
            self._server = None
            self.release.clear()

    def fetched(self, path):
        return self.requests.count(path)
