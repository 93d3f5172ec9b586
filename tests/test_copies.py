"""The copy of the images, through the webhook, the copiers and the read API, on SQLite and PostgreSQL."""

import io
import json
import sqlite3
import struct
import time
import zlib
from contextlib import closing

import pytest
from PIL import Image

from image_webhook.service import EXTENSION
from tests.image_source import ImageSource, image_bytes
from tests.payloads import COMPLETED, FAILED, URL, payload
from tests.servers import free_port
from tests.test_signatures import KEY_A, signed_headers

pytestmark = pytest.mark.database


@pytest.fixture
def source():
    server = ImageSource().start()
    yield server
    server.stop()


@pytest.fixture
def copying(make_app, source):
    """An app whose copiers run, fetching from the test's image source only, retrying fast."""

    def make(**config):
        settings = {"IMAGE_SOURCES": source.origin, "IMAGE_RETRY_BASE": 0.05, "IMAGE_COPY_LEASE": 5, **config}
        app = make_app(**settings)
        app.extensions[EXTENSION].copiers.start()
        return app

    return make


def completed(job_id, *images):
    """A completed notification for `images`: (url, claims) pairs."""
    body = payload(COMPLETED, job_id)
    body["data"]["images"] = [{"url": url, **claims} for url, claims in images]
    return body


def until(read, done, timeout=15):
    """Poll `read()` until `done(value)` (a value to equal, or a predicate); return the last value."""
    check = done if callable(done) else (lambda value: value == done)
    deadline = time.monotonic() + timeout
    while not check(value := read()) and time.monotonic() < deadline:
        time.sleep(0.02)
    return value


def get(client, path, **kwargs):
    """A GET whose response (a stored file, streamed) is read and closed."""
    response = client.get(path, **kwargs)
    response.get_data()
    response.close()
    return response


def copies_of(client, job_id, settled=True, timeout=15, headers=None):
    """The job's copies once none is queued or copying (or at once when not `settled`)."""

    def read():
        found = client.get(f"/api/jobs/{job_id}", headers=headers).get_json()["copies"]
        return found if not settled or all(c["state"] not in ("queued", "copying") for c in found) else None

    if not settled:
        return read()
    return until(read, lambda found: found is not None, timeout=timeout)


def test_each_image_is_stored_verified_and_served_as_the_source_has_it(copying, source):
    """Four images (PNG, JPEG, WebP, a larger PNG) are stored; their bytes, content types and thumbnails are served."""
    files = [
        ("/a.png", image_bytes("PNG"), "image/png"),
        ("/b.jpg", image_bytes("JPEG", (640, 480)), "image/jpeg"),
        ("/c.webp", image_bytes("WEBP", (300, 600)), "image/webp"),
        ("/d.png", image_bytes("PNG", (1024, 1024)), "image/png"),
    ]
    client = copying().test_client()
    images = [(source.add(path, data, kind), {}) for path, data, kind in files]
    assert client.post(URL, json=completed("job-four", *images)).status_code == 200
    found = copies_of(client, "job-four")
    assert [c["state"] for c in found] == ["stored"] * 4
    for n, (_, data, kind) in enumerate(files):
        image = get(client, f"/api/jobs/job-four/images/{n}")
        assert image.status_code == 200 and image.data == data and image.mimetype == kind
        assert image.headers["Cache-Control"] == "private, max-age=31536000, immutable"
        assert found[n]["bytes"] == len(data) and found[n]["verified"] is True and found[n]["mismatches"] == []
        thumbnail = Image.open(io.BytesIO(get(client, f"/api/jobs/job-four/images/{n}/thumbnail").data))
        assert thumbnail.format == "WEBP" and max(thumbnail.size) <= 256
    assert max(Image.open(io.BytesIO(get(client, "/api/jobs/job-four/images/3/thumbnail").data)).size) == 256


