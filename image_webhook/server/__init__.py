"""The server edge: gunicorn's worker, its JSON error replies and its loggers (gunicorn.conf.py names them)."""
