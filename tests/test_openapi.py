"""The OpenAPI document stays one contract with the schema files and the service's answers."""

import base64
import json
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate
from openapi_spec_validator.readers import read_from_filename
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from image_webhook.domain.settings import load_settings
from image_webhook.intake.openapi import DOCUMENT, bundled_document, served_document
from image_webhook.intake.schema_messages import DetailValidator
from image_webhook.intake.validation import SCHEMA_BY_STATUS, SCHEMA_DIR, PayloadValidator
from image_webhook.service import EXTENSION
from tests.payloads import COMPLETED, FAILED, PROGRESS, SECRET, URL, payload

OPERATION = ("paths", "/api/webhooks/image-completion", "post")


def lookup(document, path):
    for key in path:
        document = document[key]
    return document


def test_repository_document_is_valid_openapi_3_1():
    """openapi.yaml, with the schema files it references, is a valid OpenAPI 3.1 document."""
    spec, base_uri = read_from_filename(str(DOCUMENT))
    assert spec["openapi"].startswith("3.1")
    validate(spec, base_uri=base_uri)


def test_request_bodies_are_the_schema_files_by_reference():
    """The request bodies reference exactly the files the validator uses, and those files exist."""
    spec, _ = read_from_filename(str(DOCUMENT))
    body = lookup(spec, (*OPERATION, "requestBody", "content", "application/json", "schema"))
    refs = {branch["$ref"] for branch in body["oneOf"]}
    assert refs == {f"schemas/{name}" for name in SCHEMA_BY_STATUS.values()}
    assert all((Path(DOCUMENT).parent / ref).is_file() for ref in refs)


def test_served_document_is_the_bundle_and_valid(app):
    """GET /openapi.json serves openapi.yaml with the files bundled in, as this instance answers, valid OpenAPI."""
    served = app.test_client().get("/openapi.json").get_json()
    assert served == served_document(app.extensions[EXTENSION].settings)
    validate(served)


TOKEN = "a-read-token-0123456789abcdef"


@pytest.mark.parametrize(
    ("config", "webhook", "reads"),
    [
        ({"APP_ENV": "production", "WEBHOOK_SECRET": SECRET}, [{"webhookSecret": []}], [{"readToken": []}]),
        (
            {"APP_ENV": "production", "WEBHOOK_SECRET": SECRET, "WEBHOOK_AUTH": "any", "JOBS_API_TOKENS": TOKEN},
            [{"webhookSecret": []}],
            [{"readToken": []}],
        ),
        (
            {"APP_ENV": "production", "WEBHOOK_SIGNING_SECRET": "whsec_" + base64.b64encode(b"k" * 32).decode()},
            [{"webhookSignature": []}],
            [{"readToken": []}],
        ),
        ({"APP_ENV": "development"}, [{}], [{}]),
        ({"APP_ENV": "development", "WEBHOOK_SECRET": SECRET}, [{"webhookSecret": []}, {}], [{}]),
        ({"APP_ENV": "development", "JOBS_API_TOKENS": TOKEN}, [{}], [{"readToken": []}]),
    ],
)
def test_served_document_asks_for_the_credentials_the_instance_asks_for(config, webhook, reads):
    """The served security requirements are the settings': a credential required in production, optional in
    development once a secret is set, none without one; a read token once JOBS_API_TOKENS is set."""
    served = served_document(load_settings(config, environ={}))
    assert lookup(served, (*OPERATION, "security")) == webhook
    for path, method in [("/api/jobs", "get"), ("/api/jobs/{job_id}", "put"), ("/api/jobs/{job_id}/deliveries", "get")]:
        assert served["paths"][path][method]["security"] == reads
    assert served["paths"]["/openapi.json"]["get"]["security"] == []
    validate(served)


@pytest.mark.parametrize(("database_url", "no_database"), [("", True), ("sqlite:///jobs.sqlite3", False)])
def test_stateless_document_says_the_read_api_answers_404(database_url, no_database):
    """Without a database every read operation's 404 is the stateless mode's "Pas de base de données"."""
    served = served_document(load_settings({"APP_ENV": "development", "DATABASE_URL": database_url}, environ={}))
    answers = [served["paths"][path][method]["responses"]["404"] for path, method in READS]
    assert all((answer == {"$ref": "#/components/responses/NoDatabase"}) == no_database for answer in answers)


READS = [
    ("/api/jobs", "get"),
    ("/api/jobs/{job_id}", "get"),
    ("/api/jobs/{job_id}", "put"),
    ("/api/jobs/{job_id}/deliveries", "get"),
]


def test_objects_of_the_bodies_refuse_nul_in_keys_at_any_depth():
    """The bundled request schema refuses NUL in a key of an open object, nested or not, as the strict parser
    does; other extra properties stay accepted."""
    served = bundled_document()
    registry = Registry().with_resource(
        "urn:openapi", Resource.from_contents(served, default_specification=DRAFT202012)
    )
    schema = {"$ref": "urn:openapi#/components/schemas/completed"}
    bundled = Draft202012Validator(schema, registry=registry)
    assert bundled.is_valid(payload(COMPLETED, extra={"nested": [{"key": {"deeper": 1}}]}))
    assert not bundled.is_valid(payload(COMPLETED, extra={"nested": [{"ke\x00y": 1}]}))
    assert not bundled.is_valid(payload(COMPLETED, data={"images": [{"url": "https://x/y.png", "a\x00": 1}]}))
    assert not bundled.is_valid(payload(COMPLETED, **{"\x00": 1}))


def cursor_checker():
    """The document's schema of the cursor, read as ECMA-262 reads its pattern (Python's `$` would let "\\n" end it)."""
    parameters = bundled_document()["paths"]["/api/jobs"]["get"]["parameters"]
    return DetailValidator(next(p["schema"] for p in parameters if p["name"] == "cursor"))


