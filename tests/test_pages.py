"""The /jobs pages: answers, HTTP Basic in production, security headers, escaping, plots matching the records."""

import base64
import json
import re
import sqlite3
import uuid
from datetime import UTC, datetime
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import parse_qs, quote, urlsplit

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families
from werkzeug.security import generate_password_hash

from image_webhook.domain.notifications import Delivery
from image_webhook.service import EXTENSION
from image_webhook.storage.database import deliveries, rollups
from image_webhook.surfaces import formats
from image_webhook.surfaces.pages import HEADERS
from tests.payloads import COMPLETED, FAILED, PROGRESS, SECRET, URL, payload
from tests.servers import GunicornServer, eventually
from tests.test_signatures import KEY_A, signed_headers

USER, PASSWORD = "operator", "correct horse battery staple"
USERS = f"{USER}:{generate_password_hash(PASSWORD, method='pbkdf2:sha256:1000')}"  # cheap hash: tests only
TOKEN = "read-api-token-0123456789abcdefghijklmnopqrstuvwxyz"
ROUTES = ("/jobs", "/jobs.json", "/monitoring.json", "/static/jobs.js")
# every field the backend controls, hostile
SCRIPT = "<script>alert(1)</script>"
BREAKOUT = '"><img src=x onerror=alert(1)>'
MODEL = "<b onmouseover=alert(1)>model</b>"
BROWSER_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
COMPLETED_DESCRIPTION = COMPLETED["data"]["images"][0]["description"]
REFUSED_URLS = ("javascript:alert(1)", "data:text/html,<script>alert(1)</script>")


def basic(user, password):
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def completed(job_id, *, seconds=12.5, sizes=(2048576,), model="gemini-2.0-flash-exp", **changes):
    """A completed notification with one image per size (None: no size_bytes) and a generation time."""
    body = payload(COMPLETED, job_id, **changes)
    image = body["data"]["images"][0]
    body["data"]["images"] = [
        {
            k: v
            for k, v in {**image, "url": f"http://127.0.0.1/{job_id}/{n}.png", "size_bytes": size}.items()
            if v is not None
        }
        for n, size in enumerate(sizes)
    ]
    body["data"]["metadata"].update(model_name=model, generation_time_seconds=seconds)
    return body


def hostile(job_id):
    body = completed(job_id, model=MODEL, message=BREAKOUT, sizes=(1000, 2000, 3000))
    for image in body["data"]["images"]:
        image["description"] = SCRIPT + '" onerror="alert(1)'
    return body


class Tags(HTMLParser):
    """Every start tag with its attributes, and the text inside <script> elements."""

    def __init__(self, html):
        super().__init__()
        self.tags, self.script_text, self._in_script = [], [], False
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        self._in_script = tag == "script"

    def handle_endtag(self, tag):
        self._in_script = False

    def handle_data(self, data):
        if self._in_script and data.strip():
            self.script_text.append(data)


def assert_inert(html):
    """No inline script, no event handler or style attribute, images and links from http(s) or the service."""
    tags = Tags(html)
    assert tags.script_text == []
    for tag, attrs in tags.tags:
        assert not [name for name in attrs if name.startswith("on") or name in ("style", "srcdoc")], (tag, attrs)
        assert tag not in ("iframe", "object", "embed", "base", "svg")
        if tag == "script":
            assert attrs["src"].startswith("/static/")
        if tag == "img":
            assert urlsplit(attrs["src"]).scheme in ("http", "https"), attrs
        if tag == "a" and attrs.get("href"):
            assert attrs["href"].startswith("/") or urlsplit(attrs["href"]).scheme in ("http", "https"), attrs
    assert SCRIPT not in html and BREAKOUT not in html and MODEL not in html
    return tags


def assert_headers(response):
    for name, value in HEADERS.items():
        assert response.headers.get(name) == value, (response.request.path, name)


def counter(metrics_text, name, **labels):
    """The sum of a metric's samples whose labels include `labels`."""
    return sum(
        sample.value
        for family in text_string_to_metric_families(metrics_text)
        for sample in family.samples
        if sample.name == name and labels.items() <= sample.labels.items()
    )


def get(client, path, **kwargs):
    """A Flask client GET, read and closed (a static file is streamed from an open file)."""
    response = client.get(path, **kwargs)
    response.get_data()
    response.close()
    return response


def rows(db, sql):
    return db.read(lambda connection: connection.execute(db.sql(sql)).fetchall())


# --- through the Flask client ------------------------------------------------------------------------------------


