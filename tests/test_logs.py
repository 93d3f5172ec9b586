"""One record per log line, in both formats: line breaks in logged values and tracebacks are escaped, so a
reader splitting on any Unicode line break (str.splitlines) sees exactly the records written."""

import contextlib
import io
import json
import logging
import os
import re
import subprocess
import sys
import uuid

import pytest
import requests

from image_webhook.observability.logs import JsonFormatter, LineBuffer, RequestContext, TextFormatter, formatter, logger
from tests import failing_app
from tests.payloads import COMPLETED, FAILED, PROGRESS, URL, payload
from tests.servers import GunicornServer, eventually

# every character str.splitlines() ends a line at
BREAKS = "\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029"
ERROR_MESSAGE = f"Clé invalide{BREAKS}forged ❌ line"
MODEL = "gemini\u2028forged\r✅ line\u2029\x85"
RUN = uuid.uuid4().hex[:8]  # message ids no store of an earlier run has seen
MESSAGE_ID = f"msg\x85forged-{RUN}"  # a header value (latin-1): U+0085 is the only line break it can carry
SIGNED = {"APP_ENV": "development", "WEBHOOK_AUTH": "any", "WEBHOOK_SIGNING_SECRET": "whsec_" + "QUFB" * 11}
# the starts of a line: the service's text format, gunicorn's error log, gunicorn's access log
RECORD_START = re.compile(
    r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (DEBUG|INFO|WARNING|ERROR|CRITICAL) \[[^\]]+\] "
    r"|\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d [+-]\d{4}\] \[\d+\] \[(DEBUG|INFO|WARNING|ERROR|CRITICAL)\] "
    r'|127\.0\.0\.1 - - \[\d\d/\w{3}/\d{4}:\d\d:\d\d:\d\d [+-]\d{4}\] "'
)


def written(records):
    """What the service writes for `records`: each formatted as a text line and as a JSON line."""
    return "\n".join(f.format(r) for f in (TextFormatter(), JsonFormatter()) for r in records)


def logged(records, request_id, prefix):
    """How many of `records` belong to request `request_id` and start with `prefix`."""
    return sum(getattr(r, "request_id", None) == request_id and r.getMessage().startswith(prefix) for r in records)


def lines_of(output):
    """The lines of `output`, checked to be the same whether split on \\n or on every Unicode line break."""
    lines = output.split("\n")
    assert lines[-1] == "", "the output ends with a line break"
    assert output.splitlines() == lines[:-1], "a line break other than \\n is written raw"
    return lines[:-1]


def signed(body, message_id):
    from tests.test_signatures import signed_headers

    return signed_headers(body, key=SIGNED["WEBHOOK_SIGNING_SECRET"], message_id=message_id)


def post_hostile_requests(post):
    """Requests whose logged values carry line breaks, one of them to a job handler that raises; `post(body
    bytes, headers)` sends one. Return the request ids in the order sent."""
    failed = json.dumps(payload(FAILED, "lb-failed", error_message=ERROR_MESSAGE)).encode()
    completed = payload(COMPLETED, "lb-completed")
    completed["data"]["metadata"]["model_name"] = MODEL
    completed["data"]["images"][0]["description"] = f"Un chat{BREAKS}astronaute"
    progress = json.dumps(payload(PROGRESS, "lb-progress")).encode()
    plain = {"Content-Type": "application/json"}
    sent = [
        ("lb-failed", failed, plain),
        ("lb-completed", json.dumps(completed).encode(), plain),
        ("lb-invalid", json.dumps(payload(COMPLETED, f"bad{BREAKS}id")).encode(), plain),
        ("lb-signed", progress, signed(progress, MESSAGE_ID)),
        ("lb-replay", progress, signed(progress, MESSAGE_ID)),
    ]
    statuses = [post(body, {**headers, "X-Request-ID": rid}) for rid, body, headers in sent]
    assert statuses == [500, 500, 400, 200, 200]
    return [rid for rid, _, _ in sent]


