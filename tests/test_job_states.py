"""A job's state on SQLite and PostgreSQL: every order of its notifications, the progress bar, the deliveries."""

import itertools
import json
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest

from image_webhook.service import EXTENSION
from image_webhook.storage.database import deliveries, jobs
from tests.payloads import COMPLETED, FAILED, PROGRESS, URL, payload
from tests.servers import eventually

pytestmark = pytest.mark.database

DUPLICATE = {"success": True, "message": "Job déjà traité"}
RANK = {"initializing": 1, "generating": 2}  # the progress statuses sent here; terminal ones rank above
# the four notifications of the table: a progress, the two terminal ones, and a late progress
NOTIFICATIONS = {
    "generating": (PROGRESS, {"status": "generating", "progress": 50, "message": "Génération en cours..."}),
    "completed": (COMPLETED, {}),
    "failed": (FAILED, {}),
    "initializing": (PROGRESS, {"status": "initializing", "progress": 10, "message": "Initialisation..."}),
}
# every order of every non-empty subset: 4 + 12 + 24 + 24 = 64 sequences, the 24 orders of all four among them
ORDERS = [order for size in range(1, 5) for order in itertools.permutations(NOTIFICATIONS, size)]


def notification(name, job_id, **changes):
    template, base = NOTIFICATIONS[name]
    return payload(template, job_id, **{**base, **changes})


def expect(order):
    """The documented outcome of each notification of `order`, and the job's final status and progress.

    A terminal notification is processed the first time, and a completed after a failed replaces it; any
    other terminal one is a duplicate. A progress moves the job forward only: a lower status, or the same
    status without a higher progress, is stale (acknowledged, changes nothing)."""
    status = progress = None
    outcomes = []
    for name in order:
        body = NOTIFICATIONS[name][1]
        if name in ("completed", "failed"):
            if status is None or status in RANK or (status == "failed" and name == "completed"):
                outcomes.append("processed")
                status = name
                progress = 100 if name == "completed" else progress
            else:
                outcomes.append("duplicate")
        elif status is None or RANK.get(status, 9) < RANK[name]:
            outcomes.append("progress")
            status, progress = name, body["progress"]
        else:
            outcomes.append("stale")
    return outcomes, status, progress


def answer_of(name, outcome, job_id):
    """The documented answer of a notification, but for processing_time_ms."""
    if outcome == "duplicate":
        return DUPLICATE
    if outcome in ("progress", "stale"):
        return {"success": True, "message": f"Statut intermédiaire reçu: {name}", "job_id": job_id, "status": name}
    if name == "failed":
        return {"success": True, "message": "Échec de la génération enregistré", "job_id": job_id}
    return {"success": True, "message": "1 image(s) générée(s) avec succès", "job_id": job_id, "images_count": 1}


def flush(db):
    """Wait until every queued write is committed: the writer takes them in order, and the fast path's
    duplicates are queued without waiting."""
    db.write(lambda connection: None)


def test_the_rule_of_the_table_is_the_documented_one():
    """The table's model gives the issue's rules on the sequences it names (a check of the test itself)."""
    assert expect(("failed", "completed")) == (["processed", "processed"], "completed", 100)
    assert expect(("completed", "failed")) == (["processed", "duplicate"], "completed", 100)
    assert expect(("generating", "initializing")) == (["progress", "stale"], "generating", 50)
    assert expect(("generating", "failed")) == (["progress", "processed"], "failed", 50)
    assert expect(("completed", "generating")) == (["processed", "stale"], "completed", 100)
    assert len(ORDERS) == 64 and sum(len(order) == 4 for order in ORDERS) == 24
    for order in ORDERS:  # the final status: completed if one arrived, else failed, else the furthest progress
        furthest = max((name for name in order if name in RANK), key=RANK.get, default=None)
        assert expect(order)[1] == (
            "completed" if "completed" in order else "failed" if "failed" in order else furthest
        )


