"""Payload validation against the JSON Schema files in `schemas/`, loaded, checked and compiled once."""
import json
import re
from functools import lru_cache
from pathlib import Path

import fastjsonschema
from jsonschema import Draft202012Validator, ValidationError
from jsonschema.validators import extend
from referencing import Registry, Resource

from .errors import InvalidPayload

SCHEMA_DIR = Path(__file__).resolve().parent.parent / "schemas"  # the contract stays at the top, for the backend team
INTERMEDIATE_STATUSES = ("pending", "initializing", "generating", "saving")
SCHEMA_BY_STATUS = {
    "completed": "completed.json",
    "failed": "failed.json",
    **{status: "progress.json" for status in INTERMEDIATE_STATUSES},
}
STATUSES = frozenset(SCHEMA_BY_STATUS)
UNKNOWN_STATUS_SCHEMA = "common.json#/$defs/notification"
MISSING_IMAGES = "Données d'images manquantes"
MAX_DETAILS = 20
MAX_MESSAGE_LENGTH = 300
FORMAT_CHECKER = Draft202012Validator.FORMAT_CHECKER
CHECKED_FORMATS = ("date-time", "uri")
_UNESCAPED_DOLLAR = re.compile(r"(?<!\\)\$")


@lru_cache(maxsize=None)
def _ecma_regex(pattern):
    # ECMA-262's `$` matches only at the very end; Python's also before a final newline
    return re.compile(_UNESCAPED_DOLLAR.sub(r"\\Z", pattern))


def _pattern(validator, pattern, instance, schema):
    if validator.is_type(instance, "string") and not _ecma_regex(pattern).search(instance):
        yield ValidationError(f"{instance!r} does not match {pattern!r}")


# jsonschema words the 400 details; its `pattern` is made to agree with ECMA-262 (and fastjsonschema)
DetailValidator = extend(Draft202012Validator, {"pattern": _pattern})


def parse_json(raw):
    """Return the parsed body, or 400 unless it is UTF-8 JSON (a RecursionError is a body nested
    deeper than the parser goes)."""
    try:
        return json.loads(raw.decode("utf-8"))
    except (ValueError, RecursionError) as exc:
        reason = exc.msg if isinstance(exc, json.JSONDecodeError) else "corps illisible (UTF-8 ou imbrication)"
        raise InvalidPayload("JSON invalide", [{"path": "$", "message": reason}], outcome="invalid_json") from None


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

    def validate(self, payload):
        """Raise InvalidPayload (400) unless `payload` is a valid notification."""
        if not isinstance(payload, dict):
            raise InvalidPayload("Payload invalide", [{"path": "$", "message": "Le corps doit être un objet JSON"}])
        if payload.get("status") == "completed" and not _has_images(payload):
            raise InvalidPayload(MISSING_IMAGES, outcome="missing_images")
        if not self.is_valid(payload):
            raise InvalidPayload("Payload invalide", self.details(payload))
        data = payload.get("data")
        if payload["status"] == "completed" and "job_id" in data and data["job_id"] != payload["job_id"]:
            raise InvalidPayload(
                "Payload invalide", [{"path": "$.data.job_id", "message": "data.job_id doit être égal à job_id"}]
            )

    def details(self, payload):
        """Return up to MAX_DETAILS {"path", "message"} entries, in document order, worded by jsonschema."""
        name = _schema_name(payload) or UNKNOWN_STATUS_SCHEMA
        errors = sorted(self._detailed[name].iter_errors(payload), key=lambda e: list(map(str, e.absolute_path)))
        return [{"path": e.json_path, "message": _shorten(e.message)} for e in errors[:MAX_DETAILS]]


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


def _shorten(message):
    return message if len(message) <= MAX_MESSAGE_LENGTH else message[: MAX_MESSAGE_LENGTH - 1] + "…"
