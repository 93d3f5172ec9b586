"""Start the real gunicorn, with the project's gunicorn.conf.py, on a free loopback port."""
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests

from config import SETTINGS

ROOT = Path(__file__).resolve().parent.parent
# variables of the service that must not leak from the developer's shell into a test server
SERVICE_VARIABLES = (*SETTINGS, "NODE_ENV", "PROMETHEUS_MULTIPROC_DIR")


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class GunicornServer:
    """One gunicorn master and its worker, started in a temporary directory (no .env is read)."""

    def __init__(self, cwd, env=None, app=None, args=()):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {k: v for k, v in os.environ.items() if k not in SERVICE_VARIABLES}
        self.env.update(env or {})
        self.env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(ROOT / "tests")])
        command = [sys.executable, "-m", "gunicorn", "-c", str(ROOT / "gunicorn.conf.py"),
                   "--bind", f"127.0.0.1:{self.port}", *args]
        if app:
            command.append(app)  # a test app module, e.g. "faulty_app:create()"
        self.cwd = cwd
        self.log_path = Path(cwd) / f"gunicorn-{self.port}.log"
        self.command = command
        self.process = None

    def start(self, timeout=20):
        self._log = open(self.log_path, "wb")
        self.process = subprocess.Popen(self.command, cwd=self.cwd, env=self.env,
                                        stdout=self._log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"gunicorn exited with {self.process.returncode}:\n{self.output(0)}")
            try:
                requests.get(self.url + "/", timeout=1)
                return self
            except requests.RequestException:  # not listening yet, or its workers still booting
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"gunicorn did not answer within {timeout}s:\n{self.output(0)}")

    def post(self, json=None, **kwargs):
        kwargs.setdefault("timeout", 10)
        return requests.post(self.url + "/api/webhooks/image-completion", json=json, **kwargs)

    def output(self, settle=0.3):
        """What gunicorn and the service wrote so far (the service writes its lines every 0.1 s)."""
        time.sleep(settle)
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def stop(self, sig=signal.SIGTERM, timeout=30):
        """Stop gunicorn with `sig` and return its exit code."""
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()
        return self.process.returncode

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


def run_to_exit(cwd, env, timeout=30):
    """Run gunicorn expecting it to refuse to start; return (exit code, output)."""
    server = GunicornServer(cwd, env)
    result = subprocess.run(server.command, cwd=cwd, env=server.env, capture_output=True, timeout=timeout)
    return result.returncode, (result.stdout + result.stderr).decode("utf-8", "replace")
