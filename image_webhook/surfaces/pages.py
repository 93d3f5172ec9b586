"""The page blueprint: /jobs (live list and monitoring plots) and /jobs/<job_id>, for people, behind HTTP Basic."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from flask import Blueprint, Response, jsonify, render_template, request, url_for
from werkzeug.exceptions import NotFound
from werkzeug.wrappers import Response as BaseResponse

from ..domain.values import Status
from ..intake.auth import Challenge
from ..service import service
from ..storage.database import Database, jobs, statistics
from ..storage.database import copies as copies_table
from ..storage.database import deliveries as deliveries_table
from . import formats
from .errors import handle_http_exception
from .presenting import STATUSES, age, clocks, copies, delivery, images_of, metadata_rows, present
from .reads import (
    bad_parameter,
    conditional,
    delivery_id,
    encode_cursor,
    filter_value,
    find_job,
    limit_value,
    not_modified,
    read_cursor,
)
from .stored_images import serve

# the page's templates and static files live beside it; its hooks guard the static files too
bp = Blueprint("pages", __name__, template_folder="templates", static_folder="static", static_url_path="/static")
# how the templates write times, sizes and numbers for people (formats.py)
FILTERS = (age, formats.utc_text, formats.machine_time, formats.percent, formats.size, formats.decimal)
for function in FILTERS:
    bp.add_app_template_filter(function)
PAGE_SIZE = 25
DELIVERIES_PAGE = 20
DELIVERIES_BODIES = 2 * 1024 * 1024  # bytes of bodies a job page shows at most (fewer deliveries then; one at least)
KEPT = ("status", "user_id", "limit", "cursor", "period")  # the query parameters links and the feed carry on
HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
PERIODS = (("hour", "1 heure"), ("day", "1 jour"), ("week", "1 semaine"))
BAD_BEFORE = "deliveries_before doit être l'identifiant d'une livraison (un entier positif)"
STATELESS = "Pas de base de données: la page des jobs demande DATABASE_URL"


@bp.before_request
def gate() -> None:
    """The pages, their JSON views and the static files: 404 with DASHBOARD off; HTTP Basic in production,
    429 at once for a client (or a process) over its budget of failed logins (intake/throttle.py)."""
    if not service().settings.dashboard:
        raise NotFound()
    if not service().page_users.allows(request.authorization, request.remote_addr):
        raise Challenge('Basic realm="jobs"')


@bp.context_processor
def environment() -> dict[str, str]:
    """The environment the header shows (development or production)."""
    return {"app_env": service().settings.app_env}


@bp.after_request
def secure(response: Response) -> Response:
    """Every answer of the pages (errors included): no inline script or style, nothing sniffed, no referrer."""
    response.headers.update(HEADERS)
    return response


@bp.get("/jobs")
def jobs_page() -> str:
    """Recent jobs newest first, filtered, in keyset pages; the script keeps them current; the plots below."""
    db = service().db
    if db is None:  # the stateless mode keeps no job: the page says so
        return render_template("jobs.html", stateless=True, message=STATELESS)
    filters, limit, after = _filters()
    listing = _listing(*jobs.page(db, filters, limit=limit, after=after))
    return render_template(
        "jobs.html",
        jobs=listing["jobs"],
        feed_url=url_for(".feed", **_query()),
        feed_etag=_feed(listing).headers["ETag"],
        next_url=listing["next_url"],
        first_url=url_for(".jobs_page", **_query(cursor=None)) if after else None,
        filters=filters,
        statuses=list(Status),
        period=_period(),
        periods=[(name, label, url_for(".jobs_page", **_query(period=name, cursor=None))) for name, label in PERIODS],
        stats_url=url_for(".monitoring", period=_period()),
    )


@bp.get("/jobs.json")
def feed() -> Response:
    """The list of /jobs as JSON for its script: an ETag, 304 while nothing changed."""
    filters, limit, after = _filters()
    return conditional(_feed(_listing(*jobs.page(_db(), filters, limit=limit, after=after))))


@bp.get("/jobs/<job_id>")
def job_page(job_id: str) -> Response | str:
    """One job: its images, its metadata, and its deliveries (newest first, in pages) with what arrived and what
    was answered; a job the records do not hold is a 404 page."""
    before = delivery_id("deliveries_before", BAD_BEFORE)
    try:
        db = _db()
        job = find_job(db, job_id)
    except NotFound as missing:
        return _missing(job_id, missing)
    metadata = job["metadata"] if isinstance(job["metadata"], dict) else {}
    found, earlier = deliveries_table.page(db, job_id, limit=DELIVERIES_PAGE, before=before, budget=DELIVERIES_BODIES)
    return render_template(
        "job.html",
        job=present(job),
        record=job,
        clocks=clocks(job),
        # `kept`, not `copy`: Jinja would find a dict's copy() method first
        images=[
            {**image, "raw_url": image.get("url"), "kept": kept}
            for image, kept in zip(images_of(job), copies(job), strict=True)
        ],
        metadata=metadata_rows(metadata),
        deliveries=[delivery(found_row) for found_row in found],
        page_size=DELIVERIES_PAGE,
        earlier_url=url_for(".job_page", job_id=job_id, deliveries_before=earlier) if earlier else None,
        newest_url=url_for(".job_page", job_id=job_id) if before is not None else None,
    )


@bp.get("/jobs/<job_id>/images/<int(max=99):position>", defaults={"thumbnail": False})
@bp.get("/jobs/<job_id>/images/<int(max=99):position>/thumbnail", defaults={"thumbnail": True})
def image(job_id: str, position: int, thumbnail: bool) -> BaseResponse:
    """A stored copy, or the thumbnail the page shows, behind the page's login (it loads no image from elsewhere)."""
    return serve(_db(), job_id, position, thumbnail=thumbnail)


