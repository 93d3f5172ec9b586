"""gunicorn's start and stop as a newcomer meets them: the start-up lines once, a busy port, Ctrl-C at any
moment, and nothing left behind in the temporary directory."""

import os
import re
import signal
import socket
import subprocess
import time

import pytest

from image_webhook.domain.settings import load_settings
from image_webhook.server import master
from tests.payloads import SECRET
from tests.servers import GunicornServer

WORKERS = "3"
PRODUCTION = {"APP_ENV": "production", "WEBHOOK_SECRET": SECRET, "WEB_CONCURRENCY": WORKERS}
DEVELOPMENT = {"APP_ENV": "development", "WEB_CONCURRENCY": WORKERS}
BROKEN = ("Traceback", "Exception ignored", "SystemExit", "KeyboardInterrupt")


def with_tmpdir(env, tmp_path):
    """`env` with a TMPDIR of the test's own, where the master makes its metrics' directory."""
    (tmp_path / "tmp").mkdir(exist_ok=True)
    return {**env, "TMPDIR": str(tmp_path / "tmp")}


def metrics_directories(tmp_path):
    return sorted(path.name for path in (tmp_path / "tmp").glob("image-webhook-metrics-*"))


def test_the_start_up_lines_come_once_from_the_master(tmp_path):
    """With three workers in production, each configuration warning and the ℹ️ Prêt line are logged once."""
    server = GunicornServer(tmp_path, PRODUCTION)
    with server:
        server.wait_for("Booting worker with pid", int(WORKERS))
    output = server.output()
    assert output.count("Worker exiting") == int(WORKERS), output  # every worker booted its app meanwhile
    assert output.count("ℹ️ [Image Webhook] Prêt: APP_ENV=production, WEBHOOK_AUTH=secret,") == 1, output
    assert output.count("⚠️ [Image Webhook] JOBS_API_TOKENS is empty") == 1, output
    assert output.count("⚠️ [Image Webhook] DASHBOARD_USERS is empty") == 1, output
    assert output.index("Prêt") < output.index("Booting worker"), "the master says it before the workers fork"


def test_the_reloader_warning_comes_once_and_development_says_what_it_accepts(tmp_path):
    """`make run` (development, --reload) with three workers: gunicorn's reloader warning once, and the Prêt
    line says that without a secret every request is accepted."""
    server = GunicornServer(tmp_path, DEVELOPMENT, args=("--reload",))
    with server:
        server.wait_for("Booting worker with pid", int(WORKERS))
    output = server.output()
    assert output.count("Worker exiting") == int(WORKERS), output
    assert output.count("Reloader is on") == 1, output
    expected = "WEBHOOK_AUTH=aucune (développement: aucun secret configuré, toute requête acceptée)"
    assert output.count(expected) == 1, output


@pytest.mark.parametrize(
    "env, expected",
    [
        ({"APP_ENV": "development"}, "aucune (développement: aucun secret configuré, toute requête acceptée)"),
        (
            {"APP_ENV": "development", "WEBHOOK_SECRET": SECRET},
            "secret (développement: vérifié s'il est présent, une requête sans secret est acceptée)",
        ),
        ({"APP_ENV": "production", "WEBHOOK_SECRET": SECRET}, "secret"),
        ({"APP_ENV": "production", "WEBHOOK_AUTH": "any", "WEBHOOK_SECRET": SECRET}, "any"),
    ],
    ids=["development", "development with a secret", "production", "production, any"],
)
def test_the_ready_line_says_how_requests_are_authenticated(env, expected):
    """WEBHOOK_AUTH in the Prêt line is what intake/auth.py does with this configuration."""
    assert master.authentication(load_settings(environ=env)) == expected


def test_a_busy_port_ends_at_once_with_one_line_naming_port(tmp_path):
    """A port another process listens on: gunicorn exits non-zero within a second or two, with one line
    suggesting PORT=, no ERROR lines, and no metrics' directory left."""
    server = GunicornServer(tmp_path, with_tmpdir(DEVELOPMENT, tmp_path))
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", server.port))
        holder.listen()
        started = time.monotonic()
        result = subprocess.run(server.command, cwd=tmp_path, env=server.env, capture_output=True, timeout=20)
        elapsed = time.monotonic() - started
    output = (result.stdout + result.stderr).decode()
    assert result.returncode != 0 and elapsed < 4, (result.returncode, elapsed, output)
    expected = f"Port {server.port} déjà utilisé (127.0.0.1:{server.port}): un autre serveur tourne-t-il ? "
    expected += f"Choisissez-en un autre, par exemple PORT={server.port + 1} make run"
    assert expected in output.splitlines(), output
    assert "[ERROR]" not in output and "Traceback" not in output, output
    assert metrics_directories(tmp_path) == []


def test_the_metrics_directory_goes_with_the_master(tmp_path):
    """Several workers get a metrics' directory in the temporary directory, removed when gunicorn stops."""
    server = GunicornServer(tmp_path, with_tmpdir(DEVELOPMENT, tmp_path))
    with server:
        assert len(metrics_directories(tmp_path)) == 1
    assert server.process.returncode == 0
    assert metrics_directories(tmp_path) == []


@pytest.mark.parametrize("delay", [0, 0.2, 0.5, 1, 2, 3])
def test_ctrl_c_at_any_moment_of_the_start_is_clean(tmp_path, delay):
    """Ctrl-C (SIGINT to the whole process group) `delay` seconds after gunicorn says it starts, while it
    migrates a new database, forks or boots its workers, or serves: no traceback, every worker that booted
    says it exits, no metrics' directory left; one French line if the start itself was interrupted."""
    server = GunicornServer(tmp_path, with_tmpdir(DEVELOPMENT, tmp_path))
    with open(server.log_path, "wb") as log:
        process = subprocess.Popen(
            server.command, cwd=tmp_path, env=server.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            server.process = process
            server.wait_for("Starting gunicorn", timeout=15)
            time.sleep(delay)
            os.killpg(process.pid, signal.SIGINT)
            code = process.wait(20)
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
    output = server.output()
    assert not [
        line for line in output.splitlines() if line.startswith(BROKEN) or "Error" in line or "[ERROR]" in line
    ], output
    if master.INTERRUPTED in output:
        assert code == 130, output
    else:
        assert code == 0, output
        booted = re.findall(r"Booting worker with pid: (\d+)", output)
        assert sorted(re.findall(r"Worker exiting \(pid: (\d+)\)", output)) == sorted(booted), output
    assert metrics_directories(tmp_path) == []
