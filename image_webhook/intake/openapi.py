"""The OpenAPI document: `openapi.yaml`, with the schema files it references bundled in, built once."""

import copy
from pathlib import Path

import yaml

from .validation import load_schemas

DOCUMENT = Path(__file__).resolve().parents[2] / "openapi.yaml"  # next to schemas/, which it references
PREFIX = "schemas/"


def bundled_document(path=DOCUMENT, schemas=None):
    """Return openapi.yaml with each `schemas/x.json` reference replaced by `#/components/schemas/x`."""
    document = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    schemas = load_schemas() if schemas is None else schemas
    components = document.setdefault("components", {}).setdefault("schemas", {})
    for name, schema in schemas.items():
        embedded = {k: v for k, v in copy.deepcopy(schema).items() if k not in ("$id", "$schema")}
        components[_component(name)] = _rewrite(embedded, base=name)
    return _rewrite(document, base=None)


def _component(file_name):
    return Path(file_name).stem


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
