"""The page blueprint: /jobs (live list and monitoring plots) and /jobs/<job_id>, for people, behind HTTP Basic."""

from __future__ import annotations

import contextlib
import json
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from flask import Blueprint, Response, current_app, jsonify, render_template, request, url_for
from werkzeug.exceptions import NotFound

from . import stats
from .api import (  # the read API's parameters, cursors and job lookup: one behaviour for both
    bad_parameter,
    conditional,
    encode_cursor,
    filter_value,
    find_job,
    limit_value,
    read_cursor,
)
from .auth import Challenge
from .context import service
from .db import Database, jobs
from .db import deliveries as deliveries_table
from .validation import INTERMEDIATE_STATUSES, STATUSES

bp = Blueprint("pages", __name__, static_folder="static", static_url_path="/static")  # its hooks guard them too
PAGE_SIZE, THUMBNAILS = 25, 4
MAX_BODY = 64 * 1024  # characters of a delivery's body shown on the page
KEPT = ("status", "user_id", "limit", "cursor", "period")  # the query parameters links and the feed carry on
HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; img-src http: https:; "
    "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
AGE_UNITS = (("j", 86400), ("h", 3600), ("min", 60))
PERIODS = (("hour", "1 heure"), ("day", "1 jour"), ("week", "1 semaine"))
STATELESS = "Pas de base de données: la page des jobs demande DATABASE_URL"


@bp.before_request
def gate() -> None:
    """The pages, their JSON views and the static files: 404 with DASHBOARD off; HTTP Basic in production."""
    if not current_app.config["DASHBOARD"]:
        raise NotFound()
    if not service().page_users.allows(request.authorization):
        raise Challenge('Basic realm="jobs"')


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
        statuses=list(jobs.RANK),
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
def job_page(job_id: str) -> str:
    """One job: its images, its metadata, and every delivery with what arrived and what was answered."""
    db = _db()
    job = find_job(db, job_id)
    metadata = job["metadata"] if isinstance(job["metadata"], dict) else {}
    images = [image for image in (job["images"] if isinstance(job["images"], list) else []) if isinstance(image, dict)]
    found = deliveries_table.for_job(db, job_id, include_body=True)
    return render_template(
        "job.html",
        job=present(job),
        record=job,
        images=[
            {**i, "url": i.get("url") if _web_url(i.get("url")) else None, "raw_url": i.get("url")} for i in images
        ],
        metadata=[(key, value if isinstance(value, str) else json.dumps(value)) for key, value in metadata.items()],
        deliveries=[{**d, "body": _pretty(d["body"]), "response_body": _pretty(d["response_body"])} for d in found],
    )


@bp.get("/monitoring.json")
def monitoring() -> Response:
    """The plots' numbers over the chosen period (hour, day, week), from the job and delivery records."""
    return conditional(jsonify(stats.summary(_db(), _period())))


def present(job: dict[str, Any]) -> dict[str, Any]:
    """What the page shows of a job, the same in the HTML and in the feed; thumbnails from http(s) URLs only."""
    images = [i for i in (job["images"] or []) if isinstance(i, dict) and _web_url(i.get("url"))]
    metadata = job["metadata"] if isinstance(job["metadata"], dict) else {}
    status = job["status"] if job["status"] in STATUSES else "unknown"
    progress, seconds = job["progress"], metadata.get("generation_time_seconds")
    return {name: job[name] for name in ("job_id", "prompt", "message", "user_id", "organization_id")} | {
        "href": url_for(".job_page", job_id=job["job_id"]),
        "status": status,
        "running": status in INTERMEDIATE_STATUSES,
        "progress": min(max(float(progress), 0.0), 100.0) if isinstance(progress, int | float) else None,
        "error_message": job["error_message"] if status == "failed" else None,
        "thumbnails": [{"url": i["url"], "alt": _text(i.get("description"))} for i in images[:THUMBNAILS]],
        "more_images": max(len(images) - THUMBNAILS, 0),
        "model": _text(metadata.get("model_name")),
        "generation_seconds": seconds if type(seconds) in (int, float) else None,
        "created_at": job["created_at"],
    }


@bp.app_template_filter("age")
def age(moment: str | None) -> str:
    """How long ago an ISO 8601 time was, as the page's script also writes it: '42 s', '5 min', '3 h', '2 j'."""
    try:
        seconds = max(0, int((datetime.now(UTC) - datetime.fromisoformat(moment or "")).total_seconds()))
    except (TypeError, ValueError):
        return ""
    unit, size = next(((unit, size) for unit, size in AGE_UNITS if seconds >= size), ("s", 1))
    return f"{seconds // size} {unit}"


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


def _period() -> str:
    period = request.args.get("period") or "day"
    if period not in stats.PERIODS:
        raise bad_parameter("period doit être hour, day ou week", "$.period")
    return period


def _query(**changes: str | None) -> dict[str, Any]:
    kept = {name: value for name in KEPT if (value := request.args.get(name))}
    return {name: value for name, value in {**kept, **changes}.items() if value}


def _web_url(url: Any) -> bool:
    try:
        parts = urlsplit(url) if isinstance(url, str) else None
    except ValueError:  # a malformed host such as "http://[::1"
        return False
    return parts is not None and parts.scheme.lower() in ("http", "https") and bool(parts.netloc)


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _pretty(text: str | None) -> str:
    """A body as it arrived, indented when it is JSON, cut to MAX_BODY characters."""
    if not text:
        return ""
    with contextlib.suppress(ValueError, RecursionError):  # not JSON: shown as it arrived
        text = json.dumps(json.loads(text), indent=2, ensure_ascii=False)
    return text if len(text) <= MAX_BODY else text[:MAX_BODY] + "\n… (tronqué)"


def _db() -> Database:
    db = service().db
    if db is None:
        raise NotFound(STATELESS)
    return db
