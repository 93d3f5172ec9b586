"""The read API through the real gunicorn in production, on SQLite and PostgreSQL: auth, pages under load, ETags."""

import threading
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from tests.payloads import COMPLETED, PROGRESS, SECRET, payload
from tests.servers import GunicornServer
from tests.test_api import CREDENTIALS, OWNER, TOKEN_A, TOKEN_B, opens, routes

PRODUCTION = {"APP_ENV": "production", "WEBHOOK_SECRET": SECRET}
READ = {"Authorization": f"Bearer {TOKEN_A}"}
WEBHOOK = {"X-Webhook-Secret": SECRET}
TIMEOUT = 10


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def database(request, tmp_path_factory):
    """A new database of each kind for the module's servers (gunicorn migrates SQLite's in its master)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path_factory.mktemp('api-db') / 'jobs.sqlite3'}"
    return request.getfixturevalue("postgres").create_database(f"test_{uuid.uuid4().hex}", template="migrated")


@pytest.fixture(scope="module")
def server(database, tmp_path_factory):
    """The service in production with two read tokens (rotation) and the webhook's secret."""
    env = {**PRODUCTION, "JOBS_API_TOKENS": f"{TOKEN_A},{TOKEN_B}", "DATABASE_URL": database}
    with GunicornServer(tmp_path_factory.mktemp("api"), env) as server:
        yield server


def new_id():
    return f"gapi-{uuid.uuid4().hex}"


def post(server, template, job_id, session=requests, **changes):
    response = session.post(
        f"{server.url}/api/webhooks/image-completion",
        json=payload(template, job_id, **changes),
        headers=WEBHOOK,
        timeout=TIMEOUT,
    )
    assert response.status_code == 200, response.text
    return response


def api(server, method, path, headers=READ, session=requests, **kwargs):
    return session.request(method, f"{server.url}{path}", headers=headers, timeout=TIMEOUT, **kwargs)


def statuses(server, headers, job_id):
    """{route: (status, whether a 401 is the documented JSON with a Bearer challenge)} for one credential."""
    seen = {}
    for method, path, kwargs in routes(job_id):
        response = api(server, method, path, headers=headers, **kwargs)
        challenge = response.status_code == 401 and "Bearer" in response.headers.get("WWW-Authenticate", "")
        challenge = challenge and response.json() == {"error": "Unauthorized"}
        seen[f"{method} {path.replace(job_id, '<id>')}"] = (response.status_code, challenge)
    return seen


def test_the_authentication_matrix_in_production(server):
    """Every credential of the table on every route: only the two configured tokens open; every other answer is
    the documented 401; a read token never opens the webhook."""
    job_id = new_id()
    post(server, PROGRESS, job_id)
    actual, expected = {}, {}
    for credential, (headers, _) in CREDENTIALS.items():
        for route, seen in statuses(server, headers, job_id).items():
            actual[credential, route] = seen
            expected[credential, route] = (200, False) if opens("production, tokens", credential) else (401, True)
    assert actual == expected
    for headers in ({"X-Webhook-Secret": TOKEN_A}, READ):
        response = requests.post(
            f"{server.url}/api/webhooks/image-completion",
            json=payload(COMPLETED, job_id),
            headers=headers,
            timeout=TIMEOUT,
        )
        assert response.status_code == 401, headers
    assert api(server, "GET", f"/api/jobs/{job_id}").json()["status"] == "generating"


def test_in_production_without_tokens_the_api_is_closed_and_the_webhook_works(database, tmp_path):
    """Without JOBS_API_TOKENS every API call of every credential is 401, the webhook answers 200, and each
    the master's start-up lines warn about JOBS_API_TOKENS."""
    with GunicornServer(tmp_path, {**PRODUCTION, "DATABASE_URL": database}) as server:
        job_id = new_id()
        post(server, COMPLETED, job_id)
        seen = {
            (credential, route): status
            for credential, (headers, _) in CREDENTIALS.items()
            for route, status in statuses(server, headers, job_id).items()
        }
        assert seen == dict.fromkeys(seen, (401, True))
        output = server.wait_for("JOBS_API_TOKENS")
    assert any("⚠️" in line and "JOBS_API_TOKENS" in line for line in output.splitlines())


def test_an_unknown_job_and_a_bad_parameter_are_json(server):
    """Through gunicorn an unknown job is the JSON 404 and a bad parameter the JSON 400 naming it."""
    response = api(server, "GET", f"/api/jobs/{new_id()}")
    assert (response.status_code, response.json()) == (404, {"error": "Not Found", "message": "Job inconnu"})
    response = api(server, "GET", "/api/jobs", params={"limit": "101"})
    assert response.status_code == 400 and response.json()["details"][0]["path"] == "$.limit"


