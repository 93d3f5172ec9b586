"""Issue 22's callers through the real gunicorn (development, SQLite): what each can make the service spend or say."""

import base64
import json
import sqlite3
from contextlib import closing

import pytest
import requests

from tests.payloads import COMPLETED, PROGRESS, payload
from tests.servers import GunicornServer

pytestmark = pytest.mark.sqlite_only
TIMEOUT = 30
MiB = 1024 * 1024
PADDING = "x" * 1_000_000  # the schema allows extra fields: a body just under MAX_CONTENT_LENGTH (1 MiB)
ESCAPED = "\\" * 500_000  # as long in the body, and twice as long again in a JSON answer that quotes the body


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with GunicornServer(tmp_path_factory.mktemp("bounds"), {"APP_ENV": "development"}) as server:
        yield server


def database(server):
    return server.env["DATABASE_URL"].removeprefix("sqlite:///")


def database_bytes(server):
    """The database's size once its WAL is copied back into it (what it keeps, not what it last wrote)."""
    with closing(sqlite3.connect(database(server), timeout=10)) as connection:
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return (
            connection.execute("PRAGMA page_count").fetchone()[0] * connection.execute("PRAGMA page_size").fetchone()[0]
        )


def post(server, body):
    answer = requests.post(f"{server.url}/api/webhooks/image-completion", json=body, timeout=TIMEOUT)
    assert answer.status_code == 200, answer.text[:300]
    return answer.json()


@pytest.mark.parametrize("path", ["/api/jobs", "/jobs", "/jobs.json"])
@pytest.mark.parametrize(
    "cursor",
    [
        "1.9223372036854775808",  # an id past 2**63 - 1
        base64.urlsafe_b64encode(json.dumps(["2025-01-01T00:00:00", 2**63]).encode()).decode().rstrip("="),
    ],
)
def test_a_cursor_outside_64_bits_is_a_json_400_naming_the_cursor(server, path, cursor):
    """The integers SQLite cannot hold are a 400 `cursor invalide`, never the 500 they once were."""
    answer = requests.get(f"{server.url}{path}", params={"cursor": cursor}, timeout=TIMEOUT)
    assert answer.status_code == 400 and answer.headers["Content-Type"] == "application/json", answer.text[:300]
    assert "cursor invalide" in answer.text


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/api//jobs", 404),
        ("/api/webhooks//image-completion", 404),
        ("//api/jobs", 200),  # gunicorn reads a request-target's leading "//" as "/": the route itself
    ],
)
def test_a_doubled_slash_is_never_a_redirect(server, path, status):
    """No 308 to a URL built from the caller's Host (what a shared cache could keep): JSON, no Location."""
    answer = requests.get(f"{server.url}{path}", allow_redirects=False, timeout=TIMEOUT)
    assert answer.status_code == status and answer.headers["Content-Type"] == "application/json"
    assert "Location" not in answer.headers


def test_an_unexpected_error_of_the_api_or_the_page_is_worded_as_theirs(server):
    """A 500 of the read API or the page says "de la requête", not the webhook's sentence. The error: a row whose
    images are not JSON, written beside the service (SQLite lets a column hold such text)."""
    post(server, payload(COMPLETED, "bounds-broken"))
    with closing(sqlite3.connect(database(server), timeout=10)) as connection, connection:
        connection.execute("UPDATE jobs SET images = 'not json' WHERE job_id = 'bounds-broken'")
    for path in ("/api/jobs/bounds-broken", "/jobs.json"):
        answer = requests.get(f"{server.url}{path}", timeout=TIMEOUT)
        assert answer.status_code == 500 and answer.headers["Content-Type"] == "application/json", path
        assert answer.json()["message"] == "Erreur inattendue pendant le traitement de la requête", path
    with closing(sqlite3.connect(database(server), timeout=10)) as connection, connection:
        connection.execute("DELETE FROM jobs WHERE job_id = 'bounds-broken'")  # the module's other reads list jobs


def test_padded_duplicates_and_progress_grow_the_database_by_under_8_mib(server):
    """40 duplicates and 40 progress notifications of 1 MB each are answered as usual and kept cut to 64 KiB."""
    post(server, payload(COMPLETED, "bounds-padded"))
    before = database_bytes(server)
    for number in range(40):
        assert post(server, payload(COMPLETED, "bounds-padded", padding=PADDING))["message"] == "Job déjà traité"
        post(server, payload(PROGRESS, f"bounds-progress-{number}", padding=PADDING))
    grown = database_bytes(server) - before
    assert 40 * 64 * 1024 < grown < 8 * MiB, grown


def test_a_job_of_many_large_deliveries_is_read_in_pages_of_at_most_8_mib(server):
    """140 padded duplicates of backslashes (64 KiB kept each, 128 KiB once quoted in JSON): the deliveries
    with their bodies come in pages of at most 8 MiB (fewer than the 100 a page holds), every delivery once,
    newest first; the job page shows at most 2 MiB of bodies."""
    post(server, payload(COMPLETED, "bounds-pages"))
    for _ in range(140):
        post(server, payload(COMPLETED, "bounds-pages", padding=ESCAPED))
    seen, cursor, sizes, counts = [], None, [], []
    while True:
        query = {"include": "body", **({"cursor": cursor} if cursor else {})}
        answer = requests.get(f"{server.url}/api/jobs/bounds-pages/deliveries", params=query, timeout=TIMEOUT)
        assert answer.status_code == 200
        sizes.append(len(answer.content))
        counts.append(len(answer.json()["deliveries"]))
        seen += [delivery["id"] for delivery in answer.json()["deliveries"]]
        if (cursor := answer.json()["next_cursor"]) is None:
            break
    assert max(sizes) <= 8 * MiB and counts[0] < 100 and len(counts) > 2, (sizes, counts)
    assert len(seen) == len(set(seen)) == 141 and seen == sorted(seen, reverse=True)
    page = requests.get(f"{server.url}/jobs/bounds-pages", timeout=TIMEOUT)
    assert page.status_code == 200 and 2 * 64 * 1024 < len(page.content) < 2 * MiB + 100_000