def test_every_order_of_the_notifications_ends_in_the_documented_state(app):
    """Each of the 64 orders (the 24 of all four notifications among them) gets the documented answer to each
    notification, the documented final status and progress, the counts, and its deliveries newest first."""
    client, db = app.test_client(), app.extensions[EXTENSION].db
    cases = {f"order-{uuid.uuid4().hex[:8]}-{'-'.join(order)}": order for order in ORDERS}
    wrong = []
    for job_id, order in cases.items():
        outcomes, _, _ = expect(order)
        for name, outcome in zip(order, outcomes, strict=True):
            response = client.post(URL, json=notification(name, job_id))
            body = response.get_json()
            body.pop("processing_time_ms", None)
            if response.status_code != 200 or body != answer_of(name, outcome, job_id):
                wrong.append((order, name, response.status_code, body))
    assert wrong == []
    flush(db)
    for job_id, order in cases.items():
        outcomes, status, progress = expect(order)
        row = jobs.find(db, job_id)
        assert (row["status"], row["progress"]) == (status, progress), order
        assert (row["deliveries"], row["duplicates"]) == (len(order), outcomes.count("duplicate")), order
        if status == "completed":
            assert row["images"] == COMPLETED["data"]["images"] and row["error_message"] is None, order
            assert row["prompt"] == "Un chat astronaute dans l'espace", order
        elif status == "failed":
            assert row["images"] is None and row["error_message"] == FAILED["error_message"], order
        listed = deliveries.for_job(db, job_id)
        assert [(d["status"], d["outcome"], d["response_status"]) for d in listed] == [
            (name, outcome, 200) for name, outcome in reversed(list(zip(order, outcomes, strict=True)))
        ], order


def test_a_completed_after_a_failed_keeps_no_trace_of_the_failure(client, app):
    """A completed that replaces a failed leaves a completed job: no error message, nor the failure's message."""
    job_id = f"retried-{uuid.uuid4().hex}"
    client.post(URL, json=notification("failed", job_id))
    assert client.post(URL, json=notification("completed", job_id)).get_json()["images_count"] == 1
    row = jobs.find(app.extensions[EXTENSION].db, job_id)
    assert (row["status"], row["error_message"]) == ("completed", None)
    assert row["message"] != FAILED["message"], "the row of a completed job still says the generation failed"


def test_within_one_status_only_a_higher_progress_moves_the_bar(client, app):
    """generating 50 then 70 moves the bar to 70; then 30, 70 again or no progress at all change nothing."""
    db, job_id = app.extensions[EXTENSION].db, f"bar-{uuid.uuid4().hex}"
    steps = [(50, "Génération en cours...", "progress"), (70, "Presque fini", "progress")]
    steps += [(30, "en arrière", "stale"), (70, "encore 70", "stale"), (None, "sans progression", "stale")]
    for progress, message, outcome in steps:
        changes = {"progress": progress, "message": message} if progress is not None else {"message": message}
        body = notification("generating", job_id, **changes)
        if progress is None:
            del body["progress"]
        assert client.post(URL, json=body).get_json() == answer_of("generating", outcome, job_id)
    row = jobs.find(db, job_id)
    assert (row["status"], row["progress"], row["message"]) == ("generating", 70, "Presque fini")
    assert [d["outcome"] for d in deliveries.for_job(db, job_id)] == ["stale", "stale", "stale", "progress", "progress"]


def test_a_failed_after_a_completed_changes_nothing_and_is_logged(make_app, logs):
    """A failed after a completed is 'Job déjà traité', logged ⚠️ and changes nothing, whether the worker that
    completed it answers (its fast path) or another one (the database decides, with its dedicated ⚠️ line)."""
    first = make_app()
    other = make_app()  # another worker on the same database, which never saw the job
    db, job_id = first.extensions[EXTENSION].db, f"late-failure-{uuid.uuid4().hex}"
    assert first.test_client().post(URL, json=notification("completed", job_id)).get_json()["images_count"] == 1
    for app, request_id in ((first, "same-worker"), (other, "other-worker")):
        logs.clear()
        response = app.test_client().post(
            URL, json=notification("failed", job_id), headers={"X-Request-ID": request_id}
        )
        assert response.get_json() == DUPLICATE
        warnings = [r.getMessage() for r in logs.records if r.levelname == "WARNING"]
        assert any(message.startswith("⚠️") and job_id in message for message in warnings), warnings
    assert any("Échec reçu après la réussite du job (ignoré)" in message for message in warnings), warnings
    flush(db)
    row = jobs.find(db, job_id)
    assert (row["status"], row["error_message"], row["deliveries"], row["duplicates"]) == ("completed", None, 3, 2)
    assert [d["outcome"] for d in deliveries.for_job(db, job_id)] == ["duplicate", "duplicate", "processed"]


