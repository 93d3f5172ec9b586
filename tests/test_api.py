"""The read API (/api/jobs) through the Flask client, on SQLite and PostgreSQL: reads, pages, registration, auth."""

import base64
import itertools
import json
import uuid

import pytest
from jsonschema import Draft202012Validator
from referencing import Registry, Resource

from image_webhook.domain.notifications import Delivery
from image_webhook.domain.settings import startup_warnings
from image_webhook.intake.validation import load_schemas
from image_webhook.service import EXTENSION
from image_webhook.storage.database import deliveries
from tests.payloads import COMPLETED, FAILED, PROGRESS, SECRET, URL, payload

pytestmark = pytest.mark.database

ISSUE_FIELDS = {
    "job_id",
    "status",
    "progress",
    "message",
    "prompt",
    "images",
    "metadata",
    "error_message",
    "user_id",
    "organization_id",
    "created_at",
    "updated_at",
    "completed_at",
    "processing_time_ms",
}
OWNER = {"user_id": "user-1", "organization_id": "org-1", "prompt": "Un chat astronaute, version de l'application"}
DESCRIPTION = COMPLETED["data"]["images"][0]["description"]
SCHEMAS = load_schemas()
JOB = Draft202012Validator(
    SCHEMAS["job.json"], registry=Registry().with_resources((n, Resource.from_contents(s)) for n, s in SCHEMAS.items())
)


def new_id():
    return f"api-{uuid.uuid4().hex}"


def notify(client, template, job_id, headers=None, **changes):
    response = client.post(URL, json=payload(template, job_id, **changes), headers=headers or {})
    assert response.status_code == 200, response.get_json()
    return response


def flush(client):
    """Wait until every queued write (the fast path's duplicates) is committed."""
    client.application.extensions[EXTENSION].db.write(lambda connection: None)


def cursor(value):
    """A cursor the way next_cursor encodes one, around any JSON value."""
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")


# --- one job


def test_a_job_has_every_field_of_the_issue_and_conforms_to_its_schema(client):
    """GET one job: 200 with the issue's fields, the images and metadata as received, and job.json conformance."""
    job_id = new_id()
    client.put(f"/api/jobs/{job_id}", json=OWNER)
    notify(client, COMPLETED, job_id)
    response = client.get(f"/api/jobs/{job_id}")
    job = response.get_json()
    assert response.status_code == 200 and response.mimetype == "application/json"
    assert set(job) >= ISSUE_FIELDS
    assert list(JOB.iter_errors(job)) == []
    assert job["images"] == COMPLETED["data"]["images"] and job["metadata"] == COMPLETED["data"]["metadata"]
    assert (job["job_id"], job["status"], job["progress"]) == (job_id, "completed", 100)
    assert (job["user_id"], job["organization_id"], job["prompt"]) == (
        OWNER["user_id"],
        OWNER["organization_id"],
        OWNER["prompt"],
    )
    assert job["completed_at"].startswith("2025-10-21T16:45:00") and job["processing_time_ms"] >= 0


def test_an_unknown_job_is_a_json_404(client):
    """An unknown job is 404 with the JSON error and its French message."""
    response = client.get(f"/api/jobs/{new_id()}")
    assert response.status_code == 404
    assert response.get_json() == {"error": "Not Found", "message": "Job inconnu"}


@pytest.mark.parametrize("job_id", ["x" * 129, "%C3%A9t%C3%A9", "a%20b", "a;b", "a%00b"])
def test_an_invalid_job_id_in_the_path_is_a_json_4xx_never_a_500(client, job_id):
    """A job id the notifications would refuse: 404 on the job, its deliveries found as the text they carried
    (400 for what no delivery can carry: NUL), 400 naming $.job_id on PUT; never a 500."""
    response = client.get(f"/api/jobs/{job_id}")
    assert response.status_code == 404 and response.is_json
    response = client.get(f"/api/jobs/{job_id}/deliveries")
    expected = 400 if job_id == "a%00b" else 200
    assert response.status_code == expected and response.is_json, response.status_code
    response = client.put(f"/api/jobs/{job_id}", json=OWNER)
    assert response.status_code == 400
    assert response.get_json()["details"] == [{"path": "$.job_id", "message": "job_id invalide"}]


# --- ETag and 304


