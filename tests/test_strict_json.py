"""Strict JSON and a bounded refusal: non-finite numbers, repeated keys, URL schemes, whole date-times, huge bodies."""

import json
import math
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families

from image_webhook.intake.schema_messages import WORDED
from image_webhook.intake.validation import MAX_DETAILS, SCHEMA_DIR, load_schemas
from tests.payloads import COMPLETED, FAILED, PROGRESS, URL, payload
from tests.servers import GunicornServer

HOLE = "__value__"  # stands for a literal json.dumps cannot write
# 87,000 images whose url is a number: the worst invalid body under the default 1 MiB limit
HUGE = {"job_id": "x", "status": "completed", "data": {"images": [{"url": 1}] * 87_000}}


def post_raw(client, text):
    return client.post(URL, data=text.encode("utf-8"), content_type="application/json")


def with_literal(template, path, literal):
    """`template` as JSON text with the value at `path` replaced by `literal`, written as is."""
    body = payload(template)
    target = body
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = HOLE
    return json.dumps(body).replace(json.dumps(HOLE), literal)


def generation_sum(client):
    """The sum of the generation-time histogram, read back from GET /metrics."""
    text = client.get("/metrics").get_data(as_text=True)
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "image_webhook_generation_seconds_sum"
    )


@pytest.fixture
def processed_once(client):
    """A client that has processed one completed job: the generation histogram has a finite sum to keep."""
    assert client.post(URL, json=payload(COMPLETED, "metrics-seed")).status_code == 200
    assert generation_sum(client) == 12.5
    return client


def assert_json_refused(response, message):
    assert response.status_code == 400
    assert response.get_json() == {"error": "JSON invalide", "details": [{"path": "$", "message": message}]}


NUMBERS = [
    (PROGRESS, ("progress",)),
    (COMPLETED, ("data", "metadata", "generation_time_seconds")),
    (COMPLETED, ("data", "images", 0, "size_bytes")),
    (FAILED, ("extra", "nested")),
]


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e999", "-1e999", "1E400"])
@pytest.mark.parametrize("template, path", NUMBERS, ids=["progress", "generation_time", "size_bytes", "extra field"])
def test_non_finite_number_is_refused_as_json(processed_once, template, path, literal):
    """NaN, ±Infinity and a float that overflows to inf, anywhere, are 400 "JSON invalide" naming the value."""
    if path == ("extra", "nested"):
        text = json.dumps(payload(template, "non-finite", extra={"nested": HOLE})).replace(json.dumps(HOLE), literal)
    else:
        text = with_literal(payload(template, "non-finite"), path, literal)
    assert_json_refused(post_raw(processed_once, text), f"valeur non finie {literal} refusée")
    assert math.isfinite(generation_sum(processed_once)) and generation_sum(processed_once) == 12.5


@pytest.mark.parametrize("text", ["NaN", "[1, Infinity]", '{"a": {"b": [-Infinity]}}'])
def test_non_finite_number_is_refused_at_any_depth_of_any_body(client, text):
    """A non-finite number is refused wherever it stands, even in a body that is not an object."""
    response = post_raw(client, text)
    assert response.status_code == 400 and response.get_json()["error"] == "JSON invalide"


@pytest.mark.parametrize(
    "text, key",
    [
        (
            '{"job_id": "dup-status", "status": "completed", "data": {"images": [{"url": "http://x/y.png"}]},'
            ' "status": "pending"}',
            "status",
        ),
        ('{"job_id": "dup-a", "status": "failed", "job_id": "dup-b"}', "job_id"),
        (
            '{"job_id": "dup-url", "status": "completed", "data": {"images": [{"url": "http://x/a.png",'
            ' "url": "http://x/b.png"}]}}',
            "url",
        ),
        ('{"job_id": "dup-deep", "status": "failed", "extra": [{"k": 1, "k": 1}]}', "k"),
    ],
)
def test_repeated_key_is_refused(processed_once, text, key):
    """A key repeated in any object of the body is 400 "JSON invalide" naming the key, never last-one-wins."""
    assert_json_refused(post_raw(processed_once, text), f'clé en double: "{key}"')
    assert math.isfinite(generation_sum(processed_once))


@pytest.mark.parametrize("where", ["error_message", "key"])
def test_nul_character_is_refused_never_a_500(client, where):
    """A NUL character (no PostgreSQL text can hold one) in a string or a key is 400 "JSON invalide", on every
    store and database, while an escaped backslash before "u0000" is plain text."""
    body = json.dumps(payload(FAILED, f"nul-{where}"))
    text = (
        body.replace("Cl\\u00e9 API", "Cl\\u0000 API") if where == "error_message" else body[:-1] + ', "a\\u0000": 1}'
    )
    assert_json_refused(post_raw(client, text), "caractère NUL (\\u0000) refusé")
    plain = body.replace("Cl\\u00e9 API", "Cl\\\\u0000 API")
    assert post_raw(client, plain).status_code == 200