def check_json(lines):
    """Every line is a JSON object; the tracebacks are in exc_info, the logged values read back intact."""
    objects = [json.loads(line) for line in lines]  # fails on any line that is not JSON
    service = {(o["request_id"], o.get("event")): o for o in objects if o["logger"] == "image_webhook"}
    for rid in ("lb-failed", "lb-completed"):
        errors = [o for o in objects if o.get("request_id") == rid and "exc_info" in o]
        assert len(errors) == 1 and errors[0]["level"] == "ERROR"
        assert errors[0]["exc_info"].startswith("Traceback (most recent call last):")
        assert errors[0]["exc_info"].endswith(f"RuntimeError: {failing_app.MESSAGE}")
    job_failed = service["lb-failed", "job_failed"]["message"].split(": ", 1)[1]
    assert json.loads(job_failed)["error_message"] == ERROR_MESSAGE
    assert json.loads(service["lb-completed", "job_completed"]["message"].split(": ", 1)[1])["model"] == MODEL
    assert service["lb-invalid", "rejected"]["message"].startswith("⚠️ [Image Webhook] Requête refusée: 400")
    assert service["lb-replay", "replay"]["message"].endswith(MESSAGE_ID)
    return objects


def check_text(lines):
    """Every line starts a record; a traceback is on its record's line, its line breaks escaped."""
    assert [line for line in lines if not RECORD_START.match(line)] == []
    for rid in ("lb-failed", "lb-completed"):
        errors = [line for line in lines if f"[{rid}]" in line and "Traceback (most recent call last):" in line]
        assert len(errors) == 1 and " ERROR " in errors[0]
        assert errors[0].endswith("RuntimeError: database unavailable\\nforged line\\u2028forged too")
    job_failed = next(line for line in lines if "[lb-failed]" in line and "Échec de la génération" in line)
    # the escapes are JSON's: the JSON part of the spec's line reads back as the value sent
    assert json.loads(job_failed.split("Échec de la génération: ", 1)[1])["error_message"] == ERROR_MESSAGE
    completed = next(line for line in lines if "[lb-completed]" in line and "Génération réussie" in line)
    assert json.loads(completed.split("Génération réussie: ", 1)[1])["model"] == MODEL
    assert any("[lb-invalid]" in line and "Requête refusée: 400" in line for line in lines)
    assert any("[lb-replay]" in line and line.endswith(f"rejoué: msg\\u0085forged-{RUN}") for line in lines)


@pytest.fixture(params=["text", "json"])
def output(request):
    """(format, read): what the service's logger writes in that format, through a handler of its own."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RequestContext())
    handler.setFormatter(formatter(request.param))
    logger().addHandler(handler)
    yield request.param, stream.getvalue
    logger().removeHandler(handler)


@pytest.mark.stateless  # its job handler raises after the ❌ line; with a database nothing is logged before the commit
def test_one_record_per_line(make_app, output, logs):
    """Through the Flask client: as many lines as records, whatever line breaks the logged values and the
    tracebacks hold; JSON lines parse, tracebacks are in exc_info (json) or on their record's line (text)."""
    log_format, read = output
    client = make_app(job_handler=failing_app.fail, **SIGNED).test_client()
    post_hostile_requests(lambda body, headers: client.post(URL, data=body, headers=headers).status_code)
    lines = lines_of(read())
    records = [r for r in logs.records if r.name == "image_webhook"]
    assert len(lines) == len(records) > 10
    check_json(lines) if log_format == "json" else check_text(lines)


def test_every_line_break_is_escaped_in_both_formats(logs):
    """Each character str.splitlines() breaks on is written as its JSON escape, in the message and in the
    traceback, so the text and the JSON output of one record are each one line."""
    try:
        raise RuntimeError(f"in the traceback{BREAKS}end")
    except RuntimeError:
        logger().exception("message%sforged", BREAKS, extra={"event": "test"})
    record = next(r for r in logs.records if r.getMessage().startswith("message"))
    text, line = TextFormatter().format(record), JsonFormatter().format(record)
    assert len(text.splitlines()) == 1 and len(line.splitlines()) == 1
    assert "message\\n\\r\\u000b\\f\\u001c\\u001d\\u001e\\u0085\\u2028\\u2029forged" in text
    assert json.loads(line)["message"] == f"message{BREAKS}forged"
    assert json.loads(line)["exc_info"].endswith(f"RuntimeError: in the traceback{BREAKS}end")


