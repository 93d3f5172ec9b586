"""gunicorn settings of the image-completion webhook: `python -m gunicorn -c gunicorn.conf.py`."""
import os
import sys

# the project's modules, wherever gunicorn is started from
pythonpath = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, pythonpath)

from config import ConfigError, load_settings  # noqa: E402

# Fail in the master, once, with a message naming the variable: a worker that cannot boot
# would otherwise be respawned, or stop gunicorn with a traceback.
try:
    settings = load_settings()
except ConfigError as exc:
    sys.exit(f"Configuration invalide: {exc}")

# The application
wsgi_app = "app:create_app()"
# No preload: create_app() runs in the worker, after the fork, so the idempotence store and its
# cleanup thread live in the process that serves the requests.
preload_app = False

# Server socket: the spec's backend posts to port 3000. Development listens on loopback only;
# production on every interface, behind the HTTPS proxy the spec requires. --bind still overrides.
_host = "127.0.0.1" if settings["APP_ENV"] == "development" else "0.0.0.0"
bind = [f"{_host}:{settings['PORT']}"]

# Worker processes follow the idempotence store. The memory store is a dict inside the process: a
# second worker would have its own dict and process the same job again, so it runs ONE worker
# (config.py refuses more). Redis is shared by every worker and machine: 2 x cores + 1 by default,
# WEB_CONCURRENCY overrides.
workers = settings["WEB_CONCURRENCY"]
if workers > 1 and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    # several processes: prometheus-client adds their metrics up from files in this directory
    import tempfile

    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="image-webhook-metrics-")
# gthread with 4 threads, chosen by measurement (make bench-workers, BENCHMARKS.md): the service
# served 635 req/s with sync, 719 / 677 / 618 with gthread 2 / 4 / 8 threads (p99 25, 21, 22, 25 ms);
# sync closes the connection after every answer, which ate the edge it has on paper, and more
# threads mean more contention for the GIL. 2 and 4 are within run-to-run noise; 4 keeps three
# threads serving while a slow client holds one. Slow clients decide against sync: one sync worker
# is stalled by a single client that sends slowly, and the master kills it at `timeout`, losing
# the memory store. With threads, a slow client holds one thread for BODY_TIMEOUT at most (the app
# cuts it off). In production put a buffering reverse proxy (nginx, a load balancer) in front
# anyway: it absorbs slow clients before they reach a thread.
worker_class = "gthread"
threads = 4

# Timeouts: the backend gives up after 30 s, so nothing here may take longer. `timeout` is the
# master's heartbeat check (a gthread worker beats while its threads work); `graceful_timeout` is
# how long in-flight requests get to finish after SIGTERM; kept-alive idle connections close after
# `keepalive` seconds. Reading a body is bounded by the app's BODY_TIMEOUT (10 s), which gunicorn
# does not provide.
timeout = 30
graceful_timeout = 30
keepalive = 5

# Logging: gunicorn's own messages and the access log on stderr, next to the service's lines,
# in the same format (LOG_FORMAT=json gives JSON lines for both).
errorlog = "-"
accesslog = "-"
loglevel = "info"
if settings["LOG_FORMAT"] == "json":
    logger_class = "logs.GunicornJsonLogger"

# No control socket (gunicornc): nothing uses it, and every instance on a machine would share
# its default path (~/.gunicorn/gunicorn.ctl).
control_socket_disable = True


def child_exit(server, worker):
    """A worker is gone: its live gauges no longer count (multiprocess metrics)."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)


def worker_exit(server, worker):
    """On the way out (SIGTERM after in-flight requests): stop the threads, say how much was done."""
    hook = getattr(worker, "wsgi", None) and worker.wsgi.extensions.get("image_webhook")
    if hook is None:
        return
    import logging

    import logs

    hook.stop()
    # the service's logger as create_app() set it up (configure() again would reset its format)
    logging.getLogger(logs.LOGGER).info("ℹ️ [Image Webhook] Arrêt du worker: %d job(s) traité(s) depuis son démarrage",
                                        hook.processed_jobs, extra={"event": "shutdown"})
    logs.flush()
