"""Test applications that raise, with line breaks in the exception's message (one record per log line)."""

from image_webhook import create_app

# a newline and U+2028: a reader splitting the log on either would see a forged line
MESSAGE = "database unavailable\nforged line\u2028forged too"


def fail(payload):
    raise RuntimeError(MESSAGE)


def create():
    """The service, with a job handler that raises."""
    return create_app(job_handler=fail)


def bare():
    """A WSGI application that raises before answering (but its /healthz): gunicorn itself logs the traceback."""

    def application(environ, start_response):
        if environ["PATH_INFO"] == "/healthz":
            start_response("200 OK", [("Content-Type", "text/plain")])
            return [b"ok"]
        raise RuntimeError(MESSAGE)

    return application
