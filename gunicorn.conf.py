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

# Worker processes: ONE, because the idempotence store is a dict inside the process; a second
# worker would have its own dict and process the same job again. Concurrency comes from threads.
workers = 1
worker_class = "gthread"
threads = 8

# Timeouts: the backend gives up after 30 s, so nothing here may take longer.
timeout = 30
graceful_timeout = 30
keepalive = 5

# Logging: gunicorn's own messages and the access log on stderr, next to the service's lines.
errorlog = "-"
accesslog = "-"
loglevel = "info"

# No control socket (gunicornc): nothing uses it, and every instance on a machine would share
# its default path (~/.gunicorn/gunicorn.ctl).
control_socket_disable = True
