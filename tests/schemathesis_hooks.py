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
    - the list's `cursor` is opaque, a next_cursor given back: a schema-valid one becomes a well-formed cursor
      (base64url of [created_at, id]), its id drawn from the generated text."""
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