def routes(job_id):
    """Every read route and the PUT, as (method, path, keyword arguments of the client)."""
    return [
        ("GET", f"/api/jobs/{job_id}", {}),
        ("GET", "/api/jobs", {}),
        ("GET", f"/api/jobs/{job_id}/deliveries", {}),
        ("PUT", f"/api/jobs/{job_id}", {"json": OWNER}),
    ]


def test_every_answer_has_an_etag_and_a_matching_if_none_match_is_a_304_without_body(client):
    """GET one, the list, the deliveries and the PUT carry an ETag; the same ETag back on a GET gives 304."""
    job_id = new_id()
    notify(client, PROGRESS, job_id)
    for method, path, kwargs in routes(job_id):
        response = client.open(path, method=method, **kwargs)
        etag = response.headers.get("ETag")
        assert response.status_code in (200, 201) and etag, (method, path)
        if method == "GET":
            again = client.get(path, headers={"If-None-Match": etag})
            assert (again.status_code, again.data, again.headers["ETag"]) == (304, b"", etag), path


def test_a_new_notification_changes_the_etag_and_the_old_one_gets_a_200(client):
    """After a notification the job's ETag is another, and a client with the old one gets the new job."""
    job_id = new_id()
    notify(client, PROGRESS, job_id, progress=10)
    old = client.get(f"/api/jobs/{job_id}").headers["ETag"]
    notify(client, PROGRESS, job_id, progress=60)
    response = client.get(f"/api/jobs/{job_id}", headers={"If-None-Match": old})
    assert response.status_code == 200 and response.headers["ETag"] != old
    assert response.get_json()["progress"] == 60


# --- the list


def register_many(client, count, **owner):
    """`count` registered jobs, oldest first; return their ids."""
    ids = [new_id() for _ in range(count)]
    for job_id in ids:
        assert client.put(f"/api/jobs/{job_id}", json=owner).status_code == 201
    return ids


def all_pages(client, **query):
    """Every job of the list, following next_cursor (bounded), and the number of pages."""
    seen, pages, next_cursor = [], 0, None
    for pages in range(1, 1000):  # noqa: B007 (the count is returned)
        response = client.get("/api/jobs", query_string={**query, **({"cursor": next_cursor} if next_cursor else {})})
        assert response.status_code == 200, response.get_json()
        body = response.get_json()
        seen += [job["job_id"] for job in body["jobs"]]
        next_cursor = body["next_cursor"]
        if next_cursor is None:
            break
    return seen, pages


def test_the_list_is_newest_first_in_pages_that_end_with_a_null_cursor(client):
    """Jobs newest first; limit pages them; every job comes once and the last page's next_cursor is null."""
    ids = register_many(client, 7)
    seen, pages = all_pages(client, limit=3)
    assert seen == ids[::-1] and pages == 3
    last = client.get("/api/jobs", query_string={"limit": 7}).get_json()
    assert [job["job_id"] for job in last["jobs"]] == ids[::-1] and last["next_cursor"] is None


def test_jobs_created_in_the_same_microsecond_are_paged_by_id_none_skipped(client):
    """Ties on created_at (several hosts in one microsecond) are ordered by id: pages of 2 give each job once."""
    ids = register_many(client, 5)
    db = client.application.extensions[EXTENSION].db
    tie = "2025-10-21T16:45:00.000000+00:00"
    db.write(lambda c: c.execute(db.sql("UPDATE jobs SET created_at = :tie"), {"tie": tie}))
    seen, pages = all_pages(client, limit=2)
    assert seen == ids[::-1] and pages == 3


def test_the_limit_is_20_by_default_and_at_most_100(client):
    """Without limit a page has 20 jobs; limit=100 gives 100 of 101, then a last page of 1."""
    ids = register_many(client, 101)
    assert len(client.get("/api/jobs").get_json()["jobs"]) == 20
    first = client.get("/api/jobs", query_string={"limit": 100}).get_json()
    assert len(first["jobs"]) == 100 and first["next_cursor"]
    last = client.get("/api/jobs", query_string={"limit": 100, "cursor": first["next_cursor"]}).get_json()
    assert [job["job_id"] for job in last["jobs"]] == ids[:1] and last["next_cursor"] is None


