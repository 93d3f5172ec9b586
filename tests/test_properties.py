"""Property-based tests (hypothesis): validation through the real client, and the store against a model."""

import json

import pytest
import schemathesis
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from image_webhook.intake.openapi import bundled_document
from image_webhook.intake.validation import SCHEMA_BY_STATUS, PayloadValidator, load_schemas
from image_webhook.storage.idempotence import Claim
from image_webhook.storage.idempotence.memory import MemoryStore
from tests.payloads import URL, FakeClock

SCHEMAS = load_schemas()
VALIDATOR = PayloadValidator(SCHEMAS)
EXAMPLES = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)


def aligned(payload):
    """Generated payloads get data.job_id = job_id, the one rule JSON Schema cannot state."""
    if isinstance(payload.get("data"), dict) and "job_id" in payload["data"]:
        payload["data"]["job_id"] = payload["job_id"]
    return payload


# schemathesis generates request bodies from the served OpenAPI document, i.e. from the schema files
SCHEMA = schemathesis.openapi.from_dict(bundled_document())
SCHEMA.config.generation.update(allow_x00=False)  # the contract refuses NUL in strings (openapi.yaml says so)
OPERATION = SCHEMA["/api/webhooks/image-completion"]["POST"]
valid_payloads = OPERATION.as_strategy().map(lambda case: aligned(case.body))


@pytest.fixture
def client(make_app):
    return make_app(MAX_CONTENT_LENGTH=10 * 1024 * 1024).test_client()


@EXAMPLES
@given(payload=valid_payloads)
def test_any_payload_generated_from_the_schemas_is_accepted(client, payload):
    """Whatever the schemas allow is answered 200 (processed, duplicate or intermediate)."""
    response = client.post(URL, json=payload)
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["success"] is True


# NUL is refused by the parser before any schema, naming "$" (tests/test_strict_json.py): not a mutation here
CHARACTERS = st.characters(exclude_characters="\x00")
NOT_A_STRING = st.one_of(st.integers(), st.booleans(), st.none(), st.lists(st.integers(), max_size=2))
NOT_A_NUMBER = st.one_of(
    st.text(CHARACTERS, max_size=5),
    st.booleans(),
    st.none(),
    st.dictionaries(st.text(CHARACTERS, max_size=3), st.integers(), max_size=2),
)
BAD_TIMESTAMP = st.sampled_from(
    [
        "yesterday",
        "2025-10-21",
        "2025-10-21 16:45:00",
        "2025-02-30T00:00:00Z",
        "2025-10-21T25:00:00Z",
        "2025-10-21T16:45:00",
        "",
        "2025-10-21T16:45:00Z\n",
        "2025-10-21T16:45:00Z ",
        " 2025-10-21T16:45:00Z",
    ]
)
NOT_HTTP = st.sampled_from(
    [
        "javascript:alert(1)",
        "data:image/png;base64,AAAA",
        "file:///etc/passwd",
        "vbscript:x",
        "ftp://x/y.png",
        "http:///y.png",
        "http://x/y.png\n",
    ]
)
BAD_JOB_ID = st.one_of(
    st.just(""),
    st.text(min_size=129, max_size=200, alphabet="ab"),
    st.text(CHARACTERS, min_size=1, max_size=10).filter(
        lambda s: any(c not in "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._:-" for c in s)
    ),
)

# (status the mutation applies to, JSONPath reported, where to change, strategy of the wrong value | DROP)
DROP = object()
MUTATIONS = [
    (None, "$", ("job_id",), DROP),
    (None, "$.job_id", ("job_id",), NOT_A_STRING),
    (None, "$.job_id", ("job_id",), BAD_JOB_ID),
    (None, "$.timestamp", ("timestamp",), BAD_TIMESTAMP),
    (None, "$.timestamp", ("timestamp",), NOT_A_STRING),
    (None, "$.message", ("message",), st.text(min_size=2001, max_size=2100, alphabet="x")),
    (
        "progress.json",
        "$.progress",
        ("progress",),
        st.one_of(st.floats(min_value=100, exclude_min=True, allow_infinity=False), st.integers(max_value=-1)),
    ),
    ("progress.json", "$.progress", ("progress",), NOT_A_NUMBER),
    ("failed.json", "$.error_message", ("error_message",), NOT_A_STRING),
    (
        "completed.json",
        "$.data.images[0].url",
        ("data", "images", 0, "url"),
        st.sampled_from(["not a uri", "//x/y", "", "http://x y"]),
    ),
    ("completed.json", "$.data.images[0].url", ("data", "images", 0, "url"), NOT_HTTP),
    ("completed.json", "$.data.images[0]", ("data", "images", 0, "url"), DROP),
    ("completed.json", "$.data.images[0].size_bytes", ("data", "images", 0, "size_bytes"), st.integers(max_value=-1)),
    ("completed.json", "$.data.images[0].size_bytes", ("data", "images", 0, "size_bytes"), NOT_A_NUMBER),
    (
        "completed.json",
        "$.data.metadata.generation_time_seconds",
        ("data", "metadata", "generation_time_seconds"),
        NOT_A_NUMBER,
    ),
]