def test_first_deliveries_racing_on_several_workers_process_the_job_once(make_app):
    """8 simultaneous first deliveries of a job on 4 workers (each app its own writer and connection, one
    database), for 20 jobs: each job is processed exactly once, the 7 others are 'Job déjà traité'."""
    apps = [make_app() for _ in range(4)]
    job_ids = [f"race-{uuid.uuid4().hex}" for _ in range(20)]
    counts = {}
    for job_id in job_ids:
        barrier = threading.Barrier(8)

        def deliver(i, job_id=job_id, barrier=barrier):
            barrier.wait(timeout=10)
            return apps[i % 4].test_client().post(URL, json=notification("completed", job_id)).get_json()

        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(deliver, range(8)))
        counts[job_id] = (sum("images_count" in a for a in answers), answers.count(DUPLICATE))
    assert counts == dict.fromkeys(job_ids, (1, 7))
    for app in apps:
        flush(app.extensions[EXTENSION].db)
    db = apps[0].extensions[EXTENSION].db
    assert {job_id: jobs.find(db, job_id)["deliveries"] for job_id in job_ids} == dict.fromkeys(job_ids, 8)


def test_a_large_refused_body_is_kept_cut_with_its_size(client, app):
    """A refused delivery keeps the first 64 KiB of its body and says how large it was; a processed one is whole."""
    job_id = f"large-{uuid.uuid4().hex[:8]}"
    refused = json.dumps(payload(FAILED, job_id, message="x" * 300_000)).encode()  # over the schema's bound
    assert client.post(URL, data=refused, content_type="application/json").status_code == 400
    db = app.extensions[EXTENSION].db
    flush(db)
    (delivery,) = deliveries.for_job(db, job_id, include_body=True)
    assert delivery["outcome"] == "rejected" and len(delivery["body"].encode()) == 64 * 1024
    assert f"corps de {len(refused)} octets, 65536 gardés" in delivery["reason"]


def test_a_signed_message_replayed_to_another_worker_is_a_duplicate(make_app):
    """A signed progress message handled by one worker, replayed to another (its own memory store), is
    "Job déjà traité" there: the database knows the webhook-id; a new message id for the job is handled."""
    from tests.test_signatures import KEY_A, signed_headers

    first, second = (make_app(WEBHOOK_SIGNING_SECRET=KEY_A).test_client() for _ in range(2))
    body = json.dumps(payload(PROGRESS, f"replay-{uuid.uuid4().hex[:8]}")).encode()
    headers = signed_headers(body, message_id="msg_replayed_elsewhere")
    assert first.post(URL, data=body, headers=headers).get_json()["status"] == "generating"
    assert second.post(URL, data=body, headers=headers).get_json() == DUPLICATE
    other = signed_headers(body, message_id="msg_another")
    assert second.post(URL, data=body, headers=other).get_json()["status"] == "generating"


def test_a_replay_caught_by_its_worker_is_kept_as_a_duplicate(make_app):
    """A signed message replayed to the worker that handled it is kept like one another worker's database
    catches: outcome duplicate, answered 200 "Job déjà traité"; the job is processed once."""
    from tests.test_signatures import KEY_A, signed_headers

    app = make_app(APP_ENV="production", WEBHOOK_SIGNING_SECRET=KEY_A)
    client, db = app.test_client(), app.extensions[EXTENSION].db
    job_id, message_id = f"replayed-{uuid.uuid4().hex}", f"msg_{uuid.uuid4().hex}"
    body = json.dumps(payload(COMPLETED, job_id)).encode()
    for _ in range(2):
        headers = {**signed_headers(body, message_id=message_id), "Content-Type": "application/json"}
        assert client.post(URL, data=body, headers=headers).status_code == 200

    def kept():
        return db.read(
            lambda connection: [
                (row["outcome"], row["reason"], row["response_status"])
                for row in connection.execute(
                    db.sql(
                        "SELECT outcome, reason, response_status FROM deliveries WHERE message_id = :id ORDER BY id"
                    ),
                    {"id": message_id},
                ).fetchall()
            ]
        )

    assert eventually(lambda: len(kept()), 2) == 2  # the replay's row is written in the next group commit
    assert kept() == [("processed", None, 200), ("duplicate", None, 200)]
    assert jobs.find(db, job_id)["deliveries"] == 1