def test_a_url_over_the_request_line_limit_is_a_documented_json_414(server):
    """A list URL past gunicorn's request-line limit is answered 414 in JSON, a status the OpenAPI document lists."""
    response = api(server, "GET", "/api/jobs", params={"cursor": "x" * 5000})
    assert response.status_code == 414 and response.json()["error"] == "URI Too Long"
    documented = requests.get(f"{server.url}/openapi.json", timeout=TIMEOUT).json()["paths"]["/api/jobs"]["get"]
    assert "414" in documented["responses"]


def test_etag_and_304_through_gunicorn(server):
    """If-None-Match with the current ETag is a 304 without a body; after a notification the old ETag gets a 200."""
    job_id = new_id()
    assert api(server, "PUT", f"/api/jobs/{job_id}", json=OWNER).status_code == 201
    for path in (f"/api/jobs/{job_id}", f"/api/jobs/{job_id}/deliveries", "/api/jobs?limit=5"):
        first = api(server, "GET", path)
        etag = first.headers["ETag"]
        again = api(server, "GET", path, headers={**READ, "If-None-Match": etag})
        assert (again.status_code, again.content, again.headers["ETag"]) == (304, b"", etag), path
    old = api(server, "GET", f"/api/jobs/{job_id}").headers["ETag"]
    post(server, PROGRESS, job_id)
    response = api(server, "GET", f"/api/jobs/{job_id}", headers={**READ, "If-None-Match": old})
    assert response.status_code == 200 and response.headers["ETag"] != old
    assert response.json()["status"] == "generating"


def test_registration_before_and_after_the_notifications_through_gunicorn(server):
    """A PUT before the notifications creates the pending job; they move it on, the owner stays; a PUT after
    changes nothing but the owner and prompt; one row in the end."""
    job_id, owner = new_id(), {**OWNER, "user_id": f"user-{uuid.uuid4().hex}"}
    created = api(server, "PUT", f"/api/jobs/{job_id}", json=owner)
    assert created.status_code == 201 and created.json()["status"] == "pending"
    post(server, PROGRESS, job_id)
    post(server, COMPLETED, job_id)
    again = api(server, "PUT", f"/api/jobs/{job_id}", json=owner)
    job = again.json()
    assert again.status_code == 200 and job["status"] == "completed" and job["images"] == COMPLETED["data"]["images"]
    assert {k: job[k] for k in owner} == owner
    listed = api(server, "GET", "/api/jobs", params={"user_id": owner["user_id"]}).json()
    assert [j["job_id"] for j in listed["jobs"]] == [job_id] and listed["next_cursor"] is None


def test_pages_stay_stable_while_500_jobs_arrive(server):
    """300 jobs, then pages of 37 read while 500 new completed jobs are posted between them: each of the 300 is
    seen exactly once, no job twice; in the end every job is listed."""
    run = uuid.uuid4().hex[:8]
    old = [f"old-{run}-{n}" for n in range(300)]
    new = [f"new-{run}-{n}" for n in range(500)]
    local, sessions = threading.local(), []

    def send(job_id):
        if not hasattr(local, "session"):
            local.session = requests.Session()
            sessions.append(local.session)
        return post(server, COMPLETED, job_id, session=local.session).status_code

    with ThreadPoolExecutor(8) as pool:
        assert set(pool.map(send, old)) == {200}
    arrived = threading.Semaphore(0)
    with ThreadPoolExecutor(8) as pool:
        futures = [pool.submit(send, job_id) for job_id in new]
        for future in futures:
            future.add_done_callback(lambda _: arrived.release())
        seen, pages, cursor = [], 0, None
        with requests.Session() as session:
            while pages < 200:  # bounded: 300 jobs and what other tests left make about 10 pages
                for _ in range(15 if pages < 20 else 0):  # 15 new jobs committed before each of the first pages
                    assert arrived.acquire(timeout=30)
                query = {"limit": 37, **({"cursor": cursor} if cursor else {})}
                body = api(server, "GET", "/api/jobs", session=session, params=query).json()
                seen += [job["job_id"] for job in body["jobs"]]
                pages, cursor = pages + 1, body["next_cursor"]
                if cursor is None:
                    break
        assert [f.result(timeout=60) for f in futures] == [200] * 500
    for session in sessions:
        session.close()
    assert len(seen) == len(set(seen)), "a job came twice"
    assert sorted(job_id for job_id in seen if job_id.startswith(f"old-{run}")) == sorted(old)
    everything = []
    cursor = None
    for _ in range(100):
        body = api(server, "GET", "/api/jobs", params={"limit": 100, **({"cursor": cursor} if cursor else {})}).json()
        everything += [job["job_id"] for job in body["jobs"]]
        if (cursor := body["next_cursor"]) is None:
            break
    assert len(everything) == len(set(everything)) and set(old + new) <= set(everything)
