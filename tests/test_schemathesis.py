"""schemathesis, from the served OpenAPI document, against the real gunicorn in production mode: the webhook
with its secret, the read API (/api/jobs) with a Bearer token, both on the default SQLite database."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.payloads import SECRET
from tests.servers import GunicornServer

SCHEMATHESIS = str(Path(sys.executable).with_name("schemathesis"))
TOKEN = "schemathesis-read-token-0123456789abcdef"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    env = {"APP_ENV": "production", "WEBHOOK_SECRET": SECRET, "JOBS_API_TOKENS": TOKEN}
    with GunicornServer(tmp_path_factory.mktemp("st"), env) as server:
        yield server


def run_schemathesis(server, max_examples, *headers, phases=None):
    env = {
        **os.environ,
        "SCHEMATHESIS_HOOKS": "tests.schemathesis_hooks",
        "PYTHONPATH": str(Path(__file__).resolve().parent.parent),
    }
    command = [
        SCHEMATHESIS,
        "run",
        f"{server.url}/openapi.json",
        "--checks",
        "all",
        "--max-examples",
        str(max_examples),
        "--request-timeout",
        "10",
        "--suppress-health-check",
        "too_slow",
        "--generation-allow-x00",  # the contract refuses NUL in strings (openapi.yaml says so)
        "false",
    ]
    for header in headers:
        command += ["--header", header]
    if phases:
        command += ["--phases", phases]
    # run in the server's directory: schemathesis keeps a cache in its working directory
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=120, cwd=server.cwd)
    output = result.stdout + result.stderr
    print(output)  # the figures (cases generated, seed) appear in the test log
    return result.returncode, output


def test_with_the_credentials_every_check_passes(server):
    """With the webhook's secret and a read token: no 5xx on any path, every response documented and
    conforming, valid accepted, invalid rejected."""
    code, output = run_schemathesis(server, 100, f"X-Webhook-Secret: {SECRET}", f"Authorization: Bearer {TOKEN}")
    assert code == 0, output
    assert int(re.search(r"(\d+) generated", output).group(1)) >= 100
    assert "Internal server error" not in server.output()


def test_without_credentials_every_answer_is_a_documented_401(server):
    """Without the secret or a token every generated request, on every path, gets the documented 401, never a 5xx."""
    code, output = run_schemathesis(server, 20, phases="fuzzing")  # 401 before any parameter is read
    assert code == 0, output
    assert int(re.search(r"(\d+) generated", output).group(1)) >= 20