def test_the_filters_select_by_status_owner_organization_and_creation_time(client):
    """status, user_id, organization_id and since (created at or after) each keep only their jobs, and combine."""
    alice = register_many(client, 2, user_id="alice", organization_id="acme")
    bob = register_many(client, 2, user_id="bob", organization_id="acme")
    carol = register_many(client, 1, user_id="carol", organization_id="other")
    notify(client, COMPLETED, alice[0])
    notify(client, FAILED, bob[1])
    notify(client, PROGRESS, carol[0])

    def ids(**query):
        return all_pages(client, limit=2, **query)[0]

    assert ids(user_id="alice") == alice[::-1]
    assert ids(organization_id="acme") == (alice + bob)[::-1]
    assert ids(status="completed") == [alice[0]]
    assert ids(status="pending") == [bob[0], alice[1]]
    assert ids(organization_id="acme", status="failed") == [bob[1]]
    assert ids(user_id="nobody") == []
    since = client.get(f"/api/jobs/{bob[0]}").get_json()["created_at"]  # ISO 8601 with +00:00
    assert ids(since=since) == (bob + carol)[::-1]
    assert ids(since=since, organization_id="acme") == bob[::-1]
    assert ids(since=since.replace("+00:00", "+01:00")) == (alice + bob + carol)[::-1]  # an hour earlier: all
    assert ids(since="2999-01-01T00:00:00Z") == []


@pytest.mark.parametrize(
    "since",
    [
        "2025-10-21T16:45:00Z",
        "2025-10-21T18:45:00+02:00",
        "2025-10-21T16:45:00.5Z",
        "2025-10-21t16:45:00Z",
        "2025-10-21T16:45:00z",
    ],
)
def test_since_takes_every_form_of_an_rfc_3339_date_time(client, since):
    """since accepts what RFC 3339 (and common.json's timestamp pattern) allows: offsets, fractions, t and z."""
    job_id = register_many(client, 1)[0]
    response = client.get("/api/jobs", query_string={"since": since})
    assert response.status_code == 200, response.get_data(as_text=True)[:300]
    assert job_id in [job["job_id"] for job in response.get_json()["jobs"]]


BAD_PARAMETERS = [
    ({"job": "x"}, "$.job"),
    ({"limit": "0"}, "$.limit"),
    ({"limit": "101"}, "$.limit"),
    ({"limit": "-1"}, "$.limit"),
    ({"limit": "x"}, "$.limit"),
    ({"limit": "1.5"}, "$.limit"),
    ({"limit": ""}, "$.limit"),
    ({"limit": "²"}, "$.limit"),  # a Unicode digit: str.isdigit() says yes, int() says no
    ({"limit": "1" * 5000}, "$.limit"),  # past Python's int() digit limit
    ({"since": "hier"}, "$.since"),
    ({"since": "2025-13-01T00:00:00Z"}, "$.since"),
    ({"since": ""}, "$.since"),
    ({"since": "9999-12-31T23:59:59-01:00"}, "$.since"),  # a valid RFC 3339 date-time past year 9999 in UTC
    ({"since": "0001-01-01T00:00:00+01:00"}, "$.since"),  # and before year 1
    ({"status": ""}, "$.status"),
    ({"user_id": ""}, "$.user_id"),
    ({"organization_id": ""}, "$.organization_id"),
    ({"user_id": "u" * 129}, "$.user_id"),
    ({"cursor": "!!!not-base64"}, "$.cursor"),
    ({"cursor": base64.urlsafe_b64encode(b"not json").decode()}, "$.cursor"),
    ({"cursor": base64.urlsafe_b64encode(b"\xff\xfe").decode()}, "$.cursor"),  # not UTF-8
    ({"cursor": cursor({"created_at": "2025-10-21T16:45:00+00:00", "id": 1})}, "$.cursor"),
    ({"cursor": cursor(["2025-10-21T16:45:00+00:00", 1, 2])}, "$.cursor"),
    ({"cursor": cursor(["not a date", 1])}, "$.cursor"),
    ({"cursor": cursor([1, 1])}, "$.cursor"),
    ({"cursor": cursor(["2025-10-21T16:45:00+00:00", True])}, "$.cursor"),
    ({"cursor": cursor(["2025-10-21T16:45:00+00:00", 1.5])}, "$.cursor"),
    ({"cursor": cursor(["2025-10-21T16:45:00+00:00", "1"])}, "$.cursor"),
    ({"cursor": cursor(["2025-10-21T16:45:00+00:00", 10**200])}, "$.cursor"),  # too long
    ({"cursor": cursor("x" * 300)}, "$.cursor"),
    ({"cursor": ""}, "$.cursor"),
    ({"cursor": "é"}, "$.cursor"),
]


