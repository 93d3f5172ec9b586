"""Where a request's CPU goes (issue 21): py-spy on two workers of the default configuration, grouped by part.

`python -m bench.profile` starts the default configuration (SQLite, 2 x cores + 1 workers x 4 threads) with the
project's gunicorn.conf.py, loads it with wrk (2 threads x 16 connections, unique `completed` notifications),
and records two of its workers with `py-spy record --nonblocking --gil --format raw` meanwhile: only the thread
holding the GIL is sampled, so samples / rate are the CPU seconds spent in Python (py-spy's idle detection does
not work on this machine: without --gil every thread asleep on a lock counted, 8x the CPU /proc reports).
Each sample's stack goes to the part of its innermost frame that belongs to a part (PARTS, first match from the
leaf up): a logging call made by the intake counts as logging, a JSON decode made by the intake as parsing; a
stack ending asleep in threading/selectors/queue is a wait, and an image copier's thread is its own part.

Per request: a part's CPU seconds over the requests the two sampled workers answered in the window (their own
counters of notifications, in prometheus-client's multiprocess files); what
/proc counts and no sample holds ran outside the GIL (SQLite's C code, socket calls, the kernel).
`--raw FILE ...` groups earlier recordings again; `--copies-off` serves IMAGE_COPY_CONCURRENCY=0;
`--in-process` times single steps (the five log records, the delivery row, parsing and validation, the
metrics) through the service's own objects, without a server.
"""

import argparse
import json
import logging
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

from bench import harness
from tests.servers import ROOT

RESULTS = ROOT / "bench" / "results"
RATE = 250  # samples per second per process
# (part, path fragments of a frame's file); the first part whose fragment is in a frame wins, leaf first
PARTS = [
    ("logging", ("image_webhook/observability/logs", "image_webhook/server/loggers", "logging/")),
    ("metrics", ("image_webhook/observability/metrics", "prometheus_client/")),
    (
        "database hand-off and commit",
        ("image_webhook/storage/database", "image_webhook/recording/database", "sqlite3/"),
    ),
    ("parsing and validation", ("image_webhook/intake", "image_webhook/domain", "fastjsonschema", "json/decoder")),
    (
        "the answer (JSON, response)",
        ("image_webhook/recording/answers", "json/encoder", "flask/json", "wrappers/response"),
    ),
    ("recording (window, journal, tally)", ("image_webhook/recording", "image_webhook/storage/idempotence")),
    ("Flask, werkzeug, the surfaces", ("image_webhook/surfaces", "image_webhook/service", "flask/", "werkzeug/")),
    ("HTTP and gunicorn", ("gunicorn/", "image_webhook/server", "http/", "socket.py", "selectors.py", "ssl.py")),
    ("threading (waits, queues)", ("threading.py", "queue.py", "concurrent/")),
]
OTHER = "other"
COPIERS = "image copiers' threads (copying/)"
WAITS = "threading waits (asleep: not CPU)"
# a stack whose innermost frame is one of these is a thread asleep (py-spy's --nonblocking keeps them)
IDLE = {"wait", "select", "poll", "sleep", "accept", "acquire", "get", "_wait_for_tstate_lock", "wait_for"}
IDLE_FILES = ("threading.py", "selectors.py", "queue.py", "socket.py")
FRAME = re.compile(r"^(?P<function>.*?) \((?P<file>[^()]*?):\d+\)$")


def part_of(stack):
    """The part of one collapsed stack (frames root first, separated by ';')."""
    frames = [found for frame in stack.split(";") if (found := FRAME.search(frame))]  # not "process", "thread"
    if (
        frames
        and frames[-1].group("function").rpartition(".")[2] in IDLE
        and frames[-1].group("file").endswith(IDLE_FILES)
    ):
        return WAITS
    if any("image_webhook/copying" in found.group("file") for found in frames):
        return COPIERS  # the copiers' own threads, whatever they call (their writes included)
    for found in reversed(frames):
        path = found.group("file").replace("\\", "/")
        for part, fragments in PARTS:
            if any(fragment in path for fragment in fragments):
                return part
    return OTHER


def group(paths):
    """Samples per part over py-spy raw files ('stack count' lines)."""
    parts = Counter()
    for path in paths:
        for line in Path(path).read_text(encoding="utf-8", errors="replace").splitlines():
            stack, _, count = line.rpartition(" ")
            if stack and count.isdigit():
                parts[part_of(stack)] += int(count)
    return parts


