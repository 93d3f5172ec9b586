"""bench/profile.py's grouping of py-spy stacks into parts: what issue 21's profile table rests on."""

from bench.profile import COPIERS, OTHER, WAITS, group, part_of

ROOT = "Thread._bootstrap (threading.py:1002);Thread.run (threading.py:982)"
REQUEST = ROOT + ";ThreadWorker.handle (gunicorn/workers/gthread.py:553);Flask.wsgi_app (flask/app.py:1511)"


def test_the_innermost_frame_of_a_part_decides():
    intake = REQUEST + ";_record (image_webhook/surfaces/webhook.py:47);parse_json (image_webhook/intake/parsing.py:80)"
    assert part_of(intake) == "parsing and validation"
    assert part_of(intake + ";decode (json/decoder.py:337)") == "parsing and validation"
    assert part_of(intake + ";Logger.info (logging/__init__.py:1489)") == "logging"
    assert part_of(REQUEST + ";count (image_webhook/observability/metrics.py:113)") == "metrics"
    assert part_of(REQUEST + ";record (image_webhook/storage/database/jobs.py:60)") == "database hand-off and commit"
    assert part_of(REQUEST) == "Flask, werkzeug, the surfaces"
    assert part_of(REQUEST.rpartition(";")[0]) == "HTTP and gunicorn"
    assert part_of('process 1:"python";thread (0x1);<module> (somewhere.py:1)') == OTHER


def test_threads_asleep_and_copiers_are_apart():
    asleep = ROOT + ";GroupCommitWriter.submit (image_webhook/storage/database/writer.py:74)"
    assert part_of(asleep + ";Event.wait (threading.py:629);Condition.wait (threading.py:331)") == WAITS
    assert part_of(asleep + ";Event.set (threading.py:600)") == "threading (waits, queues)"
    copier = ROOT + ";Copiers._copy_loop (image_webhook/copying/copier.py:149)"
    assert part_of(copier + ";ended (image_webhook/storage/database/copies.py:127)") == COPIERS
    assert part_of(copier + ";Event.wait (threading.py:629);Condition.wait (threading.py:331)") == WAITS


def test_raw_files_are_summed_by_part(tmp_path):
    raw = tmp_path / "worker.txt"
    logging = REQUEST + ";Logger.info (logging/__init__.py:1489)"
    raw.write_text(f"{logging} 3\n{logging} 4\n{REQUEST} 2\nnot a stack line\n")
    assert group([raw]) == {"logging": 7, "Flask, werkzeug, the surfaces": 2}