@pytest.mark.parametrize("query, path", BAD_PARAMETERS, ids=[f"{p}-{i}" for i, (_, p) in enumerate(BAD_PARAMETERS)])
def test_a_bad_list_parameter_is_a_400_naming_it(client, query, path):
    """An unknown, malformed or out-of-range parameter of the list is 400 "Paramètre invalide" naming it."""
    response = client.get("/api/jobs", query_string=query)
    assert response.status_code == 400, response.get_data(as_text=True)[:300]
    body = response.get_json()
    assert body["error"] == "Paramètre invalide" and [d["path"] for d in body["details"]] == [path]


@pytest.mark.parametrize(
    "query, path",
    [
        ({"status": "done"}, "$.status"),  # not one of the statuses openapi.yaml lists
        ({"status": ["completed", "failed"]}, "$.status"),
        ({"user_id": ["alice", "bob"]}, "$.user_id"),
        ({"limit": ["5", "50"]}, "$.limit"),
    ],
    ids=["unknown status", "repeated status", "repeated user_id", "repeated limit"],
)
def test_an_unknown_status_or_a_repeated_parameter_is_a_400(client, query, path):
    """A status outside the enum, or a parameter given twice (which value would win?), is 400 naming it."""
    response = client.get("/api/jobs", query_string=query)
    assert response.status_code == 400, response.get_data(as_text=True)[:300]
    assert [d["path"] for d in response.get_json()["details"]] == [path]


@pytest.mark.parametrize("name", ["status", "user_id", "organization_id"])
def test_a_nul_character_in_a_filter_is_never_a_500(client, name):
    """A filter value holding U+0000 (PostgreSQL refuses it in text) is answered 200 or 400, never a 500."""
    response = client.get("/api/jobs", query_string={name: "a\x00b"})
    assert response.status_code in (200, 400) and response.is_json, response.get_data(as_text=True)[:300]


# --- registration


def test_a_new_registration_is_a_201_pending_job_and_a_known_one_a_200(client):
    """PUT on a new job creates it pending with no images (201); on a known job it answers 200."""
    job_id = new_id()
    created = client.put(f"/api/jobs/{job_id}", json=OWNER)
    job = created.get_json()
    assert created.status_code == 201 and list(JOB.iter_errors(job)) == []
    assert (job["status"], job["images"], job["metadata"], job["progress"]) == ("pending", None, None, None)
    assert {k: job[k] for k in OWNER} == OWNER
    assert client.put(f"/api/jobs/{job_id}", json=OWNER).status_code == 200
    other = new_id()
    notify(client, PROGRESS, other)
    assert client.put(f"/api/jobs/{other}", json=OWNER).status_code == 200


def test_the_same_registration_twice_is_the_same_job_with_the_same_etag(client):
    """PUT is idempotent: the second identical PUT answers the same job and the same ETag."""
    job_id = new_id()
    first, second = (client.put(f"/api/jobs/{job_id}", json=OWNER) for _ in range(2))
    assert first.get_json() == second.get_json() and first.headers["ETag"] == second.headers["ETag"]
    assert client.get(f"/api/jobs/{job_id}").headers["ETag"] == first.headers["ETag"]


def test_a_field_left_out_keeps_what_is_known(client):
    """A registration without a field keeps the value an earlier registration gave it."""
    job_id = new_id()
    client.put(f"/api/jobs/{job_id}", json={"user_id": "u-1"})
    client.put(f"/api/jobs/{job_id}", json={"organization_id": "o-1"})
    job = client.put(f"/api/jobs/{job_id}", json={}).get_json()
    assert (job["user_id"], job["organization_id"], job["prompt"]) == ("u-1", "o-1", None)


