"""The contract of POST /api/webhooks/image-completion, through the Flask test client."""

import json
import re

import pytest

from tests.payloads import COMPLETED, FAILED, PROGRESS, SECRET, URL, payload

INTERMEDIATE = ["pending", "initializing", "generating", "saving"]


def test_completed_is_processed_with_the_spec_answer(client):
    """A completed notification is answered 200 with the spec's fields and message."""
    response = client.post(URL, json=COMPLETED)
    assert response.status_code == 200
    body = response.get_json()
    assert list(body) == ["success", "message", "job_id", "images_count", "processing_time_ms"]
    assert body["success"] is True
    assert body["message"] == "1 image(s) générée(s) avec succès"
    assert body["job_id"] == COMPLETED["job_id"]
    assert body["images_count"] == 1
    assert isinstance(body["processing_time_ms"], (int, float)) and body["processing_time_ms"] >= 0


def test_message_counts_the_images(client):
    """The success message gives the number of images received."""
    body = payload(COMPLETED, "three-images")
    body["data"]["images"] = body["data"]["images"] * 3
    assert client.post(URL, json=body).get_json()["message"] == "3 image(s) générée(s) avec succès"


def test_spec_minimal_curl_example_is_accepted(client):
    """The spec's development cURL example (no file_path, no description) is processed."""
    body = {
        "job_id": "test-123",
        "status": "completed",
        "timestamp": "2025-10-21T16:45:00Z",
        "data": {
            "job_id": "test-123",
            "images": [
                {
                    "url": "http://localhost:9006/image.png",
                    "format": "PNG",
                    "dimensions": "1024x1024",
                    "size_bytes": 2048576,
                }
            ],
            "metadata": {"model_name": "gemini-2.0-flash-exp", "generation_time_seconds": 12.5},
        },
    }
    assert client.post(URL, json=body).status_code == 200


def test_response_is_utf8_json(client):
    """The French message travels as UTF-8 bytes, not as \\u escapes."""
    response = client.post(URL, json=COMPLETED)
    assert response.mimetype == "application/json"
    assert "générée(s)".encode() in response.data


def test_second_completed_is_a_duplicate(client):
    """The same completed job twice in the window: the second answer is exactly 'Job déjà traité'."""
    client.post(URL, json=COMPLETED)
    response = client.post(URL, json=COMPLETED)
    assert response.status_code == 200
    assert response.get_json() == {"success": True, "message": "Job déjà traité"}


@pytest.mark.parametrize("first, second", [(COMPLETED, FAILED), (FAILED, FAILED), (COMPLETED, COMPLETED)])
def test_a_second_terminal_notification_is_a_duplicate(client, first, second):
    """After a completed, any terminal notification of the job is a duplicate; so is a failed after a failed."""
    assert client.post(URL, json=first).get_json()["success"] is True
    assert client.post(URL, json=second).get_json() == {"success": True, "message": "Job déjà traité"}


@pytest.mark.database
def test_completed_after_failed_replaces_it_with_a_database(client):
    """With a database, a completed after a failed is processed: the backend retried and succeeded."""
    client.post(URL, json=FAILED)
    assert client.post(URL, json=COMPLETED).get_json()["images_count"] == 1
    assert client.post(URL, json=COMPLETED).get_json() == {"success": True, "message": "Job déjà traité"}


@pytest.mark.stateless
@pytest.mark.parametrize("first, second", [(FAILED, COMPLETED)])
def test_any_second_terminal_notification_is_a_duplicate(client, first, second):
    """Stateless, after one terminal notification, another for the same job, whatever its status, is a duplicate."""
    assert client.post(URL, json=first).get_json()["success"] is True
    assert client.post(URL, json=second).get_json() == {"success": True, "message": "Job déjà traité"}


@pytest.mark.memory_only
def test_duplicate_after_the_window_is_processed_again(client, clock):
    """Past the idempotence window, the same job is processed again, even before a cleanup ran."""
    client.post(URL, json=COMPLETED)
    clock.advance(299.9)
    assert client.post(URL, json=COMPLETED).get_json()["message"] == "Job déjà traité"
    clock.advance(0.2)
    assert client.post(URL, json=COMPLETED).get_json()["message"] == "1 image(s) générée(s) avec succès"