def test_refused_body_leaves_its_job_unmarked(client):
    """A body refused for a repeated key does not mark its job: the clean one is then processed."""
    text = '{"job_id": "dup-then-clean", "status": "failed", "status": "pending"}'
    assert post_raw(client, text).status_code == 400
    assert client.post(URL, json=payload(FAILED, "dup-then-clean")).get_json()["success"] is True


def test_names_of_repeated_keys_are_shortened(client):
    """A repeated key of 100 kB is named in a few characters."""
    key = "k" * 100_000
    response = post_raw(client, json.dumps({"job_id": "x", "status": "failed"})[:-1] + f', "{key}": 1, "{key}": 2}}')
    assert response.status_code == 400 and len(response.get_json()["details"][0]["message"]) < 100


IMAGE_URL = ("data", "images", 0, "url")


@pytest.mark.parametrize(
    "url",
    [
        "javascript:alert(1)",
        "JavaScript:alert(1)",
        "data:image/png;base64,iVBORw0KGgo=",
        "file:///etc/passwd",
        "vbscript:msgbox(1)",
        "ftp://example.com/image.png",
        "httpx://example.com/a.png",
        "http:///image.png",
        "http://example.com/a.png\n",
        "//example.com/a.png",
    ],
)
def test_image_url_must_be_http_or_https(processed_once, url):
    """An image url with another scheme, no host or a trailing newline is a 400 naming $.data.images[0].url."""
    body = payload(COMPLETED, "bad-scheme")
    body["data"]["images"][0]["url"] = url
    response = processed_once.post(URL, json=body)
    assert response.status_code == 400
    assert "$.data.images[0].url" in [detail["path"] for detail in response.get_json()["details"]]
    assert generation_sum(processed_once) == 12.5


@pytest.mark.parametrize(
    "url",
    [
        "HTTPS://EXAMPLE.COM/A.PNG",
        "Http://localhost:9006/image.png",
        "https://cdn.example.com/a.png?size=large#top",
        "http://127.0.0.1:9006",
    ],
)
def test_http_and_https_urls_are_accepted_in_any_case(client, url):
    """http and https URLs, whatever the case of their scheme, are processed."""
    body = payload(COMPLETED, "good-scheme")
    body["data"]["images"][0]["url"] = url
    assert client.post(URL, json=body).status_code == 200


TIMESTAMPS = [
    (FAILED, ("timestamp",), "$.timestamp"),
    (COMPLETED, ("data", "generated_at"), "$.data.generated_at"),
    (COMPLETED, ("data", "metadata", "timestamp"), "$.data.metadata.timestamp"),
]


@pytest.mark.parametrize(
    "value",
    [
        "2025-10-21T16:45:00Z\n",
        "2025-10-21T16:45:00Z ",
        " 2025-10-21T16:45:00Z",
        "2025-10-21T16:45:00+02:00\n",
        "2025-10-21T16:45:00Z\r\n",
    ],
)
@pytest.mark.parametrize("template, path, json_path", TIMESTAMPS, ids=["timestamp", "generated_at", "metadata"])
def test_date_time_is_matched_whole(processed_once, template, path, json_path, value):
    """A date-time with whitespace before or after it is a 400 naming its path."""
    text = with_literal(payload(template, "spaced-time"), path, json.dumps(value))
    response = post_raw(processed_once, text)
    assert response.status_code == 400
    assert json_path in [detail["path"] for detail in response.get_json()["details"]]
    assert generation_sum(processed_once) == 12.5


@pytest.mark.parametrize("value", ["2025-10-21T16:45:00Z", "2025-10-21t16:45:00z", "2025-10-21T16:45:00.123+02:00"])
def test_rfc3339_date_times_are_accepted(client, value):
    """RFC 3339 date-times, lower-case separators and fractions included, are accepted."""
    assert client.post(URL, json=payload(FAILED, "good-time", timestamp=value)).status_code == 200


@pytest.mark.parametrize(
    "position",
    [
        '{"job_id": "x", "status": "failed", "error_message": %s}',
        '{"job_id": "x", "status": "completed", "data": {"images": [{"url": %s}]}}',
        '{"job_id": "x", "status": "generating", "progress": %s}',
    ],
    ids=["error_message", "url", "progress"],
)
def test_deep_nesting_in_a_field_is_400_never_500(client, position):
    """A list nested 900 to 1,000 deep in a scalar field is a 400 at every depth (wording it once recursed: 500)."""
    for depth in range(900, 1001):
        response = post_raw(client, position % ("[" * depth + "]" * depth))
        assert response.status_code == 400, (depth, response.get_json())
        assert all(len(detail["message"]) < 200 for detail in response.get_json()["details"])


