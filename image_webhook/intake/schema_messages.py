"""The 400's details in French: what each schema keyword expected, never walking into the value sent."""

import json
import operator
import re
from functools import cache

from jsonschema import Draft202012Validator, ValidationError
from jsonschema._utils import equal
from jsonschema.validators import extend

SHOWN_LENGTH = 60  # characters of a value sent that a message quotes
_UNESCAPED_DOLLAR = re.compile(r"(?<!\\)\$")


# The 400's details: jsonschema finds the errors, these keywords word them. jsonschema's own messages
# hold repr(instance), built as each error is yielded: for an array of 87,000 images or a list nested
# 977 deep that repr is the whole cost of the answer, or a RecursionError. These say what was expected
# and show the value sent in a few characters, never walking into it.
def shown(value):
    if isinstance(value, list):
        return f"tableau de {len(value)} élément(s)"
    if isinstance(value, dict):
        return f"objet de {len(value)} clé(s)"
    return clip(json.dumps(value[: SHOWN_LENGTH + 1] if isinstance(value, str) else value, ensure_ascii=False))


def clip(text):
    return text if len(text) <= SHOWN_LENGTH else text[: SHOWN_LENGTH - 1] + "…"


def _error(expected, instance):
    return ValidationError(f"{expected} (reçu: {shown(instance)})")


def _type(validator, types, instance, schema):
    types = [types] if isinstance(types, str) else types
    if not any(validator.is_type(instance, name) for name in types):
        yield _error(f"doit être de type {' ou '.join(types)}", instance)


def _enum(validator, values, instance, schema):
    if not any(equal(instance, value) for value in values):
        yield _error(f"doit valoir {' ou '.join(map(shown, values))}", instance)


def _const(validator, value, instance, schema):
    yield from _enum(validator, [value], instance, schema)


def _required(validator, names, instance, schema):
    if validator.is_type(instance, "object"):
        for name in names:
            if name not in instance:
                yield ValidationError(f"propriété requise manquante: {shown(name)}")


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


def _additional(validator, allowed, instance, schema):
    if allowed is False and validator.is_type(instance, "object"):
        known = schema.get("properties", {})
        extra = next((name for name in instance if name not in known), None)
        if extra is not None:
            yield ValidationError(f"propriété inconnue: {shown(extra)}")


# every keyword whose jsonschema message would repr the instance (tests/test_strict_json.py checks the
# schema files use no other such keyword)
WORDED = {
    "type": _type,
    "enum": _enum,
    "const": _const,
    "required": _required,
    "pattern": _pattern,
    "format": _format,
    "additionalProperties": _additional,
    **{keyword: _limit(*limit) for keyword, limit in _LIMITS.items()},
}
DetailValidator = extend(Draft202012Validator, WORDED)