@pytest.mark.memory_only
def test_window_is_configurable(make_app, clock):
    """IDEMPOTENCE_WINDOW sets how long a job counts as processed."""
    client = make_app(IDEMPOTENCE_WINDOW=10).test_client()
    client.post(URL, json=COMPLETED)
    clock.advance(10)
    assert client.post(URL, json=COMPLETED).get_json()["images_count"] == 1


def test_failed_is_processed_and_logged_with_its_error(client, logs):
    """A failed notification answers 200 with job_id and time, and logs ❌ with its error_message."""
    response = client.post(URL, json=FAILED)
    assert response.status_code == 200
    body = response.get_json()
    assert body["success"] is True and body["job_id"] == FAILED["job_id"]
    assert body["processing_time_ms"] >= 0
    failures = [r for r in logs.records if r.getMessage().startswith("❌")]
    assert len(failures) == 1 and "Clé API Google invalide" in failures[0].getMessage()


@pytest.mark.parametrize("status", INTERMEDIATE)
def test_intermediate_status_is_acknowledged_and_never_deduplicated(client, status):
    """An intermediate status is 200, names its status, and is acknowledged again when repeated."""
    for _ in range(2):
        response = client.post(URL, json=payload(PROGRESS, status=status))
        assert response.status_code == 200
        body = response.get_json()
        assert body["success"] is True and body["status"] == status and status in body["message"]


def test_answers_are_compact_utf8_json_in_the_spec_order(client):
    """An answer is application/json, compact, its French in UTF-8 (not escaped), its keys in the spec's
    order, ending with a newline."""
    response = client.post(URL, json=payload(PROGRESS, "answer-bytes", status="generating"))
    assert response.mimetype == "application/json"
    expected = {
        "success": True,
        "message": "Statut intermédiaire reçu: generating",
        "job_id": "answer-bytes",
        "status": "generating",
    }
    assert response.data == json.dumps(expected, ensure_ascii=False, separators=(",", ":")).encode() + b"\n"


def test_intermediate_statuses_do_not_make_completed_a_duplicate(client):
    """Progress notifications before the end leave the completed one to be processed."""
    for status in INTERMEDIATE:
        client.post(URL, json=payload(PROGRESS, status=status))
    assert client.post(URL, json=COMPLETED).get_json()["images_count"] == 1


def test_late_progress_is_acknowledged_logged_and_changes_nothing(client, logs, clock):
    """A progress notification after its job ended is 200, logged as late, and the job stays processed."""
    client.post(URL, json=COMPLETED)
    response = client.post(URL, json=PROGRESS)
    assert response.status_code == 200 and response.get_json()["success"] is True
    assert any(r.getMessage().startswith("ℹ️") and "après la fin" in r.getMessage() for r in logs.records)
    assert client.post(URL, json=COMPLETED).get_json()["message"] == "Job déjà traité"


def _without_data(body):
    del body["data"]


def _without_images(body):
    del body["data"]["images"]


def _images(value):
    def change(body):
        body["data"]["images"] = value

    return change


@pytest.mark.parametrize(
    "change",
    [_without_data, _without_images, _images([]), _images({"url": "x"}), _images("image.png"), _images(None)],
    ids=["no data", "no images", "empty", "object", "string", "null"],
)
def test_missing_images_is_exactly_the_spec_error(client, change):
    """Missing data, images that are not an array, or an empty array: exactly the spec's 400."""
    body = payload(COMPLETED)
    change(body)
    response = client.post(URL, json=body)
    assert response.status_code == 400
    assert response.get_json() == {"error": "Données d'images manquantes"}


def _set(path, value):
    def change(body):
        *parents, last = path
        target = body
        for key in parents:
            target = target[key]
        if value is DELETE:
            del target[last]
        else:
            target[last] = value

    return change


DELETE = object()
IMAGE = ("data", "images", 0)