@st.composite
def mutated(draw):
    """A valid payload with exactly one change that breaks its schema, and the path that must be named."""
    payload = draw(valid_payloads)
    name = SCHEMA_BY_STATUS[payload["status"]]
    applicable = [m for m in MUTATIONS if m[0] in (None, name)]
    _, path, where, wrong = draw(st.sampled_from(applicable))
    target = payload
    for key in where[:-1]:
        target = target.setdefault(key, {}) if isinstance(key, str) else target[key]
    if wrong is DROP:
        target.pop(where[-1], None)
        assume(where[-1] in ("job_id", "url"))
    else:
        target[where[-1]] = draw(wrong)
    return payload, path


@EXAMPLES
@given(case=mutated())
def test_any_single_mutation_is_a_400_naming_its_path(client, case):
    """Dropping a required field, a wrong type, an out-of-range number or a bad format is a 400 naming the path."""
    payload, path = case
    response = client.post(URL, json=payload)
    assert response.status_code == 400
    body = response.get_json()
    assert path in [d["path"] for d in body["details"]], body


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=20,
)
STATUS = st.sampled_from(["completed", "failed", "pending", "generating", "saving", "initializing", "done", ""])
NEAR_VALID = st.fixed_dictionaries(
    {"job_id": st.one_of(st.text(max_size=10), JSON), "status": st.one_of(STATUS, JSON)},
    optional={"data": JSON, "progress": JSON, "timestamp": JSON, "error_message": JSON},
)


@EXAMPLES
@given(body=st.binary(max_size=300))
def test_random_bytes_never_give_a_5xx(client, body):
    """Arbitrary bytes as a JSON body get a 2xx or 4xx JSON answer."""
    response = client.post(URL, data=body, content_type="application/json")
    assert response.status_code < 500 and response.is_json


@EXAMPLES
@given(body=st.one_of(JSON, NEAR_VALID))
def test_random_json_never_gives_a_5xx(client, body):
    """Arbitrary JSON values, and objects that look like notifications, never give a 5xx."""
    response = client.post(URL, data=json.dumps(body), content_type="application/json")
    assert response.status_code in (200, 400), response.get_json()


@EXAMPLES
@given(body=st.one_of(valid_payloads, mutated().map(lambda case: case[0]), NEAR_VALID))
def test_hot_path_validator_agrees_with_jsonschema(body):
    """fastjsonschema (hot path) and jsonschema (the reference) give the same verdict on every payload."""
    reference = not VALIDATOR.details(body)
    assert VALIDATOR.is_valid(body) == reference


class StoreMachine(RuleBasedStateMachine):
    """The store against a model: an ordered list of (key, claim time), with the same window and bound."""

    WINDOW, BOUND = 10.0, 5
    keys = st.sampled_from([f"job-{i}" for i in range(8)])

    def __init__(self):
        super().__init__()
        self.clock = FakeClock()
        self.store = MemoryStore(window=self.WINDOW, max_entries=self.BOUND, clock=self.clock, batch=2)
        self.model = []  # [(key, claimed_at)], oldest first
        self.claims = {}

    def live(self, claimed_at):
        return self.clock() - claimed_at < self.WINDOW

    @rule(key=keys)
    def claim(self, key):
        entry = next((e for e in self.model if e[0] == key), None)
        claim = self.store.claim(key)
        if entry and self.live(entry[1]):
            assert claim.new is False
            return
        assert claim.new is True
        if entry:
            self.model.remove(entry)
        elif len(self.model) >= self.BOUND:
            expired = 0
            while self.model and not self.live(self.model[0][1]) and expired < 2:
                self.model.pop(0)
                expired += 1
            if len(self.model) >= self.BOUND:
                self.model.pop(0)  # the oldest live entry is evicted
        self.model.append((key, self.clock()))
        self.claims[key] = claim

    @rule(key=keys)
    def release(self, key):
        claim = self.claims.pop(key, Claim(False))
        held = any(e == (key, claim.token) for e in self.model)
        assert self.store.release(key, claim) is held
        self.model = [e for e in self.model if e != (key, claim.token)]

    @rule(seconds=st.sampled_from([0.5, 3, 9.99, 10, 25]))
    def advance(self, seconds):
        self.clock.advance(seconds)

    @rule()
    def cleanup(self):
        removed = self.store.remove_expired()
        expired = 0
        while self.model and not self.live(self.model[0][1]):
            self.model.pop(0)
            expired += 1
        assert removed == expired

    @invariant()
    def agrees_with_the_model(self):
        assert len(self.store) == len(self.model) <= self.BOUND
        for key in self.keys.elements:
            expected = any(k == key and self.live(t) for k, t in self.model)
            assert self.store.seen(key) == expected


TestStoreAgainstModel = StoreMachine.TestCase
TestStoreAgainstModel.settings = settings(max_examples=200, stateful_step_count=40, deadline=None)
