"""End to end through the real gunicorn and gunicorn.conf.py, over loopback HTTP."""

import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from threading import Barrier

import pytest
import requests

from tests.payloads import COMPLETED, SECRET, URL, payload
from tests.servers import DEFAULT_WORKERS, ROOT, GunicornServer, eventually, run_to_exit
from tests.test_signatures import AUTH_TABLE, auth_config, auth_request, check_answer

PRODUCTION = {"APP_ENV": "production", "WEBHOOK_SECRET": SECRET}


@pytest.fixture
def dev_server(tmp_path):
    with GunicornServer(tmp_path, {"APP_ENV": "development"}) as server:
        yield server


@pytest.fixture
def prod_server(tmp_path):
    with GunicornServer(tmp_path, PRODUCTION) as server:
        yield server


@pytest.mark.parametrize(
    "env, variable",
    [
        ({"APP_ENV": "production"}, "WEBHOOK_SECRET"),
        ({}, "WEBHOOK_SECRET"),
        ({"NODE_ENV": "production"}, "WEBHOOK_SECRET"),
        ({"APP_ENV": "development", "IDEMPOTENCE_WINDOW": "abc"}, "IDEMPOTENCE_WINDOW"),
        ({"APP_ENV": "development", "MAX_CONTENT_LENGTH": "-5"}, "MAX_CONTENT_LENGTH"),
        ({"APP_ENV": "staging"}, "APP_ENV"),
    ],
)
def test_bad_configuration_stops_gunicorn_naming_the_variable(tmp_path, env, variable):
    """gunicorn exits non-zero, at once, with a message naming the variable, instead of serving."""
    code, output = run_to_exit(tmp_path, env)
    assert code != 0
    assert variable in output
    assert "Booting worker" not in output


def test_production_over_http(prod_server):
    """In production over HTTP: no secret 401, wrong secret 401, right secret 200; all three are logged,
    and the secret is not."""
    assert prod_server.post(COMPLETED, headers={"X-Request-ID": "http-none"}).status_code == 401
    wrong = prod_server.post(COMPLETED, headers={"X-Webhook-Secret": "nope", "X-Request-ID": "http-wrong"})
    assert wrong.status_code == 401 and wrong.json() == {"error": "Unauthorized"}
    response = prod_server.post(
        payload(COMPLETED, f"http-{uuid.uuid4().hex}"), headers={"X-Webhook-Secret": SECRET, "X-Request-ID": "http-ok"}
    )
    assert response.status_code == 200 and response.json()["images_count"] == 1
    assert response.headers["Content-Type"].startswith("application/json")
    assert prod_server.stop() == 0  # every worker writes its pending lines on its way out
    output = prod_server.output()
    for request_id in ("http-none", "http-wrong", "http-ok"):
        assert f"[{request_id}] 🎨 [Image Webhook] Réception" in output
    assert "[http-none] ⚠️ [Image Webhook] Requête refusée: 401" in output
    assert "[http-wrong] ⚠️ [Image Webhook] Requête refusée: 401" in output
    assert "[http-ok] ⏱️ [Image Webhook] Traitement terminé" in output
    assert SECRET not in output


def test_concurrent_duplicates_are_processed_exactly_once(dev_server):
    """64 simultaneous posts of one new job: exactly one is processed, 63 are 'Job déjà traité'."""
    barrier = Barrier(64)
    body = payload(COMPLETED, "race-64")

    def post(_):
        barrier.wait()
        return dev_server.post(body).json()

    with ThreadPoolExecutor(64) as pool:
        answers = list(pool.map(post, range(64)))
    assert sum(a.get("images_count") == 1 for a in answers) == 1
    assert sum(a == {"success": True, "message": "Job déjà traité"} for a in answers) == 63
    assert eventually(lambda: dev_server.output().count("✅ [Image Webhook] Génération réussie"), 1) == 1