INVALID = [
    ("job_id missing", FAILED, _set(("job_id",), DELETE), "$"),
    ("job_id empty", FAILED, _set(("job_id",), ""), "$.job_id"),
    ("job_id too long", FAILED, _set(("job_id",), "a" * 129), "$.job_id"),
    ("job_id with a space", FAILED, _set(("job_id",), "a b"), "$.job_id"),
    ("job_id with a newline", FAILED, _set(("job_id",), "a\n"), "$.job_id"),
    ("job_id not a string", FAILED, _set(("job_id",), 42), "$.job_id"),
    ("status unknown", FAILED, _set(("status",), "done"), "$.status"),
    ("status missing", FAILED, _set(("status",), DELETE), "$"),
    ("status not a string", FAILED, _set(("status",), ["failed"]), "$.status"),
    ("timestamp not RFC 3339", FAILED, _set(("timestamp",), "2025-10-21 16:45:00"), "$.timestamp"),
    ("timestamp impossible date", FAILED, _set(("timestamp",), "2025-13-40T16:45:00Z"), "$.timestamp"),
    ("error_message not a string", FAILED, _set(("error_message",), {"code": 1}), "$.error_message"),
    ("progress over 100", PROGRESS, _set(("progress",), 101), "$.progress"),
    ("progress negative", PROGRESS, _set(("progress",), -1), "$.progress"),
    ("progress a string", PROGRESS, _set(("progress",), "50"), "$.progress"),
    ("progress a boolean", PROGRESS, _set(("progress",), True), "$.progress"),
    ("url not a URI", COMPLETED, _set((*IMAGE, "url"), "not a uri"), "$.data.images[0].url"),
    ("url javascript:", COMPLETED, _set((*IMAGE, "url"), "javascript:alert(1)"), "$.data.images[0].url"),
    ("url data:", COMPLETED, _set((*IMAGE, "url"), "data:image/png;base64,AAAA"), "$.data.images[0].url"),
    ("url ftp:", COMPLETED, _set((*IMAGE, "url"), "ftp://x/y.png"), "$.data.images[0].url"),
    ("timestamp with a trailing newline", FAILED, _set(("timestamp",), "2025-10-21T16:45:00Z\n"), "$.timestamp"),
    ("error_message a nested list", FAILED, _set(("error_message",), [[[["deep"]]]]), "$.error_message"),
    ("url missing", COMPLETED, _set((*IMAGE, "url"), DELETE), "$.data.images[0]"),
    ("size_bytes negative", COMPLETED, _set((*IMAGE, "size_bytes"), -1), "$.data.images[0].size_bytes"),
    ("size_bytes fractional", COMPLETED, _set((*IMAGE, "size_bytes"), 1.5), "$.data.images[0].size_bytes"),
    ("size_bytes a string", COMPLETED, _set((*IMAGE, "size_bytes"), "2048"), "$.data.images[0].size_bytes"),
    ("image not an object", COMPLETED, _set(IMAGE, "http://x/y.png"), "$.data.images[0]"),
    ("too many images", COMPLETED, _set(("data", "images"), [{"url": "http://x/y.png"}] * 101), "$.data.images"),
    ("description too long", COMPLETED, _set((*IMAGE, "description"), "x" * 2001), "$.data.images[0].description"),
    ("metadata not an object", COMPLETED, _set(("data", "metadata"), "gemini"), "$.data.metadata"),
    (
        "generation time a string",
        COMPLETED,
        _set(("data", "metadata", "generation_time_seconds"), "12.5"),
        "$.data.metadata.generation_time_seconds",
    ),
    ("data.job_id differs", COMPLETED, _set(("data", "job_id"), "another-job"), "$.data.job_id"),
]


@pytest.mark.parametrize("template, change, path", [case[1:] for case in INVALID], ids=[case[0] for case in INVALID])
def test_schema_violation_is_400_with_details_naming_the_path(client, template, change, path):
    """Any other violation is 400 {"error", "details": [{"path", "message"}]} naming the offending path."""
    body = payload(template)
    change(body)
    response = client.post(URL, json=body)
    assert response.status_code == 400
    answer = response.get_json()
    assert answer["error"] == "Payload invalide"
    assert path in [detail["path"] for detail in answer["details"]]
    assert all(isinstance(detail["message"], str) and detail["message"] for detail in answer["details"])


def test_invalid_notification_is_not_marked(client):
    """A rejected notification does not count as processed: the corrected one is processed."""
    client.post(URL, json=payload(COMPLETED, timestamp="yesterday"))
    assert client.post(URL, json=COMPLETED).get_json()["images_count"] == 1


@pytest.mark.parametrize("template", [COMPLETED, FAILED, PROGRESS])
def test_unknown_extra_fields_are_accepted(client, template):
    """Fields the backend may add later are accepted, at the top level and nested."""
    body = payload(template, extra_field={"anything": [1, 2]})
    if "data" in body:
        body["data"]["images"][0]["seed"] = 42
    assert client.post(URL, json=body).status_code == 200