def test_a_stored_image_answers_304_and_ranges(copying, source):
    """The ETag is the file's SHA-256: If-None-Match gives 304; a Range gives 206 with those bytes."""
    client = copying().test_client()
    data = image_bytes("PNG", (200, 200))
    client.post(URL, json=completed("job-etag", (source.add("/e.png", data), {})))
    digest = copies_of(client, "job-etag")[0]["sha256"]
    first = get(client, "/api/jobs/job-etag/images/0")
    assert first.headers["ETag"] == f'"{digest}"'
    assert get(client, "/api/jobs/job-etag/images/0", headers={"If-None-Match": f'"{digest}"'}).status_code == 304
    part = get(client, "/api/jobs/job-etag/images/0", headers={"Range": "bytes=0-9"})
    assert part.status_code == 206 and part.data == data[:10]


def test_an_image_not_copied_yet_is_a_404_with_its_copy(make_app, source):
    """Before any copier ran: 404 "Image non copiée" with the copy's state; an unknown index or job: 404."""
    client = make_app(IMAGE_SOURCES=source.origin).test_client()
    client.post(URL, json=completed("job-wait", (source.add("/w.png", image_bytes()), {})))
    waiting = get(client, "/api/jobs/job-wait/images/0")
    assert waiting.status_code == 404
    assert waiting.get_json()["message"] == "Image non copiée" and waiting.get_json()["copy"]["state"] == "queued"
    assert get(client, "/api/jobs/job-wait/images/1").get_json()["message"].startswith("Image inconnue")
    assert get(client, "/api/jobs/nobody/images/0").get_json()["message"] == "Job inconnu"
    assert source.requests == []  # nothing fetched: the webhook never waits for a copy


def test_the_job_etag_changes_when_a_copy_changes_state(copying, source):
    """A polling application sees the copy end: the job's ETag before and after differ."""
    app = copying()
    client = app.test_client()
    source.hold.set()
    client.post(URL, json=completed("job-poll", (source.add("/p.png", image_bytes()), {})))
    assert source.holding.wait(10)
    before = client.get("/api/jobs/job-poll").headers["ETag"]
    source.hold.clear()
    source.release.set()
    assert until(lambda: copies_of(client, "job-poll", settled=False)[0]["state"], "stored") == "stored"
    assert client.get("/api/jobs/job-poll").headers["ETag"] != before


def test_a_duplicate_and_a_replay_fetch_each_image_once(copying, source):
    """The same completed posted again, and a signed message replayed, add no task: each image is fetched once."""
    client = copying(WEBHOOK_SIGNING_SECRET=KEY_A, WEBHOOK_AUTH="any").test_client()
    body = completed("job-dup", (source.add("/1.png", image_bytes()), {}), (source.add("/2.png", image_bytes()), {}))
    raw = json.dumps(body).encode()
    headers = signed_headers(raw, message_id="msg-dup")
    for _ in range(2):
        assert client.post(URL, data=raw, headers=headers).status_code == 200
    assert client.post(URL, json=body).get_json()["message"] == "Job déjà traité"
    assert [c["state"] for c in copies_of(client, "job-dup")] == ["stored", "stored"]
    assert source.fetched("/1.png") == 1 and source.fetched("/2.png") == 1


def test_the_same_file_is_stored_once(copying, source, tmp_path):
    """Two jobs naming the same bytes share one file in the store (its key is the SHA-256)."""
    client = copying().test_client()
    data = image_bytes("PNG", (90, 90))
    for job in ("job-same-1", "job-same-2"):
        client.post(URL, json=completed(job, (source.add(f"/{job}.png", data), {})))
        copies_of(client, job)
    stored = [path for path in (tmp_path / "images").rglob("*.png")]
    assert len(stored) == 1 and stored[0].read_bytes() == data


def test_a_source_down_then_up_is_retried_with_backoff_then_stored(copying, source):
    """Connection refused: queued again with its reason and a later due time; once the source is back, stored."""
    client = copying().test_client()
    url = source.add("/late.png", image_bytes())
    source.stop()
    client.post(URL, json=completed("job-late", (url, {})))
    waiting = until(lambda: copies_of(client, "job-late", settled=False)[0], lambda c: c["attempts"] >= 2)
    assert waiting["state"] in ("queued", "copying") and waiting["last_error"]
    source.start()
    assert until(lambda: copies_of(client, "job-late", settled=False)[0]["state"], "stored", timeout=20) == "stored"


