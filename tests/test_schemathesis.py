"""schemathesis, from the document each instance serves, against the real gunicorn in each mode: production (the
webhook's secret, a Bearer token for /api/jobs, or neither), development without credentials, and the stateless
mode (DATABASE_URL empty); every check, on positive and negative data."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.payloads import SECRET
from tests.servers import GunicornServer

ROOT = Path(__file__).resolve().parent.parent
SCHEMATHESIS = str(Path(sys.executable).with_name("schemathesis"))
TOKEN = "schemathesis-read-token-0123456789abcdef"


@pytest.fixture(scope="module")
def production(tmp_path_factory):
    env = {"APP_ENV": "production", "WEBHOOK_SECRET": SECRET, "JOBS_API_TOKENS": TOKEN}
    with GunicornServer(tmp_path_factory.mktemp("st"), env) as server:
        yield server


def run_schemathesis(server, max_examples, *headers, phases=None):
    env = {**os.environ, "SCHEMATHESIS_HOOKS": "tests.schemathesis_hooks", "PYTHONPATH": str(ROOT)}
    command = [
        SCHEMATHESIS,
        "--config-file",
        str(ROOT / "tests" / "schemathesis.toml"),
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


def generated(output):
    return int(re.search(r"(\d+) generated", output).group(1))


def test_with_the_credentials_every_check_passes(production):
    """With the webhook's secret and a read token: no 5xx on any path, every response documented and
    conforming, valid accepted, invalid rejected."""
    code, output = run_schemathesis(production, 100, f"X-Webhook-Secret: {SECRET}", f"Authorization: Bearer {TOKEN}")
    assert code == 0, output
    assert generated(output) >= 100
    assert "Internal server error" not in production.output()


def test_without_credentials_every_answer_is_a_documented_401(production):
    """Without the secret or a token every generated request, on every path, gets the documented 401, never a 5xx."""
    code, output = run_schemathesis(production, 20, phases="fuzzing")  # 401 before any parameter is read
    assert code == 0, output
    assert generated(output) >= 20


@pytest.mark.parametrize(
    "env",
    [{"APP_ENV": "development"}, {"APP_ENV": "development", "DATABASE_URL": ""}],
    ids=["development", "stateless"],
)
def test_in_development_every_check_passes_without_credentials(tmp_path, env):
    """In development, with a database or in the stateless mode, the served document asks for no credential and
    every check passes without one: the webhook processes, the read API answers (or its documented 404)."""
    with GunicornServer(tmp_path, env) as server:
        code, output = run_schemathesis(server, 50)
        assert code == 0, output
        assert generated(output) >= 50
        assert "Internal server error" not in server.output()