@pytest.mark.parametrize("data", [b"{", b"[" * 200_000, b"\xff" * 100, b'{"status": "completed"}'])
def test_bad_body_does_not_kill_the_worker(dev_server, data):
    """A hostile body gets a JSON 400 and the same workers go on serving valid notifications."""
    booted = dev_server.wait_for("Booting worker", DEFAULT_WORKERS).count("Booting worker")
    response = requests.post(
        dev_server.url + "/api/webhooks/image-completion",
        data=data,
        headers={"Content-Type": "application/json"},
        timeout=10,
    )
    assert response.status_code == 400 and "error" in response.json()
    assert dev_server.post(payload(COMPLETED, "after-bad-body")).status_code == 200
    assert booted == DEFAULT_WORKERS and dev_server.settled_output().count("Booting worker") == booted


def test_unknown_route_and_method_are_json(dev_server):
    """gunicorn serves the app's JSON 404 and 405, not an HTML page."""
    assert requests.get(dev_server.url + "/nope", timeout=5).json()["error"] == "Not Found"
    response = requests.get(dev_server.url + "/api/webhooks/image-completion", timeout=5)
    assert response.status_code == 405 and "POST" in response.headers["Allow"]
    assert response.json()["error"] == "Method Not Allowed"


def test_sigterm_stops_cleanly(tmp_path):
    """SIGTERM stops gunicorn with exit code 0."""
    server = GunicornServer(tmp_path, {"APP_ENV": "development"}).start()
    assert server.post(payload(COMPLETED, "before-stop")).status_code == 200
    assert server.stop() == 0
    assert "Logging error" not in server.output()  # regression: records without a process id broke gunicorn's format


def test_sigterm_while_workers_boot_stops_at_once(tmp_path):
    """A SIGTERM that reaches workers still booting (forked, their own signal handlers not set yet) stops them
    at once, not after graceful_timeout (30 s)."""
    config = tmp_path / "slow_boot.conf.py"  # the project's settings; worker n waits n - 1 s after its fork
    config.write_text(
        "import runpy, time\n"
        f"globals().update(runpy.run_path({str(ROOT / 'gunicorn.conf.py')!r}))\n"
        "_post_fork = post_fork\n"
        "def post_fork(server, worker):\n"
        "    _post_fork(server, worker)\n"
        "    time.sleep(worker.age - 1)\n"
    )
    server = GunicornServer(tmp_path, {"APP_ENV": "development", "WEB_CONCURRENCY": "3"})
    server.command[server.command.index("-c") + 1] = str(config)
    server.start()  # the first worker answers; the two others are in their post_fork
    started = time.monotonic()
    assert server.stop(timeout=60) == 0
    assert time.monotonic() - started < 15, server.output()  # graceful_timeout is 30 s
    assert server.output().count("Booting worker") == 3


# The AUTH_TABLE configurations run through gunicorn, one server each (every credential of the table posted to
# it): each mode in production and development, and the configurations that only the real environment parses.
GUNICORN_AUTH = sorted(
    {(mode, env) for mode, env, _, _ in AUTH_TABLE if env in ("production", "development")}
    | {
        ("secret", "production, header secret only"),
        ("any", "production, rotating"),
        ("signature", "production, bare base64 signing secret"),
    }
)


@pytest.mark.parametrize("mode, env", GUNICORN_AUTH)
def test_auth_table_through_gunicorn(tmp_path, mode, env):
    """Every AUTH_TABLE row of this mode and configuration, end to end through gunicorn, gets its expected answer."""
    rows = [(sent, expected) for m, e, sent, expected in AUTH_TABLE if (m, e) == (mode, env)]
    wrong = {}
    # one worker: what is checked does not depend on how many
    with GunicornServer(tmp_path, {**auth_config(mode, env), "WEB_CONCURRENCY": "1"}) as server:
        for sent, expected in rows:
            body, headers = auth_request(sent, f"auth-{uuid.uuid4().hex}")
            response = requests.post(server.url + URL, data=body, headers=headers, timeout=10)
            if not check_answer(response.status_code, response.json(), expected):
                wrong[sent] = (expected, response.status_code, response.text)
    assert rows and wrong == {}
