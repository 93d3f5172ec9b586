"""The operators' commands (`flask --app app db|jobs ...`) through click's runner, and once as the real command."""

import json
import os
import re
import shutil
import subprocess
import sys
import uuid

import click
import pytest
from click.testing import CliRunner
from flask.cli import FlaskGroup

from image_webhook import create_app
from image_webhook.service import EXTENSION
from image_webhook.storage.database import jobs
from image_webhook.surfaces import commands
from tests.payloads import COMPLETED, FAILED, PROGRESS, URL, payload
from tests.servers import ROOT, SERVICE_VARIABLES

JOB = COMPLETED["job_id"]
OLD = "2020-01-01T00:00:00.000000+00:00"
NO_SECRET = "Configuration invalide: WEBHOOK_SECRET is required when APP_ENV is production (WEBHOOK_AUTH=secret)"


@pytest.fixture
def run(make_app):
    """Run one command as `flask --app app` does: in an app of its own, which the command stops."""

    def invoke(*args, **config):
        return make_app(**config).test_cli_runner().invoke(args=list(args))

    return invoke


@pytest.fixture
def posted(make_app):
    """Three jobs (completed with a progress and a duplicate, failed, generating) and a refused delivery,
    committed; returns a database to read them back with."""
    app = make_app()
    client = app.test_client()
    for body in (PROGRESS, COMPLETED, COMPLETED, payload(FAILED, "job-failed"), payload(PROGRESS, "job-generating")):
        assert client.post(URL, json=body).status_code == 200
    assert client.post(URL, json={"job_id": "job-refused", "status": "completed"}).status_code == 400
    app.extensions[EXTENSION].stop()  # commits what the fast path queued (the duplicate's delivery)
    return make_app().extensions[EXTENSION].db


@pytest.mark.database
def test_show_prints_the_job_and_its_deliveries(run, posted):
    """`jobs show` prints the job as the read API serializes it and its deliveries newest first, as JSON."""
    result = run("jobs", "show", JOB)
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["job"] == jobs.find(posted, JOB)
    assert document["job"]["status"] == "completed" and document["job"]["images"] == COMPLETED["data"]["images"]
    assert [d["outcome"] for d in document["deliveries"]] == ["duplicate", "processed", "progress"]
    assert all("body" not in delivery for delivery in document["deliveries"])
    assert "générée(s)" in result.stdout  # UTF-8, not \u escapes


@pytest.mark.database
def test_show_with_body_includes_the_raw_bodies(run, posted):
    """`jobs show --body` adds each delivery's body exactly as it arrived."""
    result = run("jobs", "show", JOB, "--body")
    assert result.exit_code == 0, result.output
    bodies = [json.loads(delivery["body"]) for delivery in json.loads(result.stdout)["deliveries"]]
    assert bodies == [COMPLETED, COMPLETED, PROGRESS]


@pytest.mark.database
def test_show_of_an_unknown_job_exits_1(run, posted):
    """A job never recorded: a message on stderr, nothing on stdout, exit 1."""
    result = run("jobs", "show", "no-such-job")
    assert result.exit_code == 1
    assert result.stderr.strip() == "Job inconnu: no-such-job"
    assert result.stdout == ""


@pytest.mark.database
def test_show_of_a_refused_job_prints_its_deliveries_and_exits_1(run, posted):
    """A job whose only delivery was refused is not recorded (exit 1), but that delivery is printed."""
    result = run("jobs", "show", "job-refused")
    assert result.exit_code == 1
    assert "Job inconnu: job-refused (1 livraison(s) à ce nom)" in result.stderr
    document = json.loads(result.stdout)
    assert document["job"] is None
    assert [(d["outcome"], d["response_status"]) for d in document["deliveries"]] == [("rejected", 400)]


@pytest.mark.database
def test_list_prints_one_line_per_job_newest_first(run, posted):
    """`jobs list` prints a header and one aligned line per job, newest first, with its counters."""
    result = run("jobs", "list")
    assert result.exit_code == 0, result.output
    header, *lines = result.stdout.splitlines()
    assert header.split() == ["job_id", "status", "progress", "created_at", "deliveries", "duplicates"]
    rows = [line.split() for line in lines]
    assert [row[:3] for row in rows] == [
        ["job-generating", "generating", "50"],
        ["job-failed", "failed", "-"],
        [JOB, "completed", "100"],
    ]
    assert rows[2][4:] == ["3", "1"]  # three deliveries, one of them a duplicate
    assert len({line.index(row[3]) for line, row in zip(lines, rows, strict=True)}) == 1  # the columns are aligned


