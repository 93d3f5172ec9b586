"""A real redis-server for the tests, on a free loopback port, started and stopped by the tests."""
import os
import shutil
import subprocess
import time

import pytest
import redis

from gunicorn_server import free_port

HOW_TO = "install redis-server (apt-get install redis-server) to run the Redis tests; CI installs it"


class RedisServer:
    def __init__(self, directory):
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.directory = directory
        self.process = None

    def start(self):
        self.process = subprocess.Popen(
            [shutil.which("redis-server"), "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.directory), "--logfile", ""],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        client = redis.Redis.from_url(self.url)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                client.ping()
                return self
            except redis.ConnectionError:
                time.sleep(0.02)
        raise RuntimeError("redis-server did not start")

    def stop(self):
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)


def require_redis_server():
    """Skip with a how-to where redis-server is missing, but fail in CI, where it must be."""
    if shutil.which("redis-server"):
        return
    if os.environ.get("CI"):
        pytest.fail("redis-server is missing in CI: .ci/run must install it")
    pytest.skip(HOW_TO)
