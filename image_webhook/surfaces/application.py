"""The Flask application the blueprints run in: JSON answers in UTF-8, bodiless OPTIONS, a request id each."""

from __future__ import annotations

import json
import re
from typing import Any

from flask import Flask, Response, request
from flask.json.provider import DefaultJSONProvider
from werkzeug.sansio.response import Response as AnyResponse

from ..observability.context import RequestIds, begin_request, current_request, end_request

REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")  # an incoming X-Request-ID must look like this


class AnswerJson(DefaultJSONProvider):
    """Flask's JSON in UTF-8 (the French messages), keys in the order written; the answers' encoder is built
    once, where json.dumps(default=...) builds one per answer (BENCHMARKS.md)."""

    ensure_ascii = False
    sort_keys = False

    def __init__(self, app: Flask) -> None:
        super().__init__(app)
        self.encoder = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=self.default)

    def response(self, *args: Any, **kwargs: Any) -> AnyResponse:
        body = self.encoder.encode(self._prepare_response_obj(args, kwargs))
        return self._app.response_class(body + "\n", mimetype=self.mimetype)


class WebhookFlask(Flask):
    """Flask, with an OPTIONS answer that is no page: 204 and the Allow header, no body."""

    json_provider_class = AnswerJson

    def make_default_options_response(self) -> Response:
        response = super().make_default_options_response()
        response.status_code = 204
        del response.headers["Content-Type"]
        return response


def track_requests(app: Flask) -> None:
    """Give every request its state (observability.context) and its X-Request-ID, kept from the client when
    well-formed, made here otherwise; every log line of the request carries it."""
    request_ids = RequestIds()

    def begin() -> None:
        incoming = request.headers.get("X-Request-ID", "")
        begin_request(incoming if REQUEST_ID.fullmatch(incoming) else request_ids())

    def return_request_id(response: Response) -> Response:
        state = current_request()
        response.headers["X-Request-ID"] = state.request_id if state is not None else ""
        return response

    app.before_request(begin)
    app.after_request(return_request_id)
    app.teardown_request(lambda exc: end_request())