@pytest.mark.sqlite_only
def test_copiers_leave_a_locked_database_alone_then_store_the_copy(make_app, source, database_url, logs):
    """SQLite locked by another connection: the copiers' claim times out once, then they pause (one ⚠️ line, no
    write queued behind the webhook's for BACK_OFF seconds); once the lock is gone the image is stored."""
    app = make_app(IMAGE_SOURCES=source.origin, DB_TIMEOUT=0.3)
    client = app.test_client()
    client.post(URL, json=completed("job-locked", (source.add("/locked.png", image_bytes()), {})))
    with closing(sqlite3.connect(database_url.removeprefix("sqlite:///"), isolation_level=None)) as locker:
        locker.execute("BEGIN EXCLUSIVE")
        try:
            app.extensions[EXTENSION].copiers.start()
            time.sleep(2.5)  # without the pause, a claim every POLL second, each held DB_TIMEOUT
            paused = [r for r in logs.records if getattr(r, "event", "") == "copy_paused"]
        finally:
            locker.execute("ROLLBACK")
    assert len(paused) == 1 and "copies en pause pendant" in paused[0].getMessage()
    assert copies_of(client, "job-locked", timeout=20)[0]["state"] == "stored"


def test_a_source_down_for_good_fails_then_images_retry_brings_it_back(copying, source):
    """After IMAGE_COPY_ATTEMPTS the copy is failed with its reason; `images retry` queues it again."""
    app = copying(IMAGE_COPY_ATTEMPTS=3)
    client = app.test_client()
    url = source.add("/gone.png", image_bytes())
    source.stop()
    client.post(URL, json=completed("job-gone", (url, {})))
    failed = copies_of(client, "job-gone")[0]
    assert failed["state"] == "failed" and failed["attempts"] == 3 and failed["last_error"]
    source.start()
    result = app.test_cli_runner().invoke(args=["images", "retry", "job-gone"])
    assert result.exit_code == 0 and result.output.startswith("1 copie(s)")
    app = copying()  # the command stopped the first app's service; a new one copies
    assert copies_of(app.test_client(), "job-gone")[0]["state"] == "stored"


def test_a_url_outside_image_sources_is_refused_without_a_connection(copying, source):
    """A loopback port not in IMAGE_SOURCES, and a redirect to it: refused, and that port sees no connection."""
    other = ImageSource().start()
    try:
        client = copying().test_client()
        secret = other.add("/secret.png", image_bytes())
        source.redirects["/jump.png"] = secret
        client.post(URL, json=completed("job-ssrf", (secret, {}), (source.url("/jump.png"), {})))
        found = copies_of(client, "job-ssrf")
        assert [c["state"] for c in found] == ["refused", "refused"]
        assert all("IMAGE_SOURCES" in c["last_error"] for c in found)
        assert other.connections == 0
    finally:
        other.stop()


@pytest.mark.parametrize("host", ["127.1", "0x7f000001", "2130706433", "[::ffff:127.0.0.1]", "localhost"])
def test_public_mode_refuses_every_spelling_of_loopback(copying, source, host):
    """IMAGE_SOURCES=public: a loopback address in any spelling is refused after resolution, never connected to."""
    client = copying(IMAGE_SOURCES="public").test_client()
    source.add("/x.png", image_bytes())
    client.post(URL, json=completed("job-public", (f"http://{host}:{source.port}/x.png", {})))
    assert copies_of(client, "job-public")[0]["state"] == "refused"
    assert source.connections == 0