@bp.get("/monitoring.json")
def monitoring() -> Response:
    """The plots' numbers over the chosen period (hour, day, week), from the rollups of the records."""
    db, period, now = _db(), _period(), datetime.now(UTC)
    tag = statistics.etag(db, period, now=now)  # known first: a 304 costs one lookup, and no sum of the rollups
    if (unchanged := not_modified(tag)) is not None:
        return unchanged
    response = jsonify({**statistics.summary(db, period, now=now), "copies": copies_table.summary(db, now=now)})
    response.set_etag(tag)
    return conditional(response)


def _listing(found: list[dict[str, Any]], following: tuple[str, int] | None) -> dict[str, Any]:
    """A page of jobs as the page and its feed show them, and the link to the next page."""
    following_url = url_for(".jobs_page", **_query(cursor=encode_cursor(following))) if following else None
    return {"jobs": [present(job) for job in found], "next_url": following_url}


def _feed(listing: dict[str, Any]) -> Response:
    response = jsonify(listing)
    response.add_etag()
    return response


def _filters() -> tuple[dict[str, str], int, tuple[str, int] | None]:
    """The status and owner filters, the page size and the keyset cursor; an empty field is no filter."""
    filters = {name: value for name in ("status", "user_id") if (value := request.args.get(name, ""))}
    if filters.get("status", "completed") not in STATUSES:
        raise bad_parameter("status inconnu", "$.status")
    if "user_id" in filters:
        filter_value("user_id", filters["user_id"])
    limit = limit_value(request.args.get("limit") or None, PAGE_SIZE)
    return filters, limit, read_cursor(request.args.get("cursor") or None)


def _missing(job_id: str, missing: NotFound) -> Response:
    """A job the records do not hold (or the stateless mode): the one error path logs and answers its 404; a
    browser reads it as a page of the service, a client that prefers JSON gets the JSON body."""
    response = handle_http_exception(missing)
    if request.accept_mimetypes.best_match(("text/html", "application/json")) == "application/json":
        return response
    page = render_template("missing.html", job_id=job_id, message=missing.description, stateless=service().db is None)
    response.set_data(page)
    response.mimetype = "text/html"
    return response


def _period() -> str:
    period = request.args.get("period") or "day"
    if period not in statistics.PERIODS:
        raise bad_parameter("period doit être hour, day ou week", "$.period")
    return period


def _query(**changes: str | None) -> dict[str, Any]:
    kept = {name: value for name in KEPT if (value := request.args.get(name))}
    return {name: value for name, value in {**kept, **changes}.items() if value}


def _db() -> Database:
    """The records the page reads: the stateless mode keeps none, and says so (404) here and in jobs_page."""
    db = service().db
    if db is None:
        raise NotFound(STATELESS)
    return db
