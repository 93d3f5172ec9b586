"""gunicorn settings of the image-completion webhook: `python -m gunicorn -c gunicorn.conf.py`."""

import os
import sys

from image_webhook.domain.settings import ConfigError, load_settings
from image_webhook.server import internals, master
from image_webhook.server.worker import with_header_timeout

# Fail in the master, once, with a message naming the variable: a worker that cannot boot
# would otherwise be respawned, or stop gunicorn with a traceback.
try:
    settings = load_settings()
except ConfigError as exc:
    sys.exit(f"Configuration invalide: {exc}")
# The worker and the loggers below build on gunicorn internals: a gunicorn that lacks one must not start
# half-working (docs/operations.md says what an upgrade checks).
if gone := internals.missing():
    sys.exit(f"gunicorn {__import__('gunicorn').__version__} n'a plus ce dont le worker a besoin: {', '.join(gone)}")

# The application: app.py, next to this file, wherever gunicorn is started from.
pythonpath = os.path.dirname(os.path.abspath(__file__))
wsgi_app = "app:create_app()"
# No preload: create_app() runs in the worker, after the fork, so the stores, the database's
# connections and the threads live in the process that serves the requests, never inherited.
preload_app = False

# Server socket: the spec's backend posts to port 3000. HOST: loopback in development, every interface
# in production, behind the HTTPS front the spec requires (HOST=127.0.0.1 when the front is on this
# machine: then nothing reaches gunicorn but the front). --bind still overrides.
_host = settings.host.strip("[]")  # an IPv6 address is bracketed in an address:port
bind = [f"[{_host}]:{settings.port}" if ":" in _host else f"{_host}:{settings.port}"]

# Whose forwarding headers are believed: the front's address only (docs/deploy.md). gunicorn uses it for
# X-Forwarded-Proto (wsgi.url_scheme) and leaves REMOTE_ADDR as the socket's peer; the application puts
# the front's X-Forwarded-For there, from these peers only (image_webhook/surfaces/forwarded.py).
forwarded_allow_ips = settings.forwarded_allow_ips

# Worker processes follow what decides "exactly once". A database (the default) or Redis decide for
# every worker and machine: 2 x cores + 1 workers by default. Without either (DATABASE_URL empty, the
# memory store) the decision is a dict inside the process: ONE worker (config.py refuses more).
# WEB_CONCURRENCY overrides.
workers = settings.web_concurrency
if workers > 1 and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    # several processes: prometheus-client adds their metrics up from files in this directory (on_exit removes it)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = master.metrics_directory()
# gthread with 4 threads, chosen by measurement (`make bench-workers`, BENCHMARKS.md), in a subclass
# that reads each request's head in its event loop: a silent or slow client costs a connection, not a
# thread, and is answered 408 after HEADER_TIMEOUT. The same worker answers gunicorn's own errors in
# JSON. A body has BODY_TIMEOUT (the app cuts a slow one off).
worker_class = with_header_timeout(settings.header_timeout)
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
# gunicorn's own lines one record per line, like the service's (its tracebacks, a User-Agent's line breaks)
logger_class = f"image_webhook.server.loggers.Gunicorn{'Json' if settings.log_format == 'json' else 'Text'}Logger"

# No control socket (gunicornc): nothing uses it, and every instance on a machine would share
# its default path (~/.gunicorn/gunicorn.ctl).
control_socket_disable = True


def on_starting(server):
    """In the master, once, before it binds and before any worker forks: the port must be free, and the
    database's schema up to date. A refusal is one line, and the metrics' directory goes with it."""
    try:
        busy = None if master.inherits_sockets() else master.busy_port(server.cfg.address, server.cfg.reuse_port)
        if busy:
            sys.exit(busy)  # at once: gunicorn would retry for 5 s, with 10 ERROR lines
        if settings.database_url:
            _migrate()
    except BaseException as exc:  # a refusal (SystemExit), or Ctrl-C
        master.remove_metrics_directory()
        if isinstance(exc, KeyboardInterrupt):  # it comes before gunicorn's own signal handlers: no traceback
            print(master.INTERRUPTED, file=sys.stderr)
            raise SystemExit(130) from None
        raise


def _migrate():
    from image_webhook.storage.database import migrate

    try:
        if settings.db_migrate_on_start:
            migrate.upgrade(settings.database_url)
        elif pending := migrate.pending(settings.database_url):
            sys.exit(migrate.NOT_MIGRATED.format(", ".join(pending)))
    except Exception as exc:  # any failure stops the start, named, without a traceback
        sys.exit(migrate.CANNOT_MIGRATE.format(type(exc).__name__))


def when_ready(server):
    """In the master, once it listens: the start-up lines, once for the service (the workers boot next)."""
    master.announce(settings, reloading=server.cfg.reload, log=server.log)


def on_exit(server):
    """The master's last step, its workers gone: the metrics' directory it made goes too."""
    master.remove_metrics_directory()


def post_fork(server, worker):
    """In each new worker, before its own signal handlers: the master's signal queue, where a stop signal
    received meanwhile lands (image_webhook.worker reads it)."""
    worker.master_signals = server.SIG_QUEUE


def child_exit(server, worker):
    """A worker is gone: its live gauges no longer count (multiprocess metrics)."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)


def worker_exit(server, worker):
    """On the way out (SIGTERM after in-flight requests): stop the threads, say how much was done."""
    from image_webhook import shutdown

    shutdown(getattr(worker, "wsgi", None))


def post_worker_init(worker):
    """The worker serves: its image copiers start (a command's create_app() starts none)."""
    from image_webhook import start_copiers

    start_copiers(worker.wsgi)
