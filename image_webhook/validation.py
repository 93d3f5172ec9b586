"""Payload validation against the JSON Schema files in `schemas/`, loaded, checked and compiled once."""

import json
import math
import operator
import re
from functools import cache
from itertools import islice
from pathlib import Path
from typing import Any

import fastjsonschema
from jsonschema import Draft202012Validator, ValidationError
from jsonschema._utils import equal
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
SHOWN_LENGTH = 60  # characters of a value sent that a message quotes
FORMAT_CHECKER = Draft202012Validator.FORMAT_CHECKER
CHECKED_FORMATS = ("date-time", "uri")
_UNESCAPED_DOLLAR = re.compile(r"(?<!\\)\$")


class _Refused(ValueError):
    """JSON that Python reads but the service refuses: a non-finite number, a repeated key."""


def _non_finite(literal):
    raise _Refused(f"valeur non finie {_clip(literal)} refusée")


def _finite_float(literal):
    value = float(literal)
    if not math.isfinite(value):  # 1e999 overflows to inf
        _non_finite(literal)
    return value


def _unique_keys(pairs):
    obj = dict(pairs)
    if len(obj) != len(pairs):  # only a body with a repeated key pays for naming it
        seen = set()
        for key, _ in pairs:
            if key in seen:
                raise _Refused(f"clé en double: {_shown(key)}")
            seen.add(key)
    return obj


# One decoder for every request (json.loads with options would build one per call). Python's json
# reads NaN and Infinity and lets a repeated key silently replace the first: both refused.
_DECODER = json.JSONDecoder(parse_float=_finite_float, parse_constant=_non_finite, object_pairs_hook=_unique_keys)


def parse_json(raw: bytes) -> Any:
    """Return the parsed body, or 400 unless it is strict UTF-8 JSON: finite numbers, no repeated key."""
    try:
        return _DECODER.decode(raw.decode("utf-8"))
    except _Refused as exc:
        reason = str(exc)
    except json.JSONDecodeError as exc:
        reason = exc.msg
    except (ValueError, RecursionError):  # not UTF-8, nested deeper than the parser goes, an integer too long
        reason = "corps illisible (UTF-8, imbrication ou nombre trop long)"
    raise InvalidPayload("JSON invalide", [{"path": "$", "message": reason}], outcome="invalid_json")


# The 400's details: jsonschema finds the errors, these keywords word them. jsonschema's own messages
# hold repr(instance), built as each error is yielded: for an array of 87,000 images or a list nested
# 977 deep that repr is the whole cost of the answer, or a RecursionError. These say what was expected
# and show the value sent in a few characters, never walking into it.
def _shown(value):
    if isinstance(value, list):
        return f"tableau de {len(value)} élément(s)"
    if isinstance(value, dict):
        return f"objet de {len(value)} clé(s)"
    return _clip(json.dumps(value[: SHOWN_LENGTH + 1] if isinstance(value, str) else value, ensure_ascii=False))


def _clip(text):
    return text if len(text) <= SHOWN_LENGTH else text[: SHOWN_LENGTH - 1] + "…"


def _error(expected, instance):
    return ValidationError(f"{expected} (reçu: {_shown(instance)})")


def _type(validator, types, instance, schema):
    types = [types] if isinstance(types, str) else types
    if not any(validator.is_type(instance, name) for name in types):
        yield _error(f"doit être de type {' ou '.join(types)}", instance)


def _enum(validator, values, instance, schema):
    if not any(equal(instance, value) for value in values):
        yield _error(f"doit valoir {' ou '.join(map(_shown, values))}", instance)


def _const(validator, value, instance, schema):
    yield from _enum(validator, [value], instance, schema)


def _required(validator, names, instance, schema):
    if validator.is_type(instance, "object"):
        for name in names:
            if name not in instance:
                yield ValidationError(f"propriété requise manquante: {_shown(name)}")


@cache
def _ecma_regex(pattern):
    # ECMA-262's `$` matches only at the very end; Python's also before a final newline
    return re.compile(_UNESCAPED_DOLLAR.sub(r"\\Z", pattern))


def _pattern(validator, pattern, instance, schema):
    if validator.is_type(instance, "string") and not _ecma_regex(pattern).search(instance):
        yield _error(f"doit correspondre au motif {pattern}", instance)


def _format(validator, name, instance, schema):
    if validator.format_checker is not None and not validator.format_checker.conforms(instance, name):
        yield _error(f"doit être au format {name}", instance)


# keyword: (the JSON type it applies to, the failing comparison, the French wording)
_LIMITS = {
    "minimum": ("number", operator.lt, "doit être supérieur ou égal à {}"),
    "maximum": ("number", operator.gt, "doit être inférieur ou égal à {}"),
    "minLength": ("string", operator.lt, "doit contenir au moins {} caractère(s)"),
    "maxLength": ("string", operator.gt, "doit contenir au plus {} caractère(s)"),
    "minItems": ("array", operator.lt, "doit contenir au moins {} élément(s)"),
    "maxItems": ("array", operator.gt, "doit contenir au plus {} élément(s)"),
}


def _limit(kind, fails, wording):
    def check(validator, limit, instance, schema):
        if validator.is_type(instance, kind):
            measured = instance if kind == "number" else len(instance)  # a string or array: its length
            if fails(measured, limit):
                yield _error(wording.format(limit), measured)

    return check


# every keyword whose jsonschema message would repr the instance (tests/test_strict_json.py checks the
# schema files use no other such keyword)
WORDED = {
    "type": _type,
    "enum": _enum,
    "const": _const,
    "required": _required,
    "pattern": _pattern,
    "format": _format,
    **{keyword: _limit(*limit) for keyword, limit in _LIMITS.items()},
}
DetailValidator = extend(Draft202012Validator, WORDED)


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
        data = payload["data"] if payload["status"] == "completed" else {}  # valid: completed has data
        if data.get("job_id", payload["job_id"]) != payload["job_id"]:
            raise InvalidPayload(
                "Payload invalide", [{"path": "$.data.job_id", "message": "data.job_id doit être égal à job_id"}]
            )

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