def table(parts, rate, requests=None, cpu_s=None):
    """Markdown: each part's samples, share, CPU seconds sampled and µs per request (`requests` answered by the
    sampled workers, `cpu_s` their CPU by /proc: what no sample holds is outside the GIL)."""
    running = sum(n for part, n in parts.items() if part != WAITS) or 1  # the samples of running threads
    rows = ["| part | samples | share | CPU s sampled | µs per request |", "|---|---|---|---|---|"]
    order = [p for p, _ in PARTS] + [COPIERS, OTHER]

    def us(seconds):
        return f"{seconds / requests * 1e6:.0f}" if requests else "–"

    for part in sorted(order, key=lambda p: -parts.get(p, 0)):
        n = parts.get(part, 0)
        rows.append(f"| {part} | {n} | {n / running:.1%} | {n / rate:.2f} | {us(n / rate)} |")
    rows.append(f"| **sampled, all parts** | {running} | 100% | {running / rate:.2f} | **{us(running / rate)}** |")
    if parts.get(WAITS):
        rows.append(f"| {WAITS} | {parts[WAITS]} | – | {parts[WAITS] / rate:.2f} | – |")
    if cpu_s is not None:
        outside = cpu_s - running / rate
        rows.append(
            f"| outside the GIL: C code (SQLite, sockets), the kernel | – | – | {outside:.2f} | {us(outside)} |"
        )
        rows.append(f"| **CPU of the sampled workers (/proc)** | – | – | {cpu_s:.2f} | **{us(cpu_s)}** |")
    return "\n".join(rows)


def children(pid):
    return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def cpu_seconds(pid):
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def notifications(directory, pid):
    """Notifications answered so far by worker `pid`: its own file of prometheus-client's multiprocess counters
    (image_webhook_notifications_total, every status and outcome)."""
    from prometheus_client.mmap_dict import MmapedDict

    path = Path(directory) / f"counter_{pid}.db"
    if not path.exists():
        return 0
    values = MmapedDict(str(path), read_mode=True).read_all_values()
    return sum(value for key, value, *_ in values if json.loads(key)[0] == "image_webhook_notifications")


