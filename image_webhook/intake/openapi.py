"""The OpenAPI document: `openapi.yaml` with the schema files it references bundled in, as one instance serves it."""

import copy
from pathlib import Path
from typing import Any

import yaml

from ..domain.settings import Settings
from .validation import load_schemas

DOCUMENT = Path(__file__).resolve().parents[2] / "openapi.yaml"  # next to schemas/, which it references
PREFIX = "schemas/"
# what the strict parser says of the properties an object schema leaves open: no NUL in a key, at any depth
STRICT = {
    "propertyNames": {"$ref": "#/components/schemas/JsonKey"},
    "additionalProperties": {"$ref": "#/components/schemas/StrictJson"},
}
NO_DATABASE = {"$ref": "#/components/responses/NoDatabase"}
Requirements = list[dict[str, list[str]]]  # an operation's `security`: alternatives, `{}` for no credential


def bundled_document(path=DOCUMENT, schemas=None):
    """Return openapi.yaml with each `schemas/x.json` reference replaced by `#/components/schemas/x`."""
    document = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    schemas = load_schemas() if schemas is None else schemas
    components = document.setdefault("components", {}).setdefault("schemas", {})
    for name, schema in schemas.items():
        embedded = {k: v for k, v in copy.deepcopy(schema).items() if k not in ("$id", "$schema")}
        components[_component(name)] = _strict(_rewrite(embedded, base=name))
    return _rewrite(document, base=None)


def served_document(settings: Settings, schemas=None) -> dict[str, Any]:
    """The bundle as this instance answers: the credentials its settings ask for (none in development without
    secrets), and the read API's 404 in the stateless mode."""
    document = bundled_document(schemas=schemas)
    for item in document["paths"].values():
        for operation in (value for value in item.values() if isinstance(value, dict)):  # not `parameters`
            schemes = {name for requirement in operation.get("security", ()) for name in requirement}
            if "webhookSecret" in schemes:
                operation["security"] = _webhook_security(settings)
            elif "readToken" in schemes:
                operation["security"] = _read_security(settings)
                if not settings.database_url:
                    operation["responses"]["404"] = NO_DATABASE
    return document


def _webhook_security(settings: Settings) -> Requirements:
    """The schemes WEBHOOK_AUTH accepts whose secrets are set, one of them required in production only."""
    schemes = [
        scheme
        for scheme, mode, secrets in (
            ("webhookSecret", "secret", settings.webhook_secret),
            ("webhookSignature", "signature", settings.webhook_signing_secret),
        )
        if settings.webhook_auth in (mode, "any") and secrets
    ]
    requirements: Requirements = [{scheme: []} for scheme in schemes]
    return requirements if settings.production else [*requirements, {}]


def _read_security(settings: Settings) -> Requirements:
    """A token is needed once JOBS_API_TOKENS is set; without tokens the API is open in development only."""
    return [{"readToken": []}] if settings.jobs_api_tokens or settings.production else [{}]


def _component(file_name):
    return Path(file_name).stem


def _strict(node):
    """`node` with STRICT on each object schema that leaves its other properties open."""
    if isinstance(node, list):
        return [_strict(item) for item in node]
    if not isinstance(node, dict):
        return node
    strict = {key: _strict(value) for key, value in node.items()}
    if strict.get("type") == "object" and "additionalProperties" not in strict:
        strict.update(copy.deepcopy(STRICT))
    return strict


def _rewrite(node, base):
    """Point every `$ref` of `node` at the bundled components (`base`: the file `node` comes from)."""
    if isinstance(node, list):
        return [_rewrite(item, base) for item in node]
    if not isinstance(node, dict):
        return node
    rewritten = {key: _rewrite(value, base) for key, value in node.items()}
    ref = rewritten.get("$ref")
    if isinstance(ref, str):
        target, _, pointer = ref.partition("#")
        if base is None and target.startswith(PREFIX):
            target = target[len(PREFIX) :]
        if base is not None or target:
            rewritten["$ref"] = f"#/components/schemas/{_component(target or base)}{pointer}"
    return rewritten
