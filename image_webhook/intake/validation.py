"""Payload validation against the JSON Schema files in `schemas/`, loaded, checked and compiled once."""

from __future__ import annotations

import json
from itertools import islice
from pathlib import Path
from typing import Any

import fastjsonschema
from jsonschema import Draft202012Validator
from referencing import Registry, Resource

from ..domain.notifications import Notification
from ..domain.values import INTERMEDIATE, Outcome, Status
from .invalid import InvalidPayload
from .schema_messages import DetailValidator

SCHEMA_DIR = Path(__file__).resolve().parents[2] / "schemas"  # the contract stays at the top, for the backend team
SCHEMA_BY_STATUS = {
    Status.COMPLETED.value: "completed.json",
    Status.FAILED.value: "failed.json",
    **{status.value: "progress.json" for status in INTERMEDIATE},
}
UNKNOWN_STATUS_SCHEMA = "common.json#/$defs/notification"
MISSING_IMAGES = "Données d'images manquantes"
MAX_DETAILS = 20
FORMAT_CHECKER = Draft202012Validator.FORMAT_CHECKER
CHECKED_FORMATS = ("date-time", "uri")


def load_schemas(directory=SCHEMA_DIR):
    """Return {file name: schema} for every schema file, each checked against its metaschema."""
    schemas = {}
    for path in sorted(Path(directory).glob("*.json")):
        schema = json.loads(path.read_text(encoding="utf-8"))
        Draft202012Validator.check_schema(schema)
        schemas[path.name] = schema
    return schemas


class PayloadValidator:
    """Validates notifications: fast compiled checks on the hot path, jsonschema to word the errors."""

    def __init__(self, schemas=None):
        self.schemas = load_schemas() if schemas is None else schemas
        registry = Registry().with_resources(
            (name, Resource.from_contents(schema)) for name, schema in self.schemas.items()
        )
        formats = {name: _format_check(name) for name in CHECKED_FORMATS}
        resolve = {"": self.schemas.__getitem__}  # `$ref`s between files resolve to the loaded files
        self._fast = {
            name: fastjsonschema.compile(self.schemas[name], handlers=resolve, formats=formats)
            for name in set(SCHEMA_BY_STATUS.values())
        }
        roots = {name: self.schemas[name] for name in set(SCHEMA_BY_STATUS.values())}
        roots[UNKNOWN_STATUS_SCHEMA] = {"$ref": UNKNOWN_STATUS_SCHEMA}
        # the file itself is the root: a `$ref` to a whole file would switch back to the plain validator class
        self._detailed = {
            name: DetailValidator(root, registry=registry, format_checker=FORMAT_CHECKER)
            for name, root in roots.items()
        }
        self._registration = DetailValidator(self.schemas["registration.json"], registry=registry)
        # compiled too: every read of a job checks its id (jsonschema's iter_errors cost 84 µs of a 380 µs image)
        self._job_id = fastjsonschema.compile(self.schemas["common.json"]["$defs"]["job_id"])

    def job_id_is_valid(self, job_id: str) -> bool:
        """Whether `job_id` is one the notifications accept (the read API's paths)."""
        try:
            self._job_id(job_id)
        except fastjsonschema.JsonSchemaValueException:
            return False
        return True

    def validate_registration(self, body: Any) -> None:
        """Raise InvalidPayload (400) unless `body` is a registration (schemas/registration.json)."""
        errors = list(islice(self._registration.iter_errors(body), MAX_DETAILS))
        if errors:
            raise InvalidPayload("Payload invalide", [{"path": e.json_path, "message": e.message} for e in errors])

    def is_valid(self, payload):
        """Return whether `payload` satisfies its status's schema (the hot-path verdict)."""
        name = _schema_name(payload)
        if name is None:
            return False
        try:
            self._fast[name](payload)
        except fastjsonschema.JsonSchemaValueException:
            return False
        return True

    def validate(self, payload: Any) -> Notification:
        """The notification `payload` is; raise InvalidPayload (400) unless it is a valid one."""
        if not isinstance(payload, dict):
            raise InvalidPayload("Payload invalide", [{"path": "$", "message": "Le corps doit être un objet JSON"}])
        if payload.get("status") == "completed" and not _has_images(payload):
            raise InvalidPayload(MISSING_IMAGES, outcome=Outcome.MISSING_IMAGES)
        if not self.is_valid(payload):
            raise InvalidPayload("Payload invalide", self.details(payload))
        data = payload["data"] if payload["status"] == "completed" else {}  # valid: completed has data
        if data.get("job_id", payload["job_id"]) != payload["job_id"]:
            raise InvalidPayload(
                "Payload invalide", [{"path": "$.data.job_id", "message": "data.job_id doit être égal à job_id"}]
            )
        return Notification.of(payload)

    def details(self, payload: Any) -> list[dict[str, str]]:
        """Return the first MAX_DETAILS errors as {"path", "message"}, in document order.

        iter_errors is lazy and stopped there: an array of 87,000 bad images costs 20 errors, not 87,000.
        """
        name = _schema_name(payload) or UNKNOWN_STATUS_SCHEMA
        errors = islice(self._detailed[name].iter_errors(payload), MAX_DETAILS)
        # paths that part ways do so inside one object (keys) or one array (indices): never a str against an int
        return [{"path": e.json_path, "message": e.message} for e in sorted(errors, key=lambda e: tuple(e.path))]


def _schema_name(payload):
    status = payload.get("status")
    return SCHEMA_BY_STATUS.get(status) if isinstance(status, str) else None


def _has_images(payload):
    data = payload.get("data")
    images = data.get("images") if isinstance(data, dict) else None
    return isinstance(images, list) and len(images) > 0


def _format_check(name):
    # jsonschema's own check for the format, called without its FormatChecker's dispatch: both
    # validators give one verdict
    check, raises = FORMAT_CHECKER.checkers[name]
    if not raises:
        return check
    return lambda value: FORMAT_CHECKER.conforms(value, name)