NOTIFICATIONS = {
    "progress": (PROGRESS, {}),
    "completed": (COMPLETED, {}),
    "failed": (FAILED, {}),
}
# the registration in every place among a progress and a terminal notification, for both terminal statuses
SEQUENCES = [
    order
    for terminal in ("completed", "failed")
    for order in itertools.permutations(("put", "progress", terminal))
    if order.index("progress") < order.index(terminal)
]
UNCHANGED = ("status", "progress", "message", "images", "metadata", "error_message", "completed_at")


@pytest.mark.parametrize("order", SEQUENCES, ids="-".join)
def test_registration_in_any_order_with_the_notifications_ends_in_one_row(client, order):
    """Before, between or after the notifications: one row with the owner, the notifications' status, images and
    metadata untouched (as for a job never registered), and the registration's prompt."""
    job_id, control = new_id(), new_id()
    for step in order:
        if step == "put":
            status = client.put(f"/api/jobs/{job_id}", json=OWNER).status_code
            assert status == (201 if order[0] == "put" else 200)
            continue
        template, changes = NOTIFICATIONS[step]
        notify(client, template, job_id, **changes)
        notify(client, template, control, **changes)
    job, alone = (client.get(f"/api/jobs/{i}").get_json() for i in (job_id, control))
    assert {k: job[k] for k in UNCHANGED} == {k: alone[k] for k in UNCHANGED}
    assert {k: job[k] for k in OWNER} == OWNER
    listed = client.get("/api/jobs", query_string={"user_id": OWNER["user_id"]}).get_json()["jobs"]
    assert [j["job_id"] for j in listed if j["job_id"] == job_id] == [job_id]


@pytest.mark.parametrize(
    "steps, prompt",
    [
        (["put", "completed"], OWNER["prompt"]),
        (["completed", "put"], OWNER["prompt"]),
        (["put-without-prompt", "completed"], DESCRIPTION),
        (["completed", "put-without-prompt"], DESCRIPTION),
        (["completed"], DESCRIPTION),
        (["put", "failed", "completed"], OWNER["prompt"]),  # a completed replacing a failed
        (["failed", "completed", "put"], OWNER["prompt"]),
        (["put", "failed"], OWNER["prompt"]),
        (["failed"], None),
    ],
)
def test_the_registration_prompt_wins_over_the_first_image_description(client, steps, prompt):
    """The first image's description fills prompt only when no registration gave one, in either order."""
    job_id = new_id()
    without_prompt = {k: v for k, v in OWNER.items() if k != "prompt"}
    for step in steps:
        if step.startswith("put"):
            client.put(f"/api/jobs/{job_id}", json=OWNER if step == "put" else without_prompt)
        else:
            notify(client, NOTIFICATIONS[step][0], job_id)
    assert client.get(f"/api/jobs/{job_id}").get_json()["prompt"] == prompt


BAD_BODIES = [
    ("array", json.dumps([OWNER]), "$"),
    ("string", json.dumps("user-1"), "$"),
    ("null", "null", "$"),
    ("unknown field", json.dumps({**OWNER, "status": "completed"}), "$"),
    ("non-string user_id", json.dumps({"user_id": 42}), "$.user_id"),
    ("null organization_id", json.dumps({"organization_id": None}), "$.organization_id"),
    ("list prompt", json.dumps({"prompt": ["a"]}), "$.prompt"),
    ("user_id too long", json.dumps({"user_id": "u" * 129}), "$.user_id"),
    ("prompt too long", json.dumps({"prompt": "p" * 4001}), "$.prompt"),
    ("empty user_id", json.dumps({"user_id": ""}), "$.user_id"),
    ("empty prompt", json.dumps({"prompt": ""}), "$.prompt"),
    ("invalid JSON", '{"user_id": ', "$"),
    ("empty body", "", "$"),
    ("duplicate key", '{"user_id": "a", "user_id": "b"}', "$"),
    ("NaN", '{"user_id": NaN}', "$"),
]


@pytest.mark.parametrize("body, path", [case[1:] for case in BAD_BODIES], ids=[case[0] for case in BAD_BODIES])
def test_a_bad_registration_body_is_a_400_naming_the_problem(client, body, path):
    """A body that is not a JSON object of bounded, non-empty strings is 400 with details; nothing is created."""
    job_id = new_id()
    response = client.put(f"/api/jobs/{job_id}", data=body, content_type="application/json")
    assert response.status_code == 400, response.get_data(as_text=True)[:300]
    assert path in [detail["path"] for detail in response.get_json()["details"]]
    assert client.get(f"/api/jobs/{job_id}").status_code == 404