def test_refusing_87000_invalid_images_stops_at_the_first_errors(client):
    """The worst 1 MiB body is a 400 with MAX_DETAILS short details: the array too long, then its first items."""
    response = client.post(URL, json=HUGE)
    assert response.status_code == 400
    details = response.get_json()["details"]
    assert len(details) == MAX_DETAILS
    assert details[0] == {"path": "$.data.images", "message": "doit contenir au plus 100 élément(s) (reçu: 87000)"}
    assert [d["path"] for d in details[1:]] == [f"$.data.images[{i}].url" for i in range(MAX_DETAILS - 1)]
    assert all(len(detail["message"]) < 200 for detail in details)


def keywords(schema, found):
    """Every keyword used in `schema`, skipping the names under properties and $defs."""
    if isinstance(schema, dict):
        for key, value in schema.items():
            found.add(key)
            for child in value.values() if key in ("properties", "$defs") else [value]:
                keywords(child, found)
    elif isinstance(schema, list):
        for item in schema:
            keywords(item, found)
    return found


# keywords whose jsonschema errors, if any, never quote the value sent
QUIET = {"$schema", "$id", "$ref", "$defs", "$comment", "title", "description", "properties", "items"}


def test_every_keyword_of_the_schemas_is_worded_without_the_value_repr():
    """No keyword of the schema files that validate requests can make jsonschema repr a whole value (the cost
    of a huge 400); job.json describes answers only."""
    used = set()
    for name, schema in load_schemas(SCHEMA_DIR).items():
        if name != "job.json":
            keywords(schema, used)
    assert used - QUIET - set(WORDED) == set()


NON_FINITE = st.sampled_from(["NaN", "Infinity", "-Infinity", "1e999"])
JSON_TEXT = st.recursive(
    st.sampled_from(["null", "true", "1", "2.5", '"s"']),
    lambda inner: (
        st.lists(inner, max_size=3).map(lambda items: "[" + ", ".join(items) + "]")
        | st.dictionaries(st.text("abc", max_size=3), inner, max_size=3).map(
            lambda d: "{" + ", ".join(f"{json.dumps(k)}: {v}" for k, v in d.items()) + "}"
        )
    ),
    max_leaves=10,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(before=JSON_TEXT, literal=NON_FINITE, after=JSON_TEXT)
def test_any_body_holding_a_non_finite_number_is_refused(client, before, literal, after):
    """Whatever the JSON around it, one non-finite number makes the whole body "JSON invalide"."""
    text = f'{{"job_id": "x", "status": "failed", "a": {before}, "b": [{literal}], "c": {after}}}'
    assert_json_refused(post_raw(client, text), f"valeur non finie {literal} refusée")


@pytest.fixture
def dev_server(tmp_path):
    with GunicornServer(tmp_path, {"APP_ENV": "development"}) as server:
        yield server


def test_huge_invalid_bodies_do_not_stall_other_deliveries(dev_server):
    """Four senders of 1 MiB invalid bodies, in a loop: 20 normal deliveries meanwhile are each answered in < 1 s."""
    huge = json.dumps(HUGE).encode()
    started, done = threading.Barrier(5), threading.Event()

    def flood():
        answers = []
        started.wait(timeout=10)
        with requests.Session() as session:
            while not done.is_set() and len(answers) < 50:  # bounded: the normal deliveries end it
                response = session.post(
                    dev_server.url + URL, data=huge, timeout=30, headers={"Content-Type": "application/json"}
                )
                answers.append((response.status_code, response.json()))
        return answers

    with ThreadPoolExecutor(4) as pool:
        floods = [pool.submit(flood) for _ in range(4)]
        started.wait(timeout=10)
        try:
            for i in range(20):
                time.sleep(0.02)  # deliveries spread over the flood
                begin = time.monotonic()
                response = dev_server.post(payload(COMPLETED, f"during-flood-{i}"), timeout=30)
                latency = time.monotonic() - begin
                assert response.status_code == 200 and response.json()["images_count"] == 1
                assert latency < 1.0, f"delivery {i} answered in {latency:.2f}s during the flood"
        finally:
            done.set()
        answers = [answer for flood in floods for answer in flood.result(timeout=120)]
    assert len(answers) >= 4
    for status, body in answers:
        assert status == 400 and body["error"] == "Payload invalide"
        assert 1 <= len(body["details"]) <= MAX_DETAILS