def old_cursor(value):
    """The earlier encoding of a cursor: base64url of a JSON value."""
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")


@pytest.mark.database
def test_every_next_cursor_matches_the_documented_shape(client):
    """The cursors the list gives match the document's pattern, and following them lists every job once."""
    for number in range(5):
        assert client.post(URL, json=payload(COMPLETED, job_id=f"cursor-{number}")).status_code == 200
    checker, seen, after = cursor_checker(), [], None
    for _ in range(10):
        body = client.get("/api/jobs", query_string={"limit": 2, **({"cursor": after} if after else {})}).get_json()
        seen += [job["job_id"] for job in body["jobs"]]
        after = body["next_cursor"]
        if after is None:
            break
        assert checker.is_valid(after), after
    assert seen == [f"cursor-{number}" for number in reversed(range(5))]


@pytest.mark.database
@pytest.mark.parametrize(
    "cursor",
    [
        "0.0",
        "1761065100000000.1",
        "99999999999999999.999999999999999999",  # the largest: the year 5138, an id below 2**63
        "00000000000000001.000000000000000001",
        "1.9223372036854775808",  # an id past 2**63 - 1
        "100000000000000000.1",  # microseconds past the year 5138
        "1.2\n",
        "1.2 ",
        "+1.2",
        "-1.2",
        "1.",
        ".1",
        "1e3.1",
        "١.٢",  # not ASCII digits
        "",
        old_cursor(["2025-10-21T16:45:00.000000+00:00", 9223372036854775808]),  # once a 500
        old_cursor(["2025-10-21T16:45:00.000000+00:00", 1]),
    ],
)
def test_a_cursor_is_read_exactly_when_it_has_the_documented_shape(client, cursor):
    """A cursor matching the document's pattern is read (200, a page before its key); any other is a 400 naming
    it, never a 500 for a value outside the database's integers."""
    valid = cursor_checker().is_valid(cursor)
    response = client.get("/api/jobs", query_string={"cursor": cursor})
    assert response.status_code == (200 if valid else 400), response.get_json()
    if not valid:
        assert response.get_json()["details"][0]["path"] == "$.cursor"


@pytest.mark.database
@pytest.mark.parametrize(
    "cursor", ["1", "000000000000000001", "999999999999999999", "0", "00", "9" * 19, "1\n", " 1", "+1", "١", "", "1.2"]
)
def test_a_deliveries_cursor_is_read_exactly_when_it_has_the_documented_shape(client, cursor):
    """The deliveries' cursor matching the document's DeliveryCursor is read (200); any other is a 400 naming it;
    the next_cursor given matches it."""
    checker = DetailValidator(bundled_document()["components"]["schemas"]["DeliveryCursor"])
    response = client.get("/api/jobs/job-x/deliveries", query_string={"cursor": cursor})
    assert response.status_code == (200 if checker.is_valid(cursor) else 400), response.get_json()
    for _ in range(3):
        assert client.post(URL, json=payload(COMPLETED, job_id="job-x")).status_code == 200
    client.application.extensions[EXTENSION].db.write(lambda connection: None)  # the duplicates' queued writes
    following = client.get("/api/jobs/job-x/deliveries", query_string={"limit": 1}).get_json()["next_cursor"]
    assert checker.is_valid(following)


@pytest.mark.parametrize(
    "body",
    [
        COMPLETED,
        FAILED,
        PROGRESS,
        payload(COMPLETED, timestamp="hier"),
        payload(FAILED, status="done"),
        payload(PROGRESS, progress=120),
        payload(COMPLETED, data={"images": [{"url": 3}]}),
        {"job_id": "x"},
        payload(COMPLETED, data={"images": [{"url": "javascript:alert(1)"}]}),
        payload(COMPLETED, data={"images": [{"url": "HTTPS://X/Y.PNG"}]}),
        payload(FAILED, timestamp="2025-10-21T16:45Z"),
    ],
)
def test_bundled_request_schema_gives_the_files_verdict(body):
    """The bundled request schema accepts and rejects the same payloads as the schema files (no drift)."""
    served = bundled_document()
    registry = Registry().with_resource(
        "urn:openapi", Resource.from_contents(served, default_specification=DRAFT202012)
    )
    schema = {
        "$ref": "urn:openapi#/"
        + "/".join(p.replace("/", "~1") for p in OPERATION)
        + "/requestBody/content/application~1json/schema"
    }
    bundled = Draft202012Validator(schema, registry=registry, format_checker=Draft202012Validator.FORMAT_CHECKER)
    assert bundled.is_valid(body) == PayloadValidator().is_valid(body)


def test_every_status_the_service_answers_is_documented():
    """Every status code the service can answer on the webhook is documented with a JSON schema."""
    responses = lookup(bundled_document(), (*OPERATION, "responses"))
    assert set(responses) == {"200", "400", "401", "404", "405", "408", "413", "414", "415", "431", "500", "501", "503"}


def test_schema_files_are_all_referenced():
    """No schema file is left out of the document (common.json is reached through the others)."""
    files = {p.name for p in SCHEMA_DIR.glob("*.json")}
    assert files == {*SCHEMA_BY_STATUS.values(), "common.json", "job.json", "registration.json"}
    assert set(bundled_document()["components"]["schemas"]) >= {Path(name).stem for name in files}
    text = DOCUMENT.read_text(encoding="utf-8")
    assert all(f"schemas/{name}" in text for name in files - {"common.json"})


def test_openapi_route_needs_no_secret(prod_client):
    """The document is public, even in production."""
    assert prod_client.get("/openapi.json").status_code == 200
    assert prod_client.post(URL, json=COMPLETED).status_code == 401
