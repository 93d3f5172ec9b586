"""The copiers inside the real gunicorn: a worker killed mid-copy, two instances on one PostgreSQL, bounded memory."""

import os
import signal
import time
import uuid
from pathlib import Path

import requests

from tests.image_source import ImageSource, image_bytes
from tests.payloads import COMPLETED, payload
from tests.servers import GunicornServer

DEV = {"APP_ENV": "development"}


def completed(job_id, urls):
    body = payload(COMPLETED, job_id)
    body["data"]["images"] = [{"url": url} for url in urls]
    return body


def copies(server, job_id):
    return requests.get(f"{server.url}/api/jobs/{job_id}", timeout=10).json()["copies"]


def until_settled(server, job_id, timeout=30):
    deadline = time.monotonic() + timeout
    while True:
        found = copies(server, job_id)
        if all(c["state"] not in ("queued", "copying") for c in found):
            return found
        assert time.monotonic() < deadline, found
        time.sleep(0.1)


def workers(master_pid):
    """The pids of a gunicorn master's workers."""
    children = Path(f"/proc/{master_pid}/task/{master_pid}/children").read_text().split()
    return [int(pid) for pid in children]


def connected_to(pids, port):
    """The pid among `pids` holding a TCP connection to 127.0.0.1:`port` (read from /proc)."""
    inodes = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[2].endswith(f":{port:04X}"):
            inodes.add(fields[9])
    for pid in pids:
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            try:
                target = os.readlink(fd)
            except OSError:
                continue
            if target.startswith("socket:[") and target[8:-1] in inodes:
                return pid
    return None


def rss_kib(pid):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_a_worker_killed_mid_copy_leaves_the_copy_to_another(tmp_path):
    """SIGKILL of the worker copying an image, while the source holds the transfer open: once its lease runs
    out, another worker claims the copy and stores it; the attempt of the dead one is counted."""
    source = ImageSource().start()
    data = image_bytes("PNG", (300, 300))
    url = source.add("/held.png", data)
    env = {
        **DEV,
        "WEB_CONCURRENCY": "2",
        "IMAGE_SOURCES": source.origin,
        "IMAGE_COPY_LEASE": "2",
        "IMAGE_STORE": f"file://{tmp_path / 'images'}",
    }
    try:
        with GunicornServer(tmp_path, env) as server:
            source.hold.set()
            assert server.post(completed("job-killed", [url])).status_code == 200
            assert source.holding.wait(15)
            copier = connected_to(workers(server.process.pid), source.port)
            assert copier is not None
            os.kill(copier, signal.SIGKILL)
            source.hold.clear()
            found = until_settled(server, "job-killed")
            assert found[0]["state"] == "stored" and found[0]["attempts"] == 2
            assert requests.get(f"{server.url}/api/jobs/job-killed/images/0", timeout=10).content == data
            assert source.fetched("/held.png") == 2
    finally:
        source.stop()


def test_two_instances_on_one_postgresql_fetch_each_image_once(tmp_path, postgres):
    """Two gunicorn instances (5 workers each, 2 copiers per worker) on one PostgreSQL and one store: 30 jobs
    of 2 images posted to both, each twice: every image is fetched once and stored."""
    source = ImageSource().start()
    url = postgres.create_database(f"copies_{uuid.uuid4().hex}", template="migrated")
    env = {**DEV, "DATABASE_URL": url, "IMAGE_SOURCES": source.origin, "IMAGE_STORE": f"file://{tmp_path / 'images'}"}
    jobs = {
        f"pair-{n}": [source.add(f"/{n}-{i}.png", image_bytes("PNG", (40 + n, 40 + i))) for i in range(2)]
        for n in range(30)
    }
    try:
        with GunicornServer(tmp_path, env) as one, GunicornServer(tmp_path, env) as two:
            for n, (job_id, urls) in enumerate(jobs.items()):
                for server in (one, two) if n % 2 else (two, one):
                    assert server.post(completed(job_id, urls)).status_code == 200
            for job_id in jobs:
                assert [c["state"] for c in until_settled(one, job_id)] == ["stored", "stored"]
        assert sorted(source.requests) == sorted(f"/{n}-{i}.png" for n in range(30) for i in range(2))
        assert len(list((tmp_path / "images").rglob("*.png"))) == 60
    finally:
        source.stop()


def test_a_worker_copying_large_bodies_keeps_its_memory_bounded(tmp_path):
    """Bodies past IMAGE_MAX_BYTES (with and without Content-Length) and a 1024 x 1024 PNG: cut or stored,
    and the copying worker's resident memory grows by less than 20 MiB."""
    source = ImageSource().start()
    source.files["/huge.bin"] = (b"\0" * (40 << 20), "image/png")
    source.files["/endless.bin"] = (b"\0" * (40 << 20), "image/png")
    source.unsized.add("/endless.bin")
    big = source.add("/big.png", image_bytes("PNG", (1024, 1024)))
    env = {
        **DEV,
        "WEB_CONCURRENCY": "1",
        "IMAGE_SOURCES": source.origin,
        "IMAGE_MAX_BYTES": str(8 << 20),
        "IMAGE_STORE": f"file://{tmp_path / 'images'}",
    }
    try:
        with GunicornServer(tmp_path, env) as server:
            worker = workers(server.process.pid)[0]
            server.post(completed("warm-up", [source.add("/warm.png", image_bytes())]))
            until_settled(server, "warm-up")
            before = rss_kib(worker)
            urls = [source.url("/huge.bin"), source.url("/endless.bin"), big]
            assert server.post(completed("job-large", urls)).status_code == 200
            found = until_settled(server, "job-large")
            assert [c["state"] for c in found] == ["failed", "failed", "stored"]
            assert rss_kib(worker) - before < 20 * 1024
    finally:
        source.stop()


def test_images_work_copies_alone_and_stops_on_sigterm_after_its_copy(tmp_path):
    """A web service with IMAGE_COPY_CONCURRENCY=0 copies nothing; `flask --app app images work` copies, and on
    SIGTERM in the middle of a transfer it claims nothing more, sees that copy to its end (here a transfer cut
    short, recorded as a failed attempt to retry, not left to its lease), then exits 0."""
    import subprocess
    import sys

    from tests.servers import ROOT

    source = ImageSource().start()
    data = image_bytes("PNG", (200, 120))
    url = source.add("/alone.png", data)
    store = f"file://{tmp_path / 'images'}"
    env = {**DEV, "IMAGE_SOURCES": source.origin, "IMAGE_STORE": store, "IMAGE_COPY_CONCURRENCY": "0"}
    try:
        with GunicornServer(tmp_path, env) as server:
            assert server.post(completed("job-alone", [url])).status_code == 200
            time.sleep(1.5)  # longer than a copier's look for due tasks: none runs in the service
            assert source.requests == [] and copies(server, "job-alone")[0]["state"] == "queued"
            source.hold.set()
            command = [sys.executable, "-m", "flask", "--app", "app", "images", "work"]
            worker = subprocess.Popen(command, cwd=ROOT, env=server.env, stderr=subprocess.PIPE, text=True)
            assert source.holding.wait(20)
            worker.send_signal(signal.SIGTERM)
            time.sleep(0.5)
            source.hold.clear()
            source.release.set()  # the held transfer ends short: the copier records a failed attempt
            _, said = worker.communicate(timeout=25)  # closes its pipe too
            assert worker.returncode == 0 and "Arrêt: les copies en cours se terminent" in said
            found = copies(server, "job-alone")[0]
            assert found["state"] == "queued" and found["attempts"] == 1 and found["last_error"]
    finally:
        source.stop()
