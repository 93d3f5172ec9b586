"""The WSGI entry: gunicorn (`app:create_app()`, see gunicorn.conf.py) and `flask --app app` build the service here."""

from image_webhook import create_app as build
from image_webhook.surfaces.commands import one_line_errors

# the same factory; under Flask's CLI a configuration error is one line and exit 2, not a traceback
create_app = one_line_errors(build)

__all__ = ["create_app"]