@pytest.mark.database
def test_every_page_answers_with_the_security_headers(client):
    """The pages, their JSON views, the static files and their errors answer with the CSP, nosniff, no-referrer."""
    assert client.post(URL, json=completed("job-1")).status_code == 200
    expected = {
        "/jobs": (200, "text/html"),
        "/jobs.json": (200, "application/json"),
        "/jobs/job-1": (200, "text/html"),
        "/monitoring.json?period=week": (200, "application/json"),
        "/static/jobs.js": (200, "text/javascript"),
        "/static/pages.css": (200, "text/css"),
        "/static/vendor/chart.umd.min.js": (200, "text/javascript"),
        "/jobs/unknown-job": (404, "text/html"),  # a page of the service, in its layout
        "/jobs/a%00b": (404, "text/html"),  # no job has such an id (and PostgreSQL text refuses NUL)
        "/jobs/job-1?deliveries_before=x": (400, "application/json"),
        "/jobs.json?status=lost": (400, "application/json"),
    }
    for path, (status, content_type) in expected.items():
        response = get(client, path)
        assert (response.status_code, response.mimetype) == (status, content_type), path
        assert_headers(response)
    assert "Content-Security-Policy" not in client.get("/healthz").headers  # the pages' headers stay on the pages


@pytest.mark.memory_only
def test_the_stateless_mode_says_there_is_nothing_to_show(client):
    """Without a database the page says why it is empty, a job's page is a 404 page saying why, and the JSON
    views answer 404 in JSON."""
    page = client.get("/jobs")
    assert page.status_code == 200 and "Pas de base de données" in page.get_data(as_text=True)
    assert "data-feed" not in page.get_data(as_text=True)  # no script polling a view that does not exist
    for path in ("/jobs.json", "/monitoring.json"):
        response = client.get(path)
        assert response.status_code == 404 and response.is_json, path
    job = client.get("/jobs/job-1")
    assert (job.status_code, job.mimetype) == (404, "text/html")
    assert "Pas de base de données" in job.get_data(as_text=True)


AUTH_CASES = {
    # name: (settings, request headers, expected status on every route)
    "production without users, no credentials": ({}, {}, 401),
    "production without users, any credentials": ({}, basic(USER, PASSWORD), 401),
    "no credentials": ({"DASHBOARD_USERS": USERS}, {}, 401),
    "wrong password": ({"DASHBOARD_USERS": USERS}, basic(USER, "wrong"), 401),
    "unknown user": ({"DASHBOARD_USERS": USERS}, basic("intruder", PASSWORD), 401),
    "the read API's token": ({"DASHBOARD_USERS": USERS}, {"Authorization": f"Bearer {TOKEN}"}, 401),
    "the webhook's secret": ({"DASHBOARD_USERS": USERS}, {"X-Webhook-Secret": SECRET}, 401),
    "right credentials": ({"DASHBOARD_USERS": USERS}, basic(USER, PASSWORD), 200),
    "turned off": ({"DASHBOARD_USERS": USERS, "DASHBOARD": "off"}, basic(USER, PASSWORD), 404),
}


