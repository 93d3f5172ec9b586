"""The OpenAPI document stays one contract with the schema files and the service's answers."""

from pathlib import Path

import pytest
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate
from openapi_spec_validator.readers import read_from_filename
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from image_webhook.intake.openapi import DOCUMENT, bundled_document
from image_webhook.intake.validation import SCHEMA_BY_STATUS, SCHEMA_DIR, PayloadValidator
from tests.payloads import COMPLETED, FAILED, PROGRESS, URL, payload

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


def test_served_document_is_the_bundle_and_valid(client):
    """GET /openapi.json serves openapi.yaml with the files bundled in, and it is valid OpenAPI."""
    served = client.get("/openapi.json").get_json()
    assert served == bundled_document()
    validate(served)


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
    assert set(responses) == {"200", "400", "401", "404", "405", "408", "413", "415", "500", "501", "503"}


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