def test_production_without_image_sources_refuses_every_copy(copying, source):
    """IMAGE_SOURCES unset in production: each copy is refused, and nothing is fetched."""
    from tests.payloads import SECRET

    app = copying(APP_ENV="production", WEBHOOK_SECRET=SECRET, IMAGE_SOURCES="", JOBS_API_TOKENS="reader-token")
    client = app.test_client()
    body = completed("job-prod", (source.add("/prod.png", image_bytes()), {}))
    assert client.post(URL, json=body, headers={"X-Webhook-Secret": SECRET}).status_code == 200
    reader = {"Authorization": "Bearer reader-token"}
    assert copies_of(client, "job-prod", headers=reader)[0]["state"] == "refused"
    assert get(client, "/api/jobs/job-prod/images/0").status_code == 401  # the read API's tokens, as for the job
    assert source.connections == 0


def decompression_bomb():
    """A small, valid PNG that declares 30,000 x 30,000 pixels (1 bit each), its rows all zero."""
    raw = zlib.compress(b"".join(b"\x00" + bytes(30000 // 8) for _ in range(30000)), 9)

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", 30000, 30000, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", raw) + chunk(b"IEND", b"")


def test_files_that_cannot_be_kept_fail_for_good(copying, source):
    """Over IMAGE_MAX_BYTES, a decompression bomb, and HTML served as image/png: failed at once, with a reason."""
    client = copying(IMAGE_MAX_BYTES=100_000).test_client()
    big = source.add("/big.png", image_bytes("PNG") + b"\0" * 200_000)
    bomb = source.add("/bomb.png", decompression_bomb())
    html = source.add("/page.png", b"<!doctype html><title>Not found</title>" * 20, "image/png")
    client.post(URL, json=completed("job-bad", (big, {}), (bomb, {}), (html, {})))
    found = copies_of(client, "job-bad")
    assert [c["state"] for c in found] == ["failed"] * 3
    assert [c["attempts"] for c in found] == [1, 1, 1]
    assert "IMAGE_MAX_BYTES" in found[0]["last_error"]


def test_a_transfer_cut_short_is_retried(copying, source):
    """A body that stops before its Content-Length is a failed attempt, queued again, then stored."""
    client = copying().test_client()
    source.hold.set()
    source.release.set()  # each held transfer ends at once, half-sent
    url = source.add("/cut.png", image_bytes("PNG", (300, 300)))
    client.post(URL, json=completed("job-cut", (url, {})))
    assert until(lambda: copies_of(client, "job-cut", settled=False)[0]["attempts"] >= 2, True)
    source.hold.clear()
    assert until(lambda: copies_of(client, "job-cut", settled=False)[0]["state"], "stored") == "stored"


def test_a_claim_that_lies_is_kept_with_its_mismatches(copying, source, logs):
    """format, dimensions and size_bytes that differ from the file: stored, verified false, each mismatch listed."""
    client = copying().test_client()
    data = image_bytes("PNG", (64, 48))
    claims = {"format": "JPEG", "dimensions": "1024x1024", "size_bytes": 2048576}
    client.post(URL, json=completed("job-lie", (source.add("/lie.png", data), claims)))
    copy = copies_of(client, "job-lie")[0]
    assert copy["state"] == "stored" and copy["verified"] is False
    assert {m["field"] for m in copy["mismatches"]} == {"format", "dimensions", "size_bytes"}
    assert any("différente de sa description" in r.getMessage() for r in logs.records)


def test_retention_removes_purged_files_and_keeps_shared_ones(copying, source, tmp_path):
    """Purging a job deletes the files only it used; a file another job uses stays, and is still served."""
    app = copying()
    client = app.test_client()
    shared, alone = image_bytes("PNG", (70, 70)), image_bytes("PNG", (71, 71))
    client.post(URL, json=completed("job-old", (source.add("/s.png", shared), {}), (source.add("/o.png", alone), {})))
    copies_of(client, "job-old")
    client.post(URL, json=completed("job-new", (source.add("/s2.png", shared), {})))
    copies_of(client, "job-new")
    db = app.extensions[EXTENSION].db
    db.write(
        lambda c: c.execute(db.sql("UPDATE jobs SET created_at = '2000-01-01T00:00:00+00:00' WHERE job_id = 'job-old'"))
    )
    result = app.test_cli_runner().invoke(args=["jobs", "purge", "--jobs-days", "30"])
    assert result.exit_code == 0, result.output
    kept = sorted(p.read_bytes() for p in (tmp_path / "images").rglob("*.png"))
    assert kept == [shared]
    assert len(list((tmp_path / "images").rglob("*.thumb.webp"))) == 1


def test_readiness_follows_the_store_not_the_source(copying, source, tmp_path):
    """/readyz is 200 with the image source down, 503 once the store cannot be written, 200 again after."""
    import shutil

    app = copying()
    client = app.test_client()
    source.stop()
    assert client.get("/readyz").status_code == 200
    store = tmp_path / "images"
    shutil.rmtree(store)
    store.write_text("a file where the store's folder was: no one can write under it, root included")
    answer = client.get("/readyz")
    assert (
        answer.status_code == 503 and answer.get_json()["reason"] == "le stockage des images n'accepte pas d'écriture"
    )
    store.unlink()
    assert client.get("/readyz").status_code == 200


def test_copies_are_counted_in_the_metrics(copying, source):
    """/metrics counts the stored copies and their bytes, and shows the queue's gauges."""
    client = copying().test_client()
    data = image_bytes()
    client.post(URL, json=completed("job-metrics", (source.add("/m.png", data), {})))
    copies_of(client, "job-metrics")
    text = client.get("/metrics").get_data(as_text=True)
    assert 'image_webhook_copies_total{outcome="stored"} 1.0' in text
    assert f"image_webhook_copied_bytes_total {float(len(data))}" in text
    assert "image_webhook_copy_tasks_queued 0.0" in text


def test_images_status_prints_each_copy(copying, source):
    """`images status JOB_ID` prints one entry per image, with its URL and its copy."""
    app = copying()
    client = app.test_client()
    client.post(URL, json=completed("job-cli", (source.add("/cli.png", image_bytes()), {})))
    copies_of(client, "job-cli")
    result = app.test_cli_runner().invoke(args=["images", "status", "job-cli"])
    found = json.loads(result.output)
    assert found[0]["index"] == 0 and found[0]["copy"]["state"] == "stored"
    assert app.test_cli_runner().invoke(args=["images", "status", "nobody"]).exit_code == 1


def test_a_job_failed_then_completed_copies_its_images(copying, source):
    """A completed that replaces a failed queues its copies then (a failed has none)."""
    client = copying().test_client()
    client.post(URL, json=payload(FAILED, "job-again"))
    assert client.get("/api/jobs/job-again").get_json()["copies"] == []
    client.post(URL, json=completed("job-again", (source.add("/again.png", image_bytes()), {})))
    assert copies_of(client, "job-again")[0]["state"] == "stored"


def test_an_unused_port_is_a_failed_attempt_not_a_crash(copying):
    """A listed origin with nothing listening: the copy is queued again with "connexion refusée"-like reason."""
    port = free_port()
    client = copying(IMAGE_SOURCES=f"http://127.0.0.1:{port}", IMAGE_COPY_ATTEMPTS=2).test_client()
    client.post(URL, json=completed("job-closed", (f"http://127.0.0.1:{port}/x.png", {})))
    copy = copies_of(client, "job-closed")[0]
    assert copy["state"] == "failed" and copy["attempts"] == 2


def test_the_page_shows_the_stored_thumbnails_and_the_copy_states(copying, source):
    """/jobs and the job page load thumbnails from the service only (CSP img-src 'self'), link the stored file,
    show a failed copy's reason, and the monitoring counts the copies."""
    client = copying(IMAGE_COPY_ATTEMPTS=1).test_client()
    good = source.add("/page.png", image_bytes("PNG", (500, 300)))
    client.post(URL, json=completed("job-page", (good, {}), (source.url("/missing.png"), {})))
    assert [c["state"] for c in copies_of(client, "job-page")] == ["stored", "failed"]
    listing = client.get("/jobs")
    assert "img-src 'self'" in listing.headers["Content-Security-Policy"]
    assert 'src="/jobs/job-page/images/0/thumbnail"' in listing.get_data(as_text=True)
    page = client.get("/jobs/job-page").get_data(as_text=True)
    assert 'href="/jobs/job-page/images/0"' in page and "copie échouée" in page and "réponse HTTP 404" in page
    thumbnail = get(client, "/jobs/job-page/images/0/thumbnail")
    assert thumbnail.status_code == 200 and thumbnail.mimetype == "image/webp"
    stats = client.get("/monitoring.json").get_json()["copies"]
    assert stats["counts"]["stored"] == 1 and stats["counts"]["failed"] == 1 and stats["oldest_queued_seconds"] is None


def test_the_page_images_need_the_page_login_in_production(copying, source):
    """In production the page's image routes ask for the page's HTTP Basic login, like the page."""
    from werkzeug.security import generate_password_hash

    from tests.payloads import SECRET

    users = f"alice:{generate_password_hash('wonderland')}"
    client = copying(APP_ENV="production", WEBHOOK_SECRET=SECRET, DASHBOARD_USERS=users).test_client()
    body = completed("job-login", (source.add("/login.png", image_bytes()), {}))
    client.post(URL, json=body, headers={"X-Webhook-Secret": SECRET})
    assert get(client, "/jobs/job-login/images/0/thumbnail").status_code == 401
    login = {"Authorization": "Basic " + __import__("base64").b64encode(b"alice:wonderland").decode()}
    deadline = time.monotonic() + 15
    while (answer := get(client, "/jobs/job-login/images/0/thumbnail", headers=login)).status_code == 404:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert answer.status_code == 200


def test_an_s3_store_keeps_the_images_and_serves_them_by_presigned_url(copying, source, s3_environment):
    """With IMAGE_STORE=s3://… (a real SeaweedFS): each image is stored; its route answers a 302 to a presigned
    URL whose bytes are the source's, and the thumbnail's is a WebP of at most 256 px."""
    import requests

    store = f"s3://{s3_environment.BUCKET}/copies-{time.time_ns()}"
    client = copying(IMAGE_STORE=store, S3_ENDPOINT_URL=s3_environment.url).test_client()
    files = [image_bytes("PNG", (400, 300)), image_bytes("JPEG", (640, 480)), image_bytes("WEBP", (100, 700))]
    kinds = ["image/png", "image/jpeg", "image/webp"]
    images = [(source.add(f"/s3-{n}", data, kind), {}) for n, (data, kind) in enumerate(zip(files, kinds, strict=True))]
    client.post(URL, json=completed("job-s3", *images, (source.add("/s3-last", files[0]), {})))
    assert [c["state"] for c in copies_of(client, "job-s3")] == ["stored"] * 4
    for n, data in enumerate(files):
        answer = get(client, f"/api/jobs/job-s3/images/{n}")
        assert answer.status_code == 302
        assert requests.get(answer.headers["Location"], timeout=10).content == data
        thumbnail = requests.get(get(client, f"/api/jobs/job-s3/images/{n}/thumbnail").headers["Location"], timeout=10)
        assert Image.open(io.BytesIO(thumbnail.content)).format == "WEBP"
        assert max(Image.open(io.BytesIO(thumbnail.content)).size) <= 256


def test_a_file_removed_from_the_store_is_a_503_not_a_crash(copying, source, tmp_path, logs):
    """A stored file deleted behind the service's back: its route answers 503 in JSON and logs it with ❌."""
    client = copying().test_client()
    client.post(URL, json=completed("job-gone-file", (source.add("/gf.png", image_bytes()), {})))
    copies_of(client, "job-gone-file")
    for path in (tmp_path / "images").rglob("*.png"):
        path.unlink()
    answer = get(client, "/api/jobs/job-gone-file/images/0")
    assert answer.status_code == 503 and answer.is_json and answer.headers["Retry-After"]
    assert any("Fichier absent du stockage" in r.getMessage() for r in logs.records)
