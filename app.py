"""The WSGI entry: gunicorn (`app:create_app()`, see gunicorn.conf.py) and `flask --app app` build the service here."""

from image_webhook import create_app

__all__ = ["create_app"]