@pytest.mark.parametrize(
    "data, expected_path_count",
    [
        (b"", 1),
        (b"{", 1),
        (b'{"job_id": "a", "status": "completed"', 1),
        (b"nul", 1),
        (b"[]", 1),
        (b'"completed"', 1),
        (b"42", 1),
        (b"null", 1),
        (b'{"job_id": "\xff\xfe", "status": "failed"}', 1),
        ('{"job_id": "a", "status": "failed"}'.encode("utf-16"), 1),
        (b"\xef\xbb\xbf{}", 1),
        (b"[" * 100_000 + b"]" * 100_000, 1),
        (b'{"a":' * 50_000 + b"1" + b"}" * 50_000, 1),
    ],
    ids=[
        "empty",
        "open brace",
        "truncated",
        "bad literal",
        "array",
        "string",
        "number",
        "null",
        "not UTF-8",
        "UTF-16",
        "BOM",
        "deep arrays",
        "deep objects",
    ],
)
def test_unreadable_body_is_400_json(client, data, expected_path_count):
    """A body that is not a UTF-8 JSON object is a 400 with a JSON error, never a 500."""
    response = client.post(URL, data=data, content_type="application/json")
    assert response.status_code == 400
    body = response.get_json()
    assert body["error"] in ("JSON invalide", "Payload invalide")
    assert len(body["details"]) == expected_path_count and body["details"][0]["path"] == "$"


@pytest.mark.parametrize(
    "content_type",
    [
        None,
        "text/plain",
        "application/x-www-form-urlencoded",
        "application/json; charset=latin-1",
        "application/json;charset=utf-16",
        "application/jsonx",
    ],
)
def test_other_media_types_are_415(client, content_type):
    """Only application/json (UTF-8) is accepted; anything else is a JSON 415."""
    headers = {"Content-Type": content_type} if content_type else {}
    response = client.post(URL, data=json.dumps(COMPLETED), headers=headers)
    assert response.status_code == 415
    assert response.get_json()["error"] == "Unsupported Media Type"


@pytest.mark.parametrize(
    "content_type",
    [
        "application/json",
        "application/json; charset=utf-8",
        "application/json;charset=utf-8",
        "Application/JSON; charset=UTF-8",
        'application/json; charset="utf8"',
    ],
)
def test_json_media_type_parameters_are_allowed(client, content_type):
    """application/json with a UTF-8 charset parameter, in any case, is accepted."""
    body = json.dumps(payload(COMPLETED, f"media-{content_type.count(';')}-{len(content_type)}"))
    response = client.post(URL, data=body, headers={"Content-Type": content_type})
    assert response.status_code == 200


def test_body_over_the_limit_is_413(make_app):
    """A body larger than MAX_CONTENT_LENGTH is a JSON 413, and the job is not marked."""
    client = make_app(MAX_CONTENT_LENGTH=2048).test_client()
    big = payload(COMPLETED, message="x" * 1500)
    big["data"]["images"][0]["description"] = "y" * 1000
    response = client.post(URL, json=big)
    assert response.status_code == 413
    assert response.get_json()["error"] == "Request Entity Too Large"
    assert client.post(URL, json=COMPLETED).status_code == 200


def test_lone_surrogate_in_a_string_is_refused_not_a_500(client):
    """A JSON escape that is not a character (a lone surrogate, which no UTF-8 log or database can hold) is a
    400 "JSON invalide" naming it, never a 500; an escaped pair (an emoji) is accepted."""
    raw = json.dumps(payload(FAILED, "surrogate")).replace("Cl\\u00e9 API", "\\ud800 API")
    response = client.post(URL, data=raw, content_type="application/json")
    assert response.status_code == 400 and response.get_json()["error"] == "JSON invalide"
    assert "substitution" in response.get_json()["details"][0]["message"]
    pair = json.dumps(payload(FAILED, "surrogate-pair")).replace("Cl\\u00e9 API", "\\ud83d\\ude00 API")
    assert client.post(URL, data=pair, content_type="application/json").status_code == 200


def test_unknown_route_is_json_404(client):
    """An unknown route answers a JSON 404."""
    response = client.post("/api/webhooks/image-completed", json=COMPLETED)
    assert response.status_code == 404
    assert response.get_json()["error"] == "Not Found"


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE", "PATCH"])
def test_other_methods_are_json_405_with_allow(client, method):
    """Another method on the webhook route answers a JSON 405 that lists the allowed methods."""
    response = client.open(URL, method=method)
    assert response.status_code == 405
    assert response.get_json()["error"] == "Method Not Allowed"
    assert "POST" in response.headers["Allow"]


