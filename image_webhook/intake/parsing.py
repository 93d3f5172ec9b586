"""Strict JSON: what Python's json reads but the service refuses (NaN, repeated keys, NUL, lone surrogates)."""

from __future__ import annotations

import json
import math
import re
from typing import Any

from ..domain.values import Outcome
from .invalid import InvalidPayload
from .schema_messages import clip, shown


class _Refused(ValueError):
    """JSON that Python reads but the service refuses: a non-finite number, a repeated key."""


def _non_finite(literal):
    raise _Refused(f"valeur non finie {clip(literal)} refusée")


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
                raise _Refused(f"clé en double: {shown(key)}")
            seen.add(key)
    return obj


# JSON escapes of what no UTF-8 log or database text can hold: a UTF-16 surrogate (a lone one is no
# character; the body's bytes being UTF-8, an escape is the only way in) and NUL (PostgreSQL refuses it)
_UNSTORABLE_ESCAPE = re.compile(r"\\u(?:[dD][89a-fA-F]|0000)")


def _whole_characters(value: Any, text: str) -> Any:
    """`value`, unless one of its strings (keys included) holds a lone surrogate or NUL; checked only when
    the text has such an escape: an escaped pair (an emoji) is fine."""
    if not _UNSTORABLE_ESCAPE.search(text):
        return value
    pending = [value]
    while pending:  # iterative: the nesting may be as deep as the parser allowed
        item = pending.pop()
        if isinstance(item, dict):
            pending.extend(item)
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
        elif isinstance(item, str):
            if "\x00" in item:
                raise _Refused("caractère NUL (\\u0000) refusé")
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                raise _Refused("caractère Unicode invalide (demi-paire de substitution seule)") from None
    return value


# One decoder for every request (json.loads with options would build one per call). Python's json
# reads NaN and Infinity and lets a repeated key silently replace the first: both refused.
_DECODER = json.JSONDecoder(parse_float=_finite_float, parse_constant=_non_finite, object_pairs_hook=_unique_keys)


def parse_json(raw: bytes) -> Any:
    """Return the parsed body, or 400 unless it is strict UTF-8 JSON: finite numbers, no repeated key."""
    try:
        text = raw.decode("utf-8")
        return _whole_characters(_DECODER.decode(text), text)
    except _Refused as exc:
        reason = str(exc)
    except json.JSONDecodeError as exc:
        reason = exc.msg
    except (ValueError, RecursionError):  # not UTF-8, nested deeper than the parser goes, an integer too long
        reason = "corps illisible (UTF-8, imbrication ou nombre trop long)"
    raise InvalidPayload("JSON invalide", [{"path": "$", "message": reason}], outcome=Outcome.INVALID_JSON)