@pytest.mark.parametrize("content_type", [None, "text/plain", "application/x-www-form-urlencoded"])
def test_a_registration_that_is_not_json_is_a_415(client, content_type):
    """A PUT whose Content-Type is not application/json is 415 JSON."""
    response = client.put(f"/api/jobs/{new_id()}", data=json.dumps(OWNER), content_type=content_type)
    assert response.status_code == 415 and response.is_json


def test_a_nul_character_in_a_registration_is_never_a_500(client):
    """An owner holding U+0000 (PostgreSQL refuses it in text) is refused with a 400 or stored, never a 500."""
    response = client.put(f"/api/jobs/{new_id()}", json={"user_id": "a\x00b"})
    assert response.status_code in (200, 201, 400) and response.is_json, response.get_data(as_text=True)[:300]


# --- deliveries


def test_the_deliveries_are_newest_first_with_the_raw_bodies_only_when_asked(client):
    """A job's deliveries newest first with what the service answered; include=body adds each raw body."""
    job_id = new_id()
    sent = [json.dumps(payload(t, job_id), ensure_ascii=False) for t in (PROGRESS, COMPLETED, COMPLETED)]
    for body in sent:
        assert client.post(URL, data=body.encode(), content_type="application/json").status_code == 200
    flush(client)
    plain = client.get(f"/api/jobs/{job_id}/deliveries").get_json()["deliveries"]
    assert [d["outcome"] for d in plain] == ["duplicate", "processed", "progress"]
    assert [d["received_at"] for d in plain] == sorted((d["received_at"] for d in plain), reverse=True)
    assert all("body" not in d and d["response_status"] == 200 and d["job_id"] == job_id for d in plain)
    assert json.loads(plain[1]["response_body"])["images_count"] == 1
    full = client.get(f"/api/jobs/{job_id}/deliveries", query_string={"include": "body"}).get_json()["deliveries"]
    assert [d["body"] for d in full] == sent[::-1]
    assert client.get(f"/api/jobs/{new_id()}/deliveries").get_json() == {"deliveries": [], "next_cursor": None}


@pytest.mark.parametrize(
    "query",
    [
        {"include": "bodies"},
        {"include": ""},
        {"limit": "0"},
        {"limit": "101"},
        {"cursor": "0"},
        {"cursor": "x"},
        {"cursor": "9" * 19},
        {"include": "body", "x": "1"},
    ],
)
def test_a_bad_deliveries_parameter_is_a_400(client, query):
    """Only include=body, a limit of 1 to 100 and a next_cursor are accepted on the deliveries: anything else is
    400 "Paramètre invalide"."""
    response = client.get(f"/api/jobs/{new_id()}/deliveries", query_string=query)
    assert response.status_code == 400 and response.get_json()["error"] == "Paramètre invalide"


def keep(db, job_id, bodies):
    """Keep one processed delivery (its body kept whole) per body of `bodies`, as the recorder writes them."""
    for raw in bodies:
        delivery = Delivery(client_address="192.0.2.1", raw=raw, job_id=job_id, status="completed")
        db.write(
            lambda connection, d=delivery: deliveries.insert(
                db, connection, d, outcome="processed", status=200, answer="{}"
            )
        )


def read_pages(client, job_id, **query):
    """Every page of a job's deliveries, following next_cursor: [(answer size in bytes, ids)]."""
    pages, cursor = [], None
    while True:
        answer = client.get(
            f"/api/jobs/{job_id}/deliveries", query_string={**query, **({"cursor": cursor} if cursor else {})}
        )
        assert answer.status_code == 200, answer.get_data(as_text=True)[:300]
        found = answer.get_json()
        pages.append((len(answer.data), [d["id"] for d in found["deliveries"]], found["deliveries"]))
        cursor = found["next_cursor"]
        if cursor is None:
            return pages