@pytest.mark.parametrize("log_format", ["json", "text"])
def test_one_record_per_line_through_gunicorn(tmp_path, log_format):
    """Through the real gunicorn (service, gunicorn's error and access logs): every line is one record,
    a JSON object in json, a timestamped or gunicorn line in text; the tracebacks are inside their record."""
    # stateless, one worker: the handler raises after the ❌ line, and the worker sees the replay
    env = {**SIGNED, "LOG_FORMAT": log_format, "WEB_CONCURRENCY": "1", "DATABASE_URL": ""}
    with GunicornServer(tmp_path, env, app="tests.failing_app:create()") as server:

        def post(body, headers):
            return requests.post(server.url + URL, data=body, headers=headers, timeout=10).status_code

        post_hostile_requests(post)
        # U+0085 in a header (gunicorn's access line quotes the User-Agent) and, percent-encoded, in the path
        weird = requests.get(server.url + "/x%85y%E2%80%A8z%0Aq", headers={"User-Agent": "ua\x85forged"}, timeout=10)
        assert weird.status_code == 404
        assert server.stop() == 0  # every worker writes its pending lines on its way out
        lines = lines_of(server.output())
    if log_format == "json":
        objects = check_json(lines)
        assert any(o.get("event") == "access" and o["path"] == "/x\x85y\xe2\x80\xa8z\nq" for o in objects)
    else:
        check_text(lines)
        assert any(line.endswith('"ua\\u0085forged"') for line in lines)


@pytest.mark.parametrize("log_format", ["json", "text"])
def test_gunicorn_tracebacks_are_one_line(tmp_path, log_format):
    """An exception gunicorn itself logs (the WSGI application raised) is one record on one line."""
    env = {"APP_ENV": "development", "LOG_FORMAT": log_format}
    with GunicornServer(tmp_path, env, app="tests.failing_app:bare()") as server:
        with contextlib.suppress(requests.ConnectionError):  # a 500, or the connection closed: gunicorn's choice
            requests.get(server.url + "/boom", timeout=10)
        assert server.stop() == 0
        lines = lines_of(server.output())
    errors = [line for line in lines if "Error handling request" in line and "/boom" in line]
    assert len(errors) == 1
    if log_format == "json":
        assert [json.loads(line) for line in lines]  # every line is JSON
        assert json.loads(errors[0])["exc_info"].endswith(f"RuntimeError: {failing_app.MESSAGE}")
    else:
        assert [line for line in lines if not RECORD_START.match(line)] == []
        assert errors[0].endswith("RuntimeError: database unavailable\\nforged line\\u2028forged too")


def test_access_lines_are_gunicorns_own(tmp_path):
    """The text access log is gunicorn's combined format (quotes escaped, bytes sent) without the Basic user
    (a token typed as a user name must not reach the log), also in a format naming a header or an environ
    variable, which gets its value."""
    env = {"APP_ENV": "development", "DATABASE_URL": "", "WEB_CONCURRENCY": "1"}
    headers = {
        "Authorization": "Basic dG9rZW4tc2VjcmV0LTQyOg==",  # token-secret-42: (curl -u TOKEN:)
        "Referer": 'https://ref.example/"q',
        "User-Agent": 'agent "quoted"',
        "X-Request-ID": f"access-{RUN}",
    }
    with GunicornServer(tmp_path, env) as server:
        answer = requests.get(server.url + "/healthz?x=1", headers=headers, timeout=10)
        line = next(x for x in server.wait_for('"GET /healthz?x=1 ').splitlines() if "GET /healthz?x=1 " in x)
    assert re.fullmatch(
        r'127\.0\.0\.1 - - \[\d\d/\w{3}/\d{4}:\d\d:\d\d:\d\d [+-]\d{4}\] "GET /healthz\?x=1 HTTP/1\.1" 200 '
        rf'{len(answer.content)} "https://ref\.example/\\"q" "agent \\"quoted\\""',
        line,
    ), line
    named = ("--access-logformat", "%(h)s %(u)s %({x-request-id}o)s %({user-agent}i)s %({path_info}e)s %(s)s")
    (tmp_path / "named").mkdir()
    with GunicornServer(tmp_path / "named", env, args=named) as server:
        requests.get(server.url + "/healthz", headers=headers, timeout=10)
        output = server.wait_for(f"access-{RUN} ")
    assert f'127.0.0.1 - access-{RUN} agent \\"quoted\\" /healthz 200' in output.splitlines()
    assert "token-secret-42" not in output