@pytest.mark.database
def test_list_filters_limits_and_prints_json(run, posted):
    """`--status` keeps one status, `--limit` the newest N, and `--json` prints the serialized jobs."""
    assert [line.split()[0] for line in run("jobs", "list", "--status", "failed").stdout.splitlines()[1:]] == [
        "job-failed"
    ]
    assert run("jobs", "list", "--status", "saving").stdout.strip() == "Aucun job"
    listed = json.loads(run("jobs", "list", "--json", "--limit", "2").stdout)
    assert [job["job_id"] for job in listed] == ["job-generating", "job-failed"]
    assert listed[1] == jobs.find(posted, "job-failed")
    assert run("jobs", "list", "--status", "done").exit_code == 2  # click refuses an unknown status


def insert_old(db, job_id, at):
    """A job and one of its deliveries, as if they had arrived at `at`."""

    def op(connection):
        connection.execute(
            db.sql("""INSERT INTO jobs (job_id, status, created_at, updated_at, deliveries, duplicates)
            VALUES (:job_id, 'completed', :at, :at, 1, 0)"""),
            {"job_id": job_id, "at": at},
        )
        connection.execute(
            db.sql("""INSERT INTO deliveries (job_id, status, received_at, outcome, response_status)
            VALUES (:job_id, 'completed', :at, 'processed', 200)"""),
            {"job_id": job_id, "at": at},
        )

    db.write(op)


@pytest.mark.database
def test_purge_deletes_what_is_past_the_retention(run, posted):
    """`jobs purge` deletes the deliveries and jobs older than the configured retention, or the given days."""
    insert_old(posted, "job-old", OLD)
    result = run("jobs", "purge", DELIVERY_RETENTION_DAYS=7, JOB_RETENTION_DAYS=36500)
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        "1 livraison(s) de plus de 7 jour(s) supprimée(s)",
        "0 job(s) de plus de 36500 jour(s) supprimé(s)",
        "0 corps de progression de plus de 1 jour(s) effacé(s)",
    ]
    assert jobs.find(posted, "job-old") is not None
    result = run("jobs", "purge", "--jobs-days", "30")
    assert result.stdout.splitlines()[1] == "1 job(s) de plus de 30 jour(s) supprimé(s)"
    assert jobs.find(posted, "job-old") is None
    assert len(jobs.page(posted, {}, limit=20, after=None)[0]) == 3  # today's jobs stay


@pytest.mark.database
def test_db_upgrade_is_idempotent(run, posted):
    """`db upgrade` on a migrated database applies nothing, says so, and keeps the rows; nothing is pending."""
    result = run("db", "upgrade")
    assert (result.exit_code, result.stdout) == (0, "Base de données à jour\n")
    assert run("db", "pending").stdout == "Base de données à jour\n"
    assert len(jobs.page(posted, {}, limit=20, after=None)[0]) == 3


@pytest.mark.database
def test_db_upgrade_migrates_a_new_database(run, backend, request, tmp_path):
    """On a new database, the jobs commands ask for the migrations and `db upgrade` applies them."""
    if backend == "sqlite":
        url = f"sqlite:///{tmp_path / 'new' / 'jobs.sqlite3'}"
    else:
        url = request.getfixturevalue("postgres").create_database(f"new_{uuid.uuid4().hex}")
    result = run("jobs", "list", DATABASE_URL=url)
    revisions = "0001, 0002, 0003, 0004, 0005"
    assert result.exit_code == 1
    assert result.stderr == f"Base de données non migrée ({revisions} en attente): lancez make migrate\n"
    assert run("db", "pending", DATABASE_URL=url).stdout.split() == revisions.split(", ")
    assert run("db", "upgrade", DATABASE_URL=url).stdout == f"Migration(s) appliquée(s): {revisions}\n"
    assert run("jobs", "list", DATABASE_URL=url).stdout == "Aucun job\n"


@pytest.mark.database
def test_a_command_stops_the_service(make_app):
    """A command ends with its service stopped (its threads, the database writer), so the process exits."""
    app = make_app()
    hook = app.extensions[EXTENSION]
    assert app.test_cli_runner().invoke(args=["jobs", "list"]).exit_code == 0
    assert not hook.db.writer.is_alive() and not hook.maintenance.is_alive() and not hook.deadlines.is_alive()


@pytest.mark.stateless
@pytest.mark.parametrize(
    "command", [["jobs", "show", JOB], ["jobs", "list"], ["jobs", "purge"], ["db", "upgrade"], ["db", "pending"]]
)
def test_every_command_needs_a_database(run, command):
    """In the stateless mode every command exits 1 with one clear line on stderr."""
    result = run(*command)
    assert (result.exit_code, result.stderr, result.stdout) == (
        1,
        "pas de base de données: DATABASE_URL est vide\n",
        "",
    )