@pytest.mark.database
@pytest.mark.parametrize("case", AUTH_CASES)
def test_production_asks_for_the_page_login(make_app, case):
    """In production every page, JSON view and static file needs a DASHBOARD_USERS login (401 Basic challenge
    otherwise, closed while none is set), never a read-API token; DASHBOARD=off makes them 404."""
    settings, headers, status = AUTH_CASES[case]
    app = make_app(APP_ENV="production", WEBHOOK_SECRET=SECRET, JOBS_API_TOKENS=TOKEN, **settings)
    client = app.test_client()
    assert client.post(URL, json=completed("job-1"), headers={"X-Webhook-Secret": SECRET}).status_code == 200
    for path in (*ROUTES, "/jobs/job-1"):
        response = get(client, path, headers=headers)
        assert response.status_code == status, path
        assert response.is_json or status == 200
        assert_headers(response)
        if status == 401:
            assert response.headers["WWW-Authenticate"] == 'Basic realm="jobs"'
    assert client.get("/api/jobs", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200  # untouched


@pytest.mark.database
@pytest.mark.parametrize("dashboard", ["on", "off"])
def test_development_is_open_unless_turned_off(make_app, dashboard):
    """In development the pages need no login; DASHBOARD=off still makes them 404."""
    client = make_app(DASHBOARD=dashboard).test_client()
    for path in ROUTES:
        assert get(client, path).status_code == (200 if dashboard == "on" else 404), path


@pytest.mark.database
def test_hostile_fields_are_shown_as_text_only(app, client):
    """A prompt, message, model name and alt text carrying HTML come out escaped, and no image URL a
    notification named (http(s) or not, written straight into the database) is loaded or linked: the page
    shows the service's own copies only."""
    assert client.post(URL, json=hostile("job-1")).status_code == 200
    assert client.post(URL, json=payload(FAILED, "job-2", error_message=SCRIPT, message=BREAKOUT)).status_code == 200
    db = app.extensions[EXTENSION].db
    images = [{"url": url, "description": SCRIPT} for url in REFUSED_URLS]
    images.append({"url": "http://127.0.0.1/job-1/0.png", "description": SCRIPT})
    update = "UPDATE jobs SET images = :images WHERE job_id = 'job-1'"
    db.write(lambda connection: connection.execute(db.sql(update), {"images": json.dumps(images)}))

    for path in ("/jobs", "/jobs/job-1", "/jobs/job-2"):
        html = client.get(path).get_data(as_text=True)
        tags = assert_inert(html)
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html, path
        assert not [attrs for tag, attrs in tags.tags if "javascript:" in str(attrs) or "data:" in str(attrs)]
    assert "&#34;&gt;&lt;img src=x onerror=alert(1)&gt;" in client.get("/jobs/job-1").get_data(as_text=True)
    feed = client.get("/jobs.json").json["jobs"]
    assert [image["url"] for image in feed[1]["thumbnails"]] == [None] * len(images)  # nothing copied yet
    assert [image["label"] for image in feed[1]["thumbnails"]] == ["copie en attente"] * len(images)
    assert "127.0.0.1/job-1/0.png" not in "".join(str(attrs) for _, attrs in assert_inert(html).tags)
    assert feed[1]["model"] == MODEL  # JSON carries the text as it is: the script inserts it with textContent


@pytest.mark.database
def test_the_feed_answers_304_until_a_job_changes(client):
    """The page's JSON view has an ETag, the page hands it to its script, and 304 holds until a job moves."""
    client.post(URL, json=payload(PROGRESS, "job-1", status="generating", progress=30))
    first = client.get("/jobs.json")
    etag = first.headers["ETag"]
    page = Tags(client.get("/jobs").get_data(as_text=True))
    assert [attrs["data-etag"] for tag, attrs in page.tags if tag == "section" and "data-etag" in attrs] == [etag]
    unchanged = client.get("/jobs.json", headers={"If-None-Match": etag})
    assert unchanged.status_code == 304 and unchanged.data == b""
    client.post(URL, json=payload(PROGRESS, "job-1", status="generating", progress=70))
    moved = client.get("/jobs.json", headers={"If-None-Match": etag})
    assert moved.status_code == 200 and moved.headers["ETag"] != etag
    assert moved.json["jobs"][0]["progress"] == 70 and moved.json["jobs"][0]["running"] is True


@pytest.mark.database
def test_filters_and_keyset_pages(client):
    """Status and owner filters, and pages that follow each other without repeating a job."""
    for n in range(5):
        client.put(f"/api/jobs/job-{n}", json={"user_id": "alice" if n % 2 == 0 else "bob"})
    client.post(URL, json=completed("job-4"))
    seen, query = [], "user_id=alice&limit=2"
    for _ in range(5):
        page = client.get(f"/jobs.json?{query}").json
        seen += [job["job_id"] for job in page["jobs"]]
        assert {job["user_id"] for job in page["jobs"]} == {"alice"}
        if not page["next_url"]:
            break
        query = urlsplit(page["next_url"]).query
        assert parse_qs(query)["user_id"] == ["alice"]
    assert seen == ["job-4", "job-2", "job-0"]
    assert [job["job_id"] for job in client.get("/jobs.json?status=completed").json["jobs"]] == ["job-4"]
    assert client.get("/jobs.json?status=&user_id=").json["jobs"][0]["job_id"] == "job-4"  # empty fields: no filter
    for query in (
        "status=lost",
        "limit=0",
        "limit=101",
        "limit=%C2%B2",  # "²" is a digit to str.isdigit(), not to int()
        "limit=%EF%BC%93",  # a fullwidth 3
        "cursor=nope",
        "period=year",
        "user_id=" + "x" * 129,
        "user_id=a%00b",
    ):
        response = client.get(f"/jobs.json?{query}" if "period" not in query else f"/monitoring.json?{query}")
        assert response.status_code == 400 and response.json["error"] == "Paramètre invalide", query
        if "period" not in query:  # the page itself refuses the same parameters
            assert client.get(f"/jobs?{query}").status_code == 400, query


@pytest.mark.database
def test_a_job_page_shows_what_arrived_and_what_was_answered(client):
    """Each delivery of a job is listed with its outcome, the body received and the answer, one click away."""
    client.post(URL, json=payload(PROGRESS, "job-1", progress=40))
    client.post(URL, json=completed("job-1", seconds=7.25))
    client.post(URL, json=completed("job-1", seconds=7.25))

    def page():
        return client.get("/jobs/job-1").get_data(as_text=True)

    assert eventually(lambda: page().count("<details>"), 3) == 3  # a duplicate is written without waiting
    html = page()
    for text in ("progress", "processed", "duplicate", "Job déjà traité", "7.25", "&#34;progress&#34;: 40"):
        assert text in html, text
    assert 'src="http://127.0.0.1/job-1/0.png"' not in html  # the source's URL is shown as text, never loaded
    assert "<code>http://127.0.0.1/job-1/0.png</code>" in html and "copie en attente" in html


SIZES = [
    (0, "0 octet"),
    (1, "1 octet"),
    (999, "999 octets"),
    (1000, "1,0 ko"),
    (1550, "1,6 ko"),
    (9_940, "9,9 ko"),
    (9_960, "10 ko"),
    (512_000, "512 ko"),
    (999_999, "1,0 Mo"),  # 999,999 ko: never "1000 ko"
    (2048576, "2,0 Mo"),
    (1_500_000_000, "1,5 Go"),
    (12 * 10**12, "12 To"),
    (3 * 10**15, "3000 To"),
]


@pytest.mark.parametrize("value, text", SIZES)
def test_sizes_read_in_french_in_one_base(value, text):
    """A size is written in octets under 1 ko, then in ko, Mo, Go, To of 1000 (as the plots' size bins), with a
    decimal comma under 10."""
    assert formats.size(value) == text


@pytest.mark.parametrize(
    "iso, text, machine",
    [
        ("2026-12-07T14:03:12.123456+00:00", "7 déc. 2026 14:03:12 UTC", "2026-12-07T14:03:12Z"),
        ("2026-01-01T00:30:00.5+01:00", "31 déc. 2025 23:30:00 UTC", "2025-12-31T23:30:00Z"),
        ("2025-08-01T09:00:00", "1 août 2025 09:00:00 UTC", "2025-08-01T09:00:00Z"),  # naive: UTC
        ("not a time", "", ""),
        (None, "", ""),
    ],
)
def test_times_read_in_utc_to_the_second(iso, text, machine):
    """A stored time reads in UTC to the second with a French month, and its <time datetime> has no
    microseconds (HTML allows three digits at most)."""
    assert (formats.utc_text(iso), formats.machine_time(iso)) == (text, machine)


MICROSECONDS = re.compile(r"\d{2}:\d{2}:\d{2}\.\d{4,}")


def facts(html):
    """The job page's facts: each <dt> label with its <dd>'s text."""
    block = html[html.index('<dl class="facts">') : html.index("</dl>")]
    pairs = re.findall(r"<dt>(.*?)</dt><dd[^>]*>(.*?)</dd>", block, re.S)
    return {label: re.sub(r"<[^>]+>", "", text).strip() for label, text in pairs}


@pytest.mark.database
def test_a_job_page_writes_values_for_people(client):
    """A completed job reads 'Progression 100 %', its image '2,0 Mo' (the bytes kept in a title), its generation
    time '12,5 s', and every time in UTC to the second in a <time> the script rewrites, never with microseconds."""
    assert client.post(URL, json=payload(PROGRESS, "job-1", progress=40)).status_code == 200
    assert client.post(URL, json=completed("job-1")).status_code == 200
    html = client.get("/jobs/job-1").get_data(as_text=True)
    shown = facts(html)
    assert shown["Progression"] == "100 %"
    assert '<span class="size" title="2048576 octets">2,0 Mo</span>' in html
    assert "2048576 octets</span>" not in html.replace('title="2048576 octets"', "")
    assert MICROSECONDS.search(html.split('<pre class="body">')[0]) is None  # bodies are shown as they arrived
    times = [attrs for tag, attrs in Tags(html).tags if tag == "time" and "data-local" in attrs]
    assert len(times) >= 5  # created, updated, completed, each delivery's reception, the metadata's timestamp
    for attrs in times:
        assert re.fullmatch(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z", attrs["datetime"]), attrs
        assert re.fullmatch(r"\d{1,2} \S+ \d{4} \d{2}:\d{2}:\d{2} UTC", attrs["title"]), attrs
    assert "21 oct. 2025 16:45:00 UTC" in shown["Terminé (selon le backend)"]
    row = client.get("/jobs").get_data(as_text=True)
    assert "<small>12,5 s</small>" in row
    assert client.get("/jobs.json").json["jobs"][0]["progress"] == 100  # the feed keeps numbers for the script


@pytest.mark.database
def test_the_job_page_says_whose_clock_each_time_is(client):
    """Created is the service's reception, completed the backend's generated_at: when the backend's end comes
    before the reception, a note says why; a final notification without any time is dated by its reception."""
    assert client.post(URL, json=completed("job-old")).status_code == 200  # generated_at 2025-10-21, long ago
    html = client.get("/jobs/job-old").get_data(as_text=True)
    shown = facts(html)
    assert "horloge du service" in shown["Créé (réception)"]
    assert "horloge du backend" in shown["Terminé (selon le backend)"]
    assert "Terminé avant Créé" in shown["Terminé (selon le backend)"]

    undated = completed("job-undated")
    del undated["timestamp"], undated["data"]["generated_at"]
    assert client.post(URL, json=undated).status_code == 200
    shown = facts(client.get("/jobs/job-undated").get_data(as_text=True))
    assert "Terminé (réception)" in shown and "n'était pas datée" in shown["Terminé (réception)"]
    assert "Terminé avant Créé" not in str(shown)
    assert client.post(URL, json=payload(PROGRESS, "job-now")).status_code == 200  # created: received now
    dated = completed("job-now")
    dated["data"]["generated_at"] = datetime.now(UTC).isoformat()  # ended after that, by the backend's clock
    assert client.post(URL, json=dated).status_code == 200
    shown = facts(client.get("/jobs/job-now").get_data(as_text=True))
    assert "Terminé (selon le backend)" in shown and "Terminé avant Créé" not in str(shown)


@pytest.mark.database
def test_an_unknown_job_is_a_page_in_the_layout(client, logs):
    """/jobs/<unknown> answers 404 as an HTML page with the header and a link back to /jobs (its id escaped),
    logged as every refusal; a client that prefers JSON, and the read API whatever it accepts, get JSON."""
    response = client.get("/jobs/" + quote(BREAKOUT), headers={"Accept": BROWSER_ACCEPT})
    html = response.get_data(as_text=True)
    assert (response.status_code, response.mimetype) == (404, "text/html")
    assert_headers(response)
    tags = assert_inert(html)
    assert ("header", {"class": "top"}) in tags.tags and ("a", {"id": "back", "href": "/jobs"}) in tags.tags
    assert "Job introuvable" in html and "Job inconnu" in html and "&#34;&gt;&lt;img src=x onerror=alert(1)&gt;" in html
    assert any("Requête refusée: 404 Not Found" in record.getMessage() for record in logs.records)
    for accept in (None, "*/*", "text/html"):
        assert client.get("/jobs/nope", headers={"Accept": accept} if accept else {}).mimetype == "text/html"
    for accept in ("application/json", "application/json, */*;q=0.5"):
        answer = client.get("/jobs/nope", headers={"Accept": accept})
        assert (answer.status_code, answer.json) == (404, {"error": "Not Found", "message": "Job inconnu"})
    for accept in (BROWSER_ACCEPT, "application/json"):
        api = client.get("/api/jobs/nope", headers={"Accept": accept})
        assert (api.status_code, api.mimetype) == (404, "application/json")
    for path in ("/jobs.json?status=lost", "/jobs?limit=0", "/jobs/nope?deliveries_before=0"):
        refused = client.get(path, headers={"Accept": BROWSER_ACCEPT})  # the page's other errors stay JSON
        assert (refused.status_code, refused.mimetype) == (400, "application/json"), path


@pytest.mark.database
def test_a_job_page_lists_its_deliveries_in_pages(app, client):
    """45 deliveries: 20 per page newest first, each page linking to the previous ones by the last delivery id,
    none repeated or skipped; a bad deliveries_before is a 400 like the page's other parameters."""
    for progress in range(1, 46):
        assert client.post(URL, json=payload(PROGRESS, "job-1", progress=progress)).status_code == 200
    db = app.extensions[EXTENSION].db
    stored = [row["id"] for row in rows(db, "SELECT id FROM deliveries WHERE job_id = 'job-1' ORDER BY id DESC")]
    pages, path = [], "/jobs/job-1"
    while path:
        html = client.get(path).get_data(as_text=True)
        tags = Tags(html)
        pages.append([int(attrs["data-delivery-id"]) for tag, attrs in tags.tags if "data-delivery-id" in attrs])
        earlier = [attrs["href"] for tag, attrs in tags.tags if tag == "a" and attrs.get("rel") == "next"]
        assert ("Livraisons précédentes" in html) == bool(earlier)
        assert ("Les plus récentes" in html) == (len(pages) > 1)
        path = earlier[0].split("#")[0] if earlier else None
        if path:
            assert parse_qs(urlsplit(path).query) == {"deliveries_before": [str(pages[-1][-1])]}
    assert [len(page) for page in pages] == [20, 20, 5]
    assert [delivery for page in pages for delivery in page] == stored
    for value in ("x", "0", "-1", "1.5", "%C2%B2", "9" * 19, ""):
        response = client.get(f"/jobs/job-1?deliveries_before={value}")
        assert response.status_code == 400 and response.json["error"] == "Paramètre invalide", value
        assert response.json["details"][0]["path"] == "$.deliveries_before"


@pytest.mark.database
def test_a_job_page_shows_at_most_2_mib_of_bodies(app, client):
    """Five deliveries of 900 kB bodies kept whole: a job page loads and shows 2 of them (2 MiB of bodies at most, one
    at least), the others on the earlier pages, none repeated or skipped."""
    assert client.post(URL, json=completed("job-big")).status_code == 200  # the job, and a small delivery
    db = app.extensions[EXTENSION].db
    for n in range(5):
        delivery = Delivery(client_address="192.0.2.1", raw=b"%d" % n * 900_000, job_id="job-big", status="completed")
        db.write(
            lambda connection, d=delivery: deliveries.insert(
                db, connection, d, outcome="processed", status=200, answer="{}"
            )
        )
    stored = [row["id"] for row in rows(db, "SELECT id FROM deliveries WHERE job_id = 'job-big' ORDER BY id DESC")]
    pages, path = [], "/jobs/job-big"
    while path:
        html = client.get(path).get_data(as_text=True)
        assert len(html) < 2 * 1024 * 1024 + 100_000
        tags = Tags(html)
        pages.append([int(attrs["data-delivery-id"]) for tag, attrs in tags.tags if "data-delivery-id" in attrs])
        earlier = [attrs["href"] for tag, attrs in tags.tags if tag == "a" and attrs.get("rel") == "next"]
        path = earlier[0].split("#")[0] if earlier else None
    assert [len(page) for page in pages] == [2, 2, 2]
    assert [delivery for page in pages for delivery in page] == stored


@pytest.mark.database
def test_outcomes_read_in_french_with_the_stored_word_kept(app, client):
    """Each delivery's outcome (and a refusal's reason) is said in French on the page, the stored word in its
    title and data attribute."""
    client.post(URL, json=payload(PROGRESS, "job-1", progress=40))
    client.post(URL, json=completed("job-1"))
    client.post(URL, json=completed("job-1"))
    client.post(URL, json=payload(PROGRESS, "job-1", progress=50))
    client.post(URL, json={"job_id": "job-1", "status": "completed"})  # no data: refused, and kept
    db = app.extensions[EXTENSION].db
    count = "SELECT COUNT(*) AS n FROM deliveries WHERE job_id = 'job-1'"
    assert eventually(lambda: rows(db, count)[0]["n"], 5) == 5  # refusals and duplicates are written unawaited
    html = client.get("/jobs/job-1").get_data(as_text=True)
    shown = dict(re.findall(r'<span class="outcome" title="[^"]*" data-outcome="([^"]*)">([^<]*)</span>', html))
    assert shown == {
        "progress": "progression",
        "processed": "traité",
        "duplicate": "doublon",
        "stale": "en retard (ignoré)",
        "rejected": "refusé",
    }
    assert '<small class="reason" title="missing_images">images manquantes</small>' in html


@pytest.mark.parametrize("stored, text", [*formats.OUTCOMES.items(), ("unheard-of", "unheard-of")])
def test_every_stored_outcome_has_its_french_word(stored, text):
    """Every word a delivery's row can keep has its French word; an unknown one is shown as it was stored."""
    assert formats.outcome(stored) == text and (text != stored or stored == "unheard-of")


@pytest.mark.database
def test_the_prompt_is_the_registrations_and_a_description_is_a_description(client):
    """A job's first image description is shown upright as its description, not as the prompt; the prompt
    given at registration is shown as the prompt, on both pages and in the feed."""
    assert client.post(URL, json=completed("job-1")).status_code == 200
    html = client.get("/jobs").get_data(as_text=True)
    assert '<q class="prompt"' not in html
    assert '<span class="description" title="Description de la première image">Un chat astronaute' in html
    job = client.get("/jobs/job-1").get_data(as_text=True)
    assert facts(job)["Prompt"].startswith("—")
    assert '<span class="label">Description</span> <span class="description">Un chat astronaute' in job
    feed = client.get("/jobs.json").json["jobs"][0]
    assert (feed["prompt"], feed["description"]) == (None, COMPLETED_DESCRIPTION)

    assert client.put("/api/jobs/job-2", json={"prompt": "Un chien sur la Lune"}).status_code == 201
    assert client.post(URL, json=completed("job-2")).status_code == 200
    html = client.get("/jobs").get_data(as_text=True)
    assert '<q class="prompt" title="Prompt">Un chien sur la Lune</q>' in html
    assert facts(client.get("/jobs/job-2").get_data(as_text=True))["Prompt"] == "Un chien sur la Lune"
    assert client.get("/jobs.json").json["jobs"][0]["prompt"] == "Un chien sur la Lune"


@pytest.mark.database
def test_plot_data_matches_the_database_and_the_metrics(app, client):
    """3 completed jobs, 1 failed and 2 duplicates: the plots' numbers equal the records' and /metrics' counts."""
    db = app.extensions[EXTENSION].db
    sent = {"a": (2.5, (1000, 300_000)), "b": (10.0, (2_500_000,)), "c": (30.25, (12_000_000, None))}
    for name, (seconds, sizes) in sent.items():
        client.post(URL, json=completed(f"job-{name}", seconds=seconds, sizes=sizes, model=f"model-{name < 'c'}"))
    client.post(URL, json=payload(FAILED, "job-d"))
    client.post(URL, json=completed("job-a"))
    client.post(URL, json=payload(FAILED, "job-d"))
    duplicates = "SELECT COUNT(*) AS n FROM deliveries WHERE outcome = 'duplicate'"
    assert eventually(lambda: rows(db, duplicates)[0]["n"], 2) == 2  # duplicates are written without waiting

    stats = client.get("/monitoring.json?period=hour").json
    metrics = client.get("/metrics").get_data(as_text=True)
    by_status = {row["status"]: row["n"] for row in rows(db, "SELECT status, COUNT(*) AS n FROM jobs GROUP BY status")}
    times = sorted(row["t"] for row in rows(db, "SELECT processing_time_ms AS t FROM jobs"))
    assert stats["jobs"]["total_completed"] == by_status["completed"] == 3
    assert stats["jobs"]["total_failed"] == by_status["failed"] == 1
    assert sum(stats["jobs"]["completed"]) == 3 and sum(stats["jobs"]["failed"]) == 1
    assert stats["duplicates"]["total"] == sum(stats["duplicates"]["deliveries"]) == 2
    assert counter(metrics, "image_webhook_notifications_total", outcome="duplicate") == 2
    assert counter(metrics, "image_webhook_notifications_total", outcome="processed") == 4
    assert stats["processing_ms"]["jobs"] == len(times) == 4
    assert counter(metrics, "image_webhook_processing_seconds_count") == 4
    assert counter(metrics, "image_webhook_processing_seconds_sum") == pytest.approx(sum(times) / 1000)
    # the median is the peak of the 5 %-wide bin holding its rank: a measured time, never below the exact one and
    # at most rollups.RATIO above it (two times of one bin: 0.416 and 0.435 ms); the p99 of 4 times is the largest
    median = stats["processing_ms"]["overall_median"]
    assert median in times and times[1] <= median <= times[1] * rollups.RATIO, (median, times)
    assert stats["processing_ms"]["overall_p99"] == times[-1]
    sizes = stats["image_sizes"]
    assert sizes["images"] == [1, 1, 0, 0, 1, 0, 1] and sizes["unknown_size"] == 1
    assert sizes["images_total"] == 5 == counter(metrics, "image_webhook_images_total")
    assert sizes["bytes_total"] == 14_801_000 == counter(metrics, "image_webhook_image_bytes_total")
    models = {m["model"]: m for m in stats["generation_seconds"]}
    assert models["model-True"]["completed"] == 2 and models["model-True"]["seconds"] == pytest.approx(12.5)
    assert models["model-True"]["average"] == pytest.approx(6.25) and models["model-True"]["max"] == 10.0
    assert sum(m["seconds"] for m in models.values()) == pytest.approx(42.75)
    assert counter(metrics, "image_webhook_generation_seconds_sum") == pytest.approx(42.75)
    assert sum(m["timed"] for m in models.values()) == 3 == counter(metrics, "image_webhook_generation_seconds_count")


@pytest.mark.database
def test_replayed_signed_messages_count_as_duplicates_as_in_the_metrics(make_app):
    """A signed message replayed is answered 'Job déjà traité' like a duplicate job: both are in the plot, as in
    /metrics."""
    client = make_app(WEBHOOK_SIGNING_SECRET=KEY_A).test_client()
    body = json.dumps(completed("job-1")).encode()
    for message_id in ("msg-1", "msg-1", "msg-1", "msg-2"):  # two replays, then the same job in a new message
        assert client.post(URL, data=body, headers=signed_headers(body, message_id=message_id)).status_code == 200
    metrics = client.get("/metrics").get_data(as_text=True)
    assert counter(metrics, "image_webhook_notifications_total", outcome="duplicate") == 3
    total = eventually(lambda: client.get("/monitoring.json?period=hour").json["duplicates"]["total"], 3)
    assert total == 3


# --- through the real gunicorn -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def production(tmp_path_factory):
    """One gunicorn in production with a page login, a read-API token and ONE worker (its /metrics counts every
    request the records hold), on its own SQLite file."""
    cwd = tmp_path_factory.mktemp("pages")
    env = {"APP_ENV": "production", "WEBHOOK_SECRET": SECRET, "DASHBOARD_USERS": USERS, "JOBS_API_TOKENS": TOKEN}
    with GunicornServer(cwd, {**env, "WEB_CONCURRENCY": "1"}) as server:
        server.database = Path(cwd) / "jobs.sqlite3"
        yield server


def post(server, body):
    response = server.post(body, headers={"X-Webhook-Secret": SECRET})
    assert response.status_code == 200, response.text
    return response


def test_gunicorn_pages_need_the_login(production):
    """Through gunicorn: 401 with the Basic challenge without the right login or with a read-API token, 200 with
    it; the security headers on every answer."""
    post(production, completed(f"auth-{uuid.uuid4().hex}"))
    login = basic(USER, PASSWORD)
    for path in ROUTES:
        for headers in ({}, basic(USER, "wrong"), {"Authorization": f"Bearer {TOKEN}"}):
            refused = requests.get(production.url + path, headers=headers, timeout=10)
            assert refused.status_code == 401 and refused.headers["WWW-Authenticate"] == 'Basic realm="jobs"'
            assert_headers(refused)
        allowed = requests.get(production.url + path, headers=login, timeout=10)
        assert allowed.status_code == 200, path
        assert_headers(allowed)


def test_gunicorn_escapes_hostile_fields(production):
    """Through gunicorn: hostile text posted by the backend, and a javascript: URL put in the database, come out
    of the pages inert."""
    job_id = f"hostile-{uuid.uuid4().hex}"
    post(production, hostile(job_id))
    with sqlite3.connect(production.database, timeout=10) as connection:
        (images,) = connection.execute("SELECT images FROM jobs WHERE job_id = ?", (job_id,)).fetchone()
        changed = json.loads(images)
        changed[0]["url"] = REFUSED_URLS[0]
        connection.execute("UPDATE jobs SET images = ? WHERE job_id = ?", (json.dumps(changed), job_id))
    for path in ("/jobs", f"/jobs/{job_id}"):
        html = requests.get(production.url + path, headers=basic(USER, PASSWORD), timeout=10).text
        tags = assert_inert(html)
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
        assert not [attrs for tag, attrs in tags.tags if "javascript:" in str(attrs)]


def test_gunicorn_plot_data_matches_the_database_and_the_metrics(production):
    """Through gunicorn with one worker: the plot numbers equal the SQLite file's counts and /metrics."""
    run = uuid.uuid4().hex
    for n, seconds in enumerate((1.5, 4.0, 8.5)):
        post(production, completed(f"plot-{run}-{n}", seconds=seconds, sizes=(1000 * (n + 1),)))
    post(production, payload(FAILED, f"plot-{run}-failed"))
    for _ in range(2):
        post(production, completed(f"plot-{run}-0"))

    def count(sql):
        with sqlite3.connect(production.database, timeout=10) as connection:
            return connection.execute(sql).fetchone()[0]

    duplicates = "SELECT COUNT(*) FROM deliveries WHERE outcome = 'duplicate'"
    metrics = requests.get(production.url + "/metrics", timeout=10).text
    expected = counter(metrics, "image_webhook_notifications_total", outcome="duplicate")
    assert eventually(lambda: count(duplicates), expected) == expected >= 2
    stats = requests.get(production.url + "/monitoring.json?period=day", headers=basic(USER, PASSWORD), timeout=10)
    stats = stats.json()
    assert stats["duplicates"]["total"] == expected
    assert stats["jobs"]["total_completed"] == count("SELECT COUNT(*) FROM jobs WHERE status = 'completed'")
    assert stats["jobs"]["total_failed"] == count("SELECT COUNT(*) FROM jobs WHERE status = 'failed'") >= 1
    assert stats["jobs"]["total_completed"] + stats["jobs"]["total_failed"] == counter(
        metrics, "image_webhook_processing_seconds_count"
    )
    assert stats["image_sizes"]["bytes_total"] == counter(metrics, "image_webhook_image_bytes_total")
    assert stats["image_sizes"]["images_total"] == counter(metrics, "image_webhook_images_total")
    seconds = sum(m["seconds"] for m in stats["generation_seconds"])
    assert seconds == pytest.approx(counter(metrics, "image_webhook_generation_seconds_sum"))


@pytest.mark.parametrize(
    "settings, status",
    [({"DASHBOARD": "off", "DASHBOARD_USERS": USERS}, 404), ({}, 401)],
    ids=["turned off", "no users"],
)
def test_gunicorn_closed_or_turned_off(tmp_path, settings, status):
    """Through gunicorn in production: closed (401, with a warning at start-up) while DASHBOARD_USERS is empty;
    404 everywhere with DASHBOARD=off."""
    env = {"APP_ENV": "production", "WEBHOOK_SECRET": SECRET, "WEB_CONCURRENCY": "1", **settings}
    with GunicornServer(tmp_path, env) as server:
        for path in ROUTES:
            response = requests.get(server.url + path, headers=basic(USER, PASSWORD), timeout=10)
            assert response.status_code == status and response.headers["Content-Type"] == "application/json", path
        if status == 401:
            assert "⚠️" in server.wait_for("DASHBOARD_USERS is empty")


def test_templates_and_static_files_are_shipped_with_the_package():
    """The page needs no network: the charting library, its licence and version are files of the package."""
    static = Path(__file__).resolve().parent.parent / "image_webhook" / "surfaces" / "static"
    assert (static / "vendor" / "chart.umd.min.js").read_text().startswith("/*!\n * Chart.js v4.6.1")
    assert "MIT" in (static / "vendor" / "chart.js-LICENSE.md").read_text()
    assert "4.6.1" in (static / "vendor" / "README.md").read_text()
    for script in static.glob("*.js"):
        assert "innerHTML" not in script.read_text() and "eval(" not in script.read_text(), script