def test_large_deliveries_come_in_pages_of_at_most_8_mib(client):
    """A job of 40 deliveries of 1 MB (half of them backslashes, whose JSON is twice as long): include=body answers
    pages of at most 8 MiB, and the pages together give every delivery once, newest first, its body whole."""
    db, job_id = client.application.extensions[EXTENSION].db, new_id()
    bodies = [(b"\\" if n % 2 else b"a") * 1_000_000 for n in range(40)]
    keep(db, job_id, bodies)
    stored = [row["id"] for row in deliveries.page(db, job_id, limit=100, before=None, include_body=False)[0]]
    pages = read_pages(client, job_id, include="body")
    assert len(pages) > 5 and all(size <= 8 * 1024 * 1024 and ids for size, ids, _ in pages)
    assert [i for _, ids, _ in pages for i in ids] == stored and len(stored) == 40
    shown = [d["body"] for _, _, found in pages for d in found]
    assert shown == [raw.decode() for raw in reversed(bodies)]


def test_deliveries_come_in_keyset_pages_of_limit(client):
    """Without bodies, limit deliveries a page, newest first, next_cursor to the older ones: none repeated or
    skipped, and a delivery arriving meanwhile does not shift the pages."""
    db, job_id = client.application.extensions[EXTENSION].db, new_id()
    keep(db, job_id, [b"{}"] * 7)
    first = client.get(f"/api/jobs/{job_id}/deliveries", query_string={"limit": 3}).get_json()
    keep(db, job_id, [b"{}"])  # newer: on the first page only
    rest = read_pages(client, job_id, limit=3, cursor=first["next_cursor"])
    ids = [d["id"] for d in first["deliveries"]] + [i for _, page_ids, _ in rest for i in page_ids]
    assert ids == sorted(ids, reverse=True) and len(ids) == len(set(ids)) == 7
    assert [len(page_ids) for _, page_ids, _ in rest] == [3, 1]


# --- the stateless mode


@pytest.mark.stateless
def test_without_a_database_the_api_answers_a_json_404(client):
    """With DATABASE_URL empty every API route answers 404 JSON saying a database is needed."""
    for method, path, kwargs in routes(new_id()):
        response = client.open(path, method=method, **kwargs)
        assert response.status_code == 404, (method, path)
        assert response.get_json()["error"] == "Not Found" and "DATABASE_URL" in response.get_json()["message"]


# --- authentication

TOKEN_A, TOKEN_B = "read-token-a-0123456789abcdefghijkl", "read-token-b-0123456789abcdefghijkl"
CONFIGS = {
    "development, no tokens": {"APP_ENV": "development"},
    "development, tokens": {"APP_ENV": "development", "JOBS_API_TOKENS": f"{TOKEN_A},{TOKEN_B}"},
    "production, tokens": {
        "APP_ENV": "production",
        "WEBHOOK_SECRET": SECRET,
        "JOBS_API_TOKENS": f"{TOKEN_A},{TOKEN_B}",
    },
    "production, no tokens": {"APP_ENV": "production", "WEBHOOK_SECRET": SECRET},
}
# credential: (headers, opens the API once JOBS_API_TOKENS is set)
CREDENTIALS = {
    "none": ({}, False),
    "wrong token": ({"Authorization": "Bearer wrong"}, False),
    "token a": ({"Authorization": f"Bearer {TOKEN_A}"}, True),
    "token b (rotation)": ({"Authorization": f"Bearer {TOKEN_B}"}, True),
    "scheme in lower case": ({"Authorization": f"bearer {TOKEN_A}"}, True),
    "Bearer without a token": ({"Authorization": "Bearer"}, False),
    "Bearer and a space": ({"Authorization": "Bearer "}, False),
    "another scheme": ({"Authorization": f"Basic {TOKEN_A}"}, False),
    "token without a scheme": ({"Authorization": TOKEN_A}, False),
    "a prefix of token a": ({"Authorization": f"Bearer {TOKEN_A[:-1]}"}, False),
    "token a and more": ({"Authorization": f"Bearer {TOKEN_A}x"}, False),
    "both tokens": ({"Authorization": f"Bearer {TOKEN_A},{TOKEN_B}"}, False),
    "webhook secret as a token": ({"Authorization": f"Bearer {SECRET}"}, False),
    "webhook secret header": ({"X-Webhook-Secret": SECRET}, False),
}


def opens(config, credential):
    """The documented rule: open in development without tokens, closed in production without tokens, else
    only a configured token opens."""
    if "no tokens" in config:
        return config.startswith("development")
    return CREDENTIALS[credential][1]