def test_a_configuration_error_is_one_line_not_a_traceback(monkeypatch):
    """create_app wrapped for Flask's CLI turns a configuration error into one line and exit 2."""
    monkeypatch.delenv("FLASK_RUN_FROM_CLI", raising=False)  # FlaskGroup sets it; gone after the test
    factory = commands.one_line_errors(create_app)
    group = FlaskGroup(create_app=lambda: factory({"APP_ENV": "production"}, environ={}), load_dotenv=False)
    result = CliRunner().invoke(group, ["jobs", "list"])
    assert result.exit_code == 2
    assert result.stderr == (
        "Configuration invalide: WEBHOOK_SECRET is required when APP_ENV is production (WEBHOOK_AUTH=secret)\n"
    )


def test_the_real_command_prints_the_job(sqlite_template, tmp_path):
    """`python -m flask --app app jobs show JOB`, run from the project root on a SQLite file, prints the job."""
    path = tmp_path / "jobs.sqlite3"
    shutil.copy(sqlite_template, path)
    url = f"sqlite:///{path}"
    app = create_app({"APP_ENV": "development", "DATABASE_URL": url}, environ={})
    hook = app.extensions[EXTENSION]
    assert app.test_client().post(URL, json=COMPLETED).status_code == 200
    expected = jobs.find(hook.db, JOB)
    hook.stop()
    env = {name: value for name, value in os.environ.items() if name not in SERVICE_VARIABLES}
    env.update(APP_ENV="development", DATABASE_URL=url, IDEMPOTENCE_BACKEND="memory")
    command = [sys.executable, "-m", "flask", "--app", "app", "jobs", "show", JOB]
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["job"] == expected
    assert [delivery["outcome"] for delivery in document["deliveries"]] == ["processed"]
    assert result.stderr == ""  # the command's output only: no start-up line, no warning


def flask(cwd, *args, **env):
    """`python -m flask --app app ARGS` in `cwd`, beside copies of app.py and .flaskenv (no developer's .env),
    with none of the service's variables but `env`; returns (exit code, stdout, stderr)."""
    for name in ("app.py", ".flaskenv"):
        shutil.copy(ROOT / name, cwd / name)
    environ = {name: value for name, value in os.environ.items() if name not in (*SERVICE_VARIABLES, "FLASK_APP")}
    environ.update(env, PYTHONPATH=str(ROOT))
    command = [sys.executable, "-m", "flask", "--app", "app", *args]
    result = subprocess.run(command, cwd=cwd, env=environ, capture_output=True, text=True, timeout=60)
    return result.returncode, result.stdout, result.stderr


def test_the_documented_command_works_with_the_development_defaults(sqlite_template, tmp_path):
    """`flask --app app jobs list`, as docs/storage.md gives it, with no APP_ENV: .flaskenv gives the
    development defaults of `make run`, and the command prints its own output only."""
    shutil.copy(sqlite_template, tmp_path / "jobs.sqlite3")
    url = f"sqlite:///{tmp_path / 'jobs.sqlite3'}"
    assert flask(tmp_path, "jobs", "list", DATABASE_URL=url) == (0, "Aucun job\n", "")


def test_production_reads_its_environment_and_a_bad_one_is_one_line(tmp_path):
    """APP_ENV=production from the environment wins over .flaskenv: without a secret the command says so
    in one line naming the variable and exits 2, no traceback."""
    code, out, err = flask(tmp_path, "jobs", "list", APP_ENV="production", DATABASE_URL="")
    assert (code, out) == (2, "")
    assert (
        err == "Configuration invalide: WEBHOOK_SECRET is required when APP_ENV is production (WEBHOOK_AUTH=secret)\n"
    )


def test_help_lists_every_command_even_with_a_bad_configuration(tmp_path):
    """`flask --app app --help` lists db and jobs with their French help, whatever the configuration; a bad
    one is named in one line, never a traceback."""
    for env in ({}, {"APP_ENV": "production"}):
        code, out, err = flask(tmp_path, "--help", DATABASE_URL="", **env)
        assert code == 0 and "Traceback" not in err, err
        listed = {line.split()[0]: line for line in out.split("Commands:")[1].splitlines() if line.strip()}
        assert listed["db"].split(None, 1)[1].startswith("Le schéma de la base de données"), out
        assert listed["jobs"].split(None, 1)[1] == "Les jobs enregistrés et leurs livraisons.", out
        assert [line for line in err.splitlines() if line] == ([f"Error: {NO_SECRET}"] if env else []), err


def test_the_commands_help_is_french():
    """Every command of db and jobs, and each of their options, has its help in French, like its output."""
    english = re.compile(r"\b(the|of|and|only|how|many|include|list|apply|delete)\b", re.IGNORECASE)
    for group in (commands.db_commands, commands.jobs_commands):
        assert group.help and not english.search(group.help), group.help
        for command in group.commands.values():
            texts = [command.help, *(option.help for option in command.params if isinstance(option, click.Option))]
            assert all(text and not english.search(text) for text in texts), (command.name, texts)
