"""schemathesis hooks (SCHEMATHESIS_HOOKS): teach the generator what JSON Schema cannot say."""

import base64
import json
import re

import schemathesis

JOB_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
MAX_CURSOR = 200  # openapi.yaml's maxLength of the list's cursor


@schemathesis.hook
def before_call(context, case, kwargs):
    """Keep valid cases valid (in every phase), so that no invalid case turns valid:
    - `data.job_id` must equal `job_id`: align two valid ids;
    - NUL (U+0000) is refused in any JSON string, keys included (PostgreSQL text cannot hold it): a space
      takes its place, which no pattern or length of the schemas tells apart from it;
    - the list's `cursor` is opaque, a next_cursor given back: a schema-valid one becomes a well-formed cursor
      (base64url of [created_at, id]), its id drawn from the generated text."""
    if isinstance(case.body, (dict, list, str)):
        case.body = without_nul(case.body)
    body = case.body
    data = body.get("data") if isinstance(body, dict) else None
    if isinstance(data, dict):
        outer, inner = body.get("job_id"), data.get("job_id")
        if outer != inner and all(isinstance(v, str) and JOB_ID.fullmatch(v) for v in (outer, inner)):
            data["job_id"] = outer
    query = case.query
    value = query.get("cursor") if isinstance(query, dict) else None
    if isinstance(value, str) and len(value) <= MAX_CURSOR:
        key = ["2025-10-21T16:45:00.000000+00:00", sum(value.encode()) % 1_000_000]
        query["cursor"] = base64.urlsafe_b64encode(json.dumps(key).encode()).decode().rstrip("=")


def without_nul(value):
    """`value` with every NUL of its strings and keys replaced by a space (generated bodies nest shallowly)."""
    if isinstance(value, str):
        return value.replace("\x00", " ")
    if isinstance(value, dict):
        return {without_nul(key): without_nul(item) for key, item in value.items()}
    if isinstance(value, list):
        return [without_nul(item) for item in value]
    return value