def answers(client, headers, job_id):
    """{route: (status, whether a 401 is the documented JSON with a Bearer challenge)} for one credential."""
    seen = {}
    for method, path, kwargs in routes(job_id):
        response = client.open(path, method=method, headers=headers, **kwargs)
        challenge = response.get_json() == {"error": "Unauthorized"} and "Bearer" in response.headers.get(
            "WWW-Authenticate", ""
        )
        seen[f"{method} {path.replace(job_id, '<id>')}"] = (response.status_code, challenge)
    return seen


@pytest.mark.parametrize("config", CONFIGS)
def test_the_authentication_matrix_on_every_route(make_app, config):
    """Every credential of the table on every route answers as the issue's rule says for this configuration: 200,
    or 401 JSON {"error": "Unauthorized"} with a Bearer challenge."""
    client = make_app(**CONFIGS[config]).test_client()
    job_id = new_id()
    notify(client, PROGRESS, job_id, headers={"X-Webhook-Secret": SECRET})
    actual, expected = {}, {}
    for credential, (headers, _) in CREDENTIALS.items():
        for route, seen in answers(client, headers, job_id).items():
            actual[credential, route] = seen
            expected[credential, route] = (200, False) if opens(config, credential) else (401, True)
    assert actual == expected


def test_in_production_without_tokens_the_api_is_closed_the_webhook_works_and_a_warning_says_so(make_app):
    """Production without JOBS_API_TOKENS: every API call is 401, the webhook still answers 200, and the
    start-up warnings (gunicorn's master logs them, server/master.py) name JOBS_API_TOKENS."""
    app = make_app(**CONFIGS["production, no tokens"])
    client = app.test_client()
    warnings = startup_warnings(app.extensions[EXTENSION].settings)
    assert any("JOBS_API_TOKENS" in warning for warning in warnings), warnings
    job_id = new_id()
    notify(client, COMPLETED, job_id, headers={"X-Webhook-Secret": SECRET})
    for method, path, kwargs in routes(job_id):
        assert client.open(path, method=method, **kwargs).status_code == 401, (method, path)


@pytest.mark.parametrize(
    "headers",
    [
        {"X-Webhook-Secret": TOKEN_A},
        {"Authorization": f"Bearer {TOKEN_A}"},
        {"Authorization": f"Bearer {SECRET}"},
    ],
    ids=["token as the secret header", "token as a Bearer", "secret as a Bearer"],
)
def test_a_read_token_never_opens_the_webhook_in_production(make_app, headers):
    """In production the webhook wants its own secret: a read token, however sent, is 401 and nothing is recorded."""
    client = make_app(**CONFIGS["production, tokens"]).test_client()
    job_id = new_id()
    response = client.post(URL, json=payload(COMPLETED, job_id), headers=headers)
    assert response.status_code == 401 and response.get_json() == {"error": "Unauthorized"}
    read = client.get(f"/api/jobs/{job_id}", headers={"Authorization": f"Bearer {TOKEN_A}"})
    assert read.status_code == 404


@pytest.mark.memory_only
def test_an_unexpected_error_of_the_api_or_the_page_is_worded_as_theirs(make_app, sqlite_template, tmp_path):
    """A 500 of the read API or the page says "de la requête", not the webhook's sentence (its own, kept). The
    error: a row SQLite lets hold text that is not JSON (PostgreSQL's jsonb refuses it)."""
    import shutil

    from image_webhook.service import EXTENSION
    from tests.payloads import COMPLETED, URL, payload

    shutil.copy(sqlite_template, tmp_path / "broken.sqlite3")
    app = make_app(DATABASE_URL=f"sqlite:///{tmp_path / 'broken.sqlite3'}")
    client = app.test_client()
    client.post(URL, json=payload(COMPLETED, "job-broken"))
    db = app.extensions[EXTENSION].db
    db.write(lambda c: c.execute(db.sql("UPDATE jobs SET images = 'not json' WHERE job_id = 'job-broken'")))
    for path in ("/api/jobs/job-broken", "/jobs.json"):
        answer = client.get(path)
        assert answer.status_code == 500 and answer.is_json, path
        assert answer.get_json()["message"] == "Erreur inattendue pendant le traitement de la requête", path