class TestAuthentication:
    """What authentication does to the request; which credential passes where is AUTH_TABLE, in
    tests/test_signatures.py (the Flask client) and tests/test_gunicorn.py (gunicorn)."""

    @pytest.mark.parametrize("headers", [{}, {"X-Webhook-Secret": "wrong"}])
    def test_unauthorized_before_the_body_is_parsed(self, prod_client, headers):
        """Authentication comes first: a bad body without the right secret is a 401, not a 400 or 415."""
        for data, content_type in ((b"{", "application/json"), (b"x", "text/plain")):
            response = prod_client.post(URL, data=data, content_type=content_type, headers=headers)
            assert response.status_code == 401 and response.get_json() == {"error": "Unauthorized"}

    def test_unauthorized_is_not_marked(self, prod_client):
        """A rejected request leaves the job to be processed by the authenticated retry."""
        prod_client.post(URL, json=COMPLETED, headers={"X-Webhook-Secret": "wrong"})
        response = prod_client.post(URL, json=COMPLETED, headers={"X-Webhook-Secret": SECRET})
        assert response.get_json()["images_count"] == 1


class TestProcessingFailure:
    @pytest.fixture
    def failing(self, make_app):
        calls = []

        def handler(body):
            calls.append(body["job_id"])
            if len(calls) == 1:
                raise RuntimeError("database unavailable: password=hunter2")

        return make_app(job_handler=handler).test_client(), calls

    def test_exception_is_a_json_500_without_traceback(self, failing):
        """Processing that raises answers the spec's 500 with processing_time_ms, no traceback, no detail."""
        client, _ = failing
        response = client.post(URL, json=COMPLETED)
        assert response.status_code == 500
        body = response.get_json()
        assert body["error"] == "Internal server error"
        assert isinstance(body["message"], str) and body["processing_time_ms"] >= 0
        assert b"Traceback" not in response.data and b"hunter2" not in response.data

    def test_failed_job_is_not_marked_and_the_retry_is_processed(self, failing):
        """After a 500 the job is not marked, so the backend's retry is processed."""
        client, calls = failing
        client.post(URL, json=COMPLETED)
        response = client.post(URL, json=COMPLETED)
        assert response.status_code == 200 and response.get_json()["images_count"] == 1
        assert calls == [COMPLETED["job_id"]] * 2


class TestLogs:
    def test_completed_logs_the_spec_lines_in_order(self, client, logs):
        """A completed job logs 🎨, 📦, ✅, one 💾 per image, then ⏱️."""
        body = payload(COMPLETED)
        body["data"]["images"].append(
            {"url": "http://localhost:9006/b.png", "format": "PNG", "dimensions": "512x512", "size_bytes": 1024}
        )
        client.post(URL, json=body)
        lines = [r.getMessage() for r in logs.records if "[Image Webhook]" in r.getMessage()]
        prefixes = [
            "🎨 [Image Webhook] Réception d'un webhook de génération d'images...",
            "📦 [Image Webhook] Payload reçu: ",
            "✅ [Image Webhook] Génération réussie: ",
            "💾 [Image Webhook] Images générées: ",
            "💾 [Image Webhook] Images générées: ",
            "⏱️ [Image Webhook] Traitement terminé en ",
        ]
        assert len(lines) == len(prefixes)
        for line, prefix in zip(lines, prefixes, strict=True):
            assert line.startswith(prefix)
        assert json.loads(lines[1].split(": ", 1)[1]) == {
            "job_id": COMPLETED["job_id"],
            "status": "completed",
            "has_data": True,
            "images_count": 2,
        }
        assert json.loads(lines[2].split(": ", 1)[1]) == {
            "images_count": 2,
            "model": "gemini-2.0-flash-exp",
            "generation_time": 12.5,
        }
        assert json.loads(lines[4].split(": ", 1)[1]) == {
            "url": "http://localhost:9006/b.png",
            "format": "PNG",
            "dimensions": "512x512",
            "size_kb": 1.0,
        }
        assert lines[5].endswith("ms")

    def test_duplicate_and_rejection_are_warnings(self, prod_client, logs):
        """A duplicate and a rejected request are logged with ⚠️."""
        prod_client.post(URL, json=COMPLETED, headers={"X-Webhook-Secret": SECRET})
        prod_client.post(URL, json=COMPLETED, headers={"X-Webhook-Secret": SECRET})
        prod_client.post(URL, json=COMPLETED, headers={"X-Webhook-Secret": "wrong"})
        warnings = [r.getMessage() for r in logs.records if r.getMessage().startswith("⚠️")]
        assert all(r.levelname == "WARNING" for r in logs.records if r.getMessage().startswith("⚠️"))
        assert any("Job déjà traité" in w for w in warnings)
        assert any("401" in w for w in warnings)

    def test_the_secret_never_appears_in_the_logs(self, prod_client, logs):
        """The three requests are logged (🎨, then ⏱️, the 401 or the 400), and neither the configured secret nor
        a wrong one that was sent appears in what is written, in either format."""
        from tests.test_logs import logged, written

        sent = [
            ("secret-ok", {"json": COMPLETED, "headers": {"X-Webhook-Secret": SECRET}}),
            ("secret-wrong", {"json": COMPLETED, "headers": {"X-Webhook-Secret": "sent-wrong-secret"}}),
            (
                "secret-bad-body",
                {"data": b"{", "content_type": "application/json", "headers": {"X-Webhook-Secret": SECRET}},
            ),
        ]
        for request_id, request in sent:
            prod_client.post(URL, **{**request, "headers": {**request["headers"], "X-Request-ID": request_id}})
        for request_id, last in (
            ("secret-ok", "⏱️ [Image Webhook] Traitement terminé"),
            ("secret-wrong", "⚠️ [Image Webhook] Requête refusée: 401"),
            ("secret-bad-body", "⚠️ [Image Webhook] Requête refusée: 400"),
        ):
            assert logged(logs.records, request_id, "🎨 [Image Webhook] Réception") == 1
            assert logged(logs.records, request_id, last) == 1
        text = written(logs.records)
        assert all(request_id in text for request_id, _ in sent)
        assert SECRET not in text and "sent-wrong-secret" not in text


