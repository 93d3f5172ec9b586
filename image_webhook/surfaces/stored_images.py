"""The stored copies of a job's images, served: the read API's routes and the page's share this one answer."""

from __future__ import annotations

import logging

from flask import redirect, send_file
from werkzeug.exceptions import NotFound
from werkzeug.wrappers import Response

from ..domain.images import CopyState, image_key, thumbnail_key
from ..domain.values import Outcome
from ..observability.logs import LOGGER
from ..service import service
from ..storage.database import Database, copies
from ..storage.errors import ImageStoreUnavailable
from .errors import refusal
from .reads import find_job

log = logging.getLogger(LOGGER)
IMMUTABLE = "private, max-age=31536000, immutable"  # a stored file never changes: its name is its SHA-256


def serve(db: Database, job_id: str, position: int, *, thumbnail: bool) -> Response:
    """The image's bytes (or, from S3, a redirect to a presigned URL), with its SHA-256 as ETag, 304 and ranges;
    404 "Image non copiée" with the copy's state while it is not stored; 404 for an unknown job or index."""
    store = service().images
    copy = copies.one(db, job_id, position) if service().validator.job_id_is_valid(job_id) else None
    if copy is None or copy["state"] != CopyState.STORED or store is None:
        job = find_job(db, job_id)  # 404 "Job inconnu"
        if not 0 <= position < len(job["images"] or ()):
            raise NotFound("Image inconnue: l'index va de 0 au nombre d'images moins 1")
        shown = None if copy is None else {**copy, "url": None, "thumbnail_url": None}  # as the job shows it
        return refusal(404, "Not Found", Outcome.ERROR, message="Image non copiée", copy=shown)
    digest, content_type = copy["sha256"], copy["content_type"]
    key = thumbnail_key(digest) if thumbnail else image_key(digest, content_type)
    location = store.locate(key)
    if isinstance(location, str):  # S3: the store serves the bytes, for IMAGE_URL_TTL seconds
        response = redirect(location, 302)
        response.headers["Cache-Control"] = "private, no-store"
        return response
    if not location.is_file():  # removed from the store behind the service's back: say so, never a 500
        log.error(
            "❌ [Image Webhook] Fichier absent du stockage: %s n°%d", job_id, position, extra={"event": "image_missing"}
        )
        raise ImageStoreUnavailable("fichier absent du stockage")
    response = send_file(
        location,
        mimetype="image/webp" if thumbnail else content_type,
        conditional=True,
        etag=f"{digest}.thumb" if thumbnail else digest,
        max_age=None,
    )
    response.headers["Cache-Control"] = IMMUTABLE
    return response
