"""schemathesis hooks (SCHEMATHESIS_HOOKS): teach the generator what JSON Schema cannot say."""

import re

import schemathesis

JOB_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")


@schemathesis.hook
def before_call(context, case, kwargs):
    """Keep valid cases valid (in every phase), so that no invalid case turns valid: `data.job_id` must equal
    `job_id`, so two valid ids are aligned."""
    body = case.body
    data = body.get("data") if isinstance(body, dict) else None
    if isinstance(data, dict):
        outer, inner = body.get("job_id"), data.get("job_id")
        if outer != inner and all(isinstance(v, str) and JOB_ID.fullmatch(v) for v in (outer, inner)):
            data["job_id"] = outer