def test_line_buffer_writes_in_its_own_thread_and_at_once_for_errors(tmp_path):
    """LineBuffer writes kept lines within its interval without being asked, and an error line at once
    even with an interval of a minute; flush() writes the rest."""
    path = tmp_path / "out.log"
    with open(path, "w", encoding="utf-8") as stream:
        quick, slow = LineBuffer(stream, interval=0.05), LineBuffer(stream, interval=60)
        for handler in (quick, slow):
            handler.setFormatter(logging.Formatter("%(message)s"))
        quick.handle(logging.makeLogRecord({"msg": "quick info", "levelno": logging.INFO}))
        slow.handle(logging.makeLogRecord({"msg": "slow info", "levelno": logging.INFO}))
        slow.handle(logging.makeLogRecord({"msg": "slow error", "levelno": logging.ERROR}))
        assert eventually(lambda: {"quick info", "slow error"} <= set(path.read_text().splitlines()), True)
        slow.flush()
        assert sorted(path.read_text().splitlines()) == ["quick info", "slow error", "slow info"]


def test_line_buffer_after_a_fork(tmp_path):
    """In a forked child (a gunicorn worker) LineBuffer writes the child's lines from a writer thread of its
    own, and a line the parent kept is written once, by the parent."""
    path = tmp_path / "out.log"
    with open(path, "w", encoding="utf-8") as stream:
        handler = LineBuffer(stream, interval=0.05)
        handler.setFormatter(logging.Formatter("%(message)s"))
        handler.handle(logging.makeLogRecord({"msg": "in the parent", "levelno": logging.INFO}))
        child = os.fork()
        if child == 0:  # no flush(): the child's own writer thread must write its line
            handler.handle(logging.makeLogRecord({"msg": "in the child", "levelno": logging.INFO}))
            os._exit(0 if eventually(lambda: "in the child" in path.read_text(), True, timeout=5) else 1)
        assert os.waitpid(child, 0)[1] == 0
        handler.flush()
    assert sorted(path.read_text().splitlines()) == ["in the child", "in the parent"]


SHUTDOWN_RACE = """
import logging, sys, threading
from image_webhook.observability.logs import LineBuffer
handler = LineBuffer(sys.stdout, interval=60)
handler.setFormatter(logging.Formatter("%(message)s"))
handler.handle(logging.makeLogRecord({"msg": "kept", "levelno": logging.INFO}))
handler.acquire()  # as logging.shutdown(): the handler's lock held around its flush()
writer = threading.Thread(target=handler.flush)
writer.start()
writer.join(0.2)  # the writer thread's flush now waits for what this thread holds
handler.flush()
handler.release()
writer.join()
"""


def test_line_buffer_flush_while_logging_shuts_down():
    """The writer thread's flush while logging.shutdown() holds the handler's lock around its own flush (a worker
    exiting) does not deadlock: the process ends, and the kept line is written once."""
    try:
        done = subprocess.run([sys.executable, "-c", SHUTDOWN_RACE], capture_output=True, text=True, timeout=20)
    except subprocess.TimeoutExpired:
        pytest.fail("the two flushes deadlocked")
    assert (done.returncode, done.stdout) == (0, "kept\n"), done.stderr


@pytest.mark.database
def test_a_late_progress_says_whether_its_job_ended(client, logs):
    """A progress behind a job still running is logged as late on that job with its status; behind a job
    that ended, with the specification's line."""
    running, ended = f"late-running-{RUN}", f"late-ended-{RUN}"
    for body in (payload(PROGRESS, running, status="saving"), payload(COMPLETED, ended)):
        assert client.post(URL, json=body).status_code == 200
    for job_id in (running, ended):
        assert client.post(URL, json=payload(PROGRESS, job_id)).status_code == 200  # generating: behind both
    late = [r.getMessage() for r in logs.records if getattr(r, "event", None) == "late_progress"]
    assert late == [
        f"ℹ️ [Image Webhook] Statut intermédiaire en retard sur le job (ignoré): {running} generating "
        "(le job est à saving)",
        f"ℹ️ [Image Webhook] Statut intermédiaire reçu après la fin du job (ignoré): {ended} generating",
    ]