def record(seconds, warmup, nonblocking=True, gil=True, env=None):
    """Serve the default configuration, load it and record two workers; the figures and the raw files."""
    counters = tempfile.mkdtemp(prefix="bench-profile-metrics-")  # gunicorn.conf.py keeps a given directory
    server = harness.server(None, {"APP_ENV": "development", "PROMETHEUS_MULTIPROC_DIR": counters, **(env or {})})
    server.start(timeout=harness.START_TIMEOUT)
    try:
        harness.wrk(server.url, "completed", warmup, 16, threads=2)
        workers = children(server.process.pid)
        sampled = workers[:2]
        load = threading.Thread(
            target=harness.wrk, args=(server.url, "completed", seconds + 4, 16), kwargs={"threads": 2}
        )
        load.start()
        time.sleep(1.5)
        outputs = [Path(tempfile.mkdtemp(prefix="bench-profile-")) / f"worker-{pid}.txt" for pid in sampled]
        before_cpu = {pid: cpu_seconds(pid) for pid in workers}
        before_done = server.output().count("Traitement terminé")
        before_counted = {pid: notifications(counters, pid) for pid in sampled}
        started = time.monotonic()
        spies = [
            subprocess.Popen(
                [
                    str(Path(sys.executable).parent / "py-spy"),
                    "record",
                    *(["--nonblocking"] if nonblocking else []),
                    *(["--gil"] if gil else []),
                    "--format",
                    "raw",
                    "-r",
                    str(RATE),
                    "-d",
                    str(seconds),
                    "-p",
                    str(pid),
                    "-o",
                    str(out),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
            )
            for pid, out in zip(sampled, outputs, strict=True)
        ]
        for spy in spies:
            spy.wait(seconds + 60)
        window = time.monotonic() - started
        after_cpu = {pid: cpu_seconds(pid) for pid in workers}
        counted = sum(notifications(counters, pid) - before_counted[pid] for pid in sampled)
        time.sleep(0.5)  # the log lines of the requests answered in the window
        done = server.output().count("Traitement terminé") - before_done
        load.join(seconds + 60)
        for spy in spies:
            if spy.returncode:
                raise SystemExit(f"py-spy failed: {spy.stderr.read().decode(errors='replace')}")
    finally:
        server.stop()
    cpu = {pid: after_cpu[pid] - before_cpu[pid] for pid in workers}
    return {
        "window_s": window,
        "requests": done,
        "workers": len(workers),
        "cpu_all_workers_s": sum(cpu.values()),
        "cpu_sampled_workers_s": sum(cpu[pid] for pid in sampled),
        "requests_of_sampled_workers": counted,
        "raw": [str(out) for out in outputs],
    }


def in_process(n=2000):
    """µs of CPU per call of each step, through the service's own objects (create_app on a scratch SQLite)."""
    from image_webhook import create_app
    from image_webhook.domain.notifications import Delivery
    from image_webhook.domain.values import Outcome, Status
    from image_webhook.intake.parsing import parse_json
    from image_webhook.observability.logs import LOGGER
    from image_webhook.recording import journal
    from image_webhook.recording.handler import ignore_job
    from image_webhook.service import service
    from image_webhook.storage.database import deliveries, jobs, migrate
    from tests.payloads import COMPLETED, payload

    scratch = tempfile.mkdtemp(prefix="bench-inprocess-")
    migrate.upgrade(f"sqlite:///{scratch}/jobs.sqlite3")
    app = create_app(
        environ={
            "APP_ENV": "development",
            "DATABASE_URL": f"sqlite:///{scratch}/jobs.sqlite3",
            "IMAGE_STORE": f"file://{scratch}/images",
            "IMAGE_COPY_CONCURRENCY": "0",
        }
    )
    log = logging.getLogger(LOGGER)
    figures = {}
    with app.app_context():
        components = service()
        db, validator, metrics = components.recorder.db, components.validator, components.metrics
        raw = json.dumps(payload(COMPLETED, "bench-inprocess")).encode()
        notification = validator.validate(parse_json(raw))

        def timed(name, step, count=n):
            step(0)  # warm
            begin = time.process_time()
            for i in range(count):
                step(i)
            figures[name] = (time.process_time() - begin) / count * 1e6

        def five(_):
            log.info(
                "🎨 [Image Webhook] Réception d'un webhook de génération d'images...", extra={"event": "reception"}
            )
            journal.payload(notification)
            journal.terminal(notification, Outcome.PROCESSED)  # ✅ and 💾 (one image)
            journal.processed(0.25)

        timed("the five log records of a completed (stderr: run with 2>/dev/null)", five)
        timed("json parsing + schema validation", lambda _: validator.validate(parse_json(raw)))
        timed(
            "metrics update (count + processed)",
            lambda _: (metrics.count(Status.COMPLETED, Outcome.PROCESSED), metrics.processed(notification, 0.0003)),
        )

        def delivery(i):
            d = Delivery(client_address="127.0.0.1", raw=raw, job_id=f"bench-{i}", status="completed")
            return d

        timed("a waited write, empty (hand-off + group commit)", lambda _: db.write(lambda c: None), n // 4)
        timed(
            "a waited write with one delivery row",
            lambda i: db.write(
                lambda c: deliveries.insert(db, c, delivery(i), outcome="duplicate", status=200, answer="{}")
            ),
            n // 4,
        )
        counter = iter(range(10**9))

        def whole(_):
            job = f"bench-whole-{next(counter)}"
            one = validator.validate(parse_json(raw.replace(b"bench-inprocess", job.encode())))
            jobs.record(db, one, delivery(0), answer=lambda d: {}, on_job=ignore_job)

        timed("jobs.record: job row + delivery row, committed", whole, n // 4)
        components.recorder.stop()
    figures["the delivery row alone (difference)"] = (
        figures["a waited write with one delivery row"] - figures["a waited write, empty (hand-off + group commit)"]
    )
    return figures


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=15, help="py-spy's recording, wrk running meanwhile")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--raw", nargs="*", help="group these py-spy raw files instead of recording")
    parser.add_argument("--copies-off", action="store_true", help="no image copier (the bench's URLs lead nowhere)")
    parser.add_argument("--blocking", action="store_true", help="py-spy pausing the workers at each sample")
    parser.add_argument("--all-threads", action="store_true", help="sample every thread, not the GIL's holder")
    parser.add_argument("--in-process", action="store_true", help="also time single steps in process")
    options = parser.parse_args()
    if options.raw:
        print(table(group(options.raw), RATE))
        return 0
    copies = {"IMAGE_COPY_CONCURRENCY": "0"} if options.copies_off else {}
    found = record(options.seconds, options.warmup, not options.blocking, not options.all_threads, copies)
    parts = group(found["raw"])
    cpu_per_request_us = found["cpu_all_workers_s"] / found["requests"] * 1e6 if found["requests"] else None
    served = found["requests_of_sampled_workers"]  # counted by their metrics
    sampled = sum(n for part, n in parts.items() if part != WAITS) / RATE
    print(
        f"{found['requests']} requests in {found['window_s']:.1f} s ({found['requests'] / found['window_s']:.0f}/s); "
        f"CPU of the {found['workers']} workers {found['cpu_all_workers_s']:.2f} s, "
        f"{cpu_per_request_us:.0f} µs a request; the two sampled: {found['cpu_sampled_workers_s']:.2f} s by /proc, "
        f"{sampled:.2f} s holding the GIL by py-spy ({RATE} Hz), about {served:.0f} requests\n"
    )
    print(table(parts, RATE, served, found["cpu_sampled_workers_s"]))
    found["parts"] = dict(parts)
    found["cpu_per_request_us"] = cpu_per_request_us
    if options.in_process:
        figures = in_process()
        print("\n| step, in process | µs CPU per call |\n|---|---|")
        for name, us in figures.items():
            print(f"| {name} | {us:.1f} |")
        found["in_process_us"] = figures
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "profile-latest.json").write_text(json.dumps(found, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