@pytest.mark.parametrize("path, allowed", [(URL, {"POST", "OPTIONS"}), ("/healthz", {"GET", "HEAD", "OPTIONS"})])
def test_options_answers_allow_and_no_page(client, path, allowed):
    """OPTIONS answers 204 with the Allow header and no body, never an empty HTML page."""
    response = client.options(path)
    assert response.status_code == 204
    assert set(response.headers["Allow"].split(", ")) == allowed
    assert response.data == b"" and "Content-Type" not in response.headers


@pytest.mark.parametrize("path", ["/api//jobs", "//jobs", "/api/webhooks//image-completion"])
def test_doubled_slashes_are_an_unknown_route_never_a_redirect(make_app, path):
    """A doubled slash is a 404 in JSON, not werkzeug's 308 to a URL built from the caller's Host header (a
    shared cache could keep it), with no Location, even where ALLOWED_HOSTS lets any Host in."""
    answer = make_app(ALLOWED_HOSTS="*").test_client().get(path, headers={"Host": "attacker.example"})
    assert answer.status_code == 404 and answer.is_json and "Location" not in answer.headers


@pytest.mark.database
def test_padded_duplicates_and_progress_keep_a_bounded_body(client):
    """The record's body is kept whole; a duplicate or a progress padded to 1,000,000 bytes (the schema allows
    extra fields) is answered as usual and kept cut to 64 KiB, its size said in the delivery's reason."""
    padding = "x" * 1_000_000
    whole = payload(COMPLETED, "job-padded", padding="y" * 100_000)
    assert client.post(URL, json=whole).status_code == 200
    duplicate = client.post(URL, json=payload(COMPLETED, "job-padded", padding=padding))
    assert duplicate.get_json() == {"success": True, "message": "Job déjà traité"}
    progress = payload(PROGRESS, "job-padded-progress", padding=padding)
    assert client.post(URL, json=progress).status_code == 200
    kept = {}
    for job_id in ("job-padded", "job-padded-progress"):
        for delivery in client.get(f"/api/jobs/{job_id}/deliveries?include=body").get_json()["deliveries"]:
            kept[delivery["outcome"]] = (len(delivery["body"]), delivery["reason"])
    assert kept["processed"] == (len(json.dumps(whole)), None)
    for outcome in ("duplicate", "progress"):
        size, reason = kept[outcome]
        said = re.fullmatch(r"corps de (\d+) octets, 65536 gardés", reason or "")
        assert 65000 < size <= 65536 and said and int(said.group(1)) > 1_000_000, (outcome, reason)  # characters
