"""What the page shows of a job and its deliveries: one presentation for the HTML and for its feed."""

from __future__ import annotations

import contextlib
import json
from datetime import UTC, datetime
from typing import Any

from flask import url_for

from ..domain.images import CopyState
from ..domain.values import INTERMEDIATE, Status
from .formats import moment, outcome, reason

THUMBNAILS = 4
MAX_BODY = 64 * 1024  # characters of a delivery's body shown on the page
AGE_UNITS = (("j", 86400), ("h", 3600), ("min", 60))
STATUSES = frozenset(Status)


# a copy's state as the page says it (docs/images.md)
COPY_STATES = {
    CopyState.QUEUED: "copie en attente",
    CopyState.COPYING: "copie en cours",
    CopyState.STORED: "copiée",
    CopyState.FAILED: "copie échouée",
    CopyState.REFUSED: "copie refusée (IMAGE_SOURCES)",
}


def copies(job: dict[str, Any]) -> list[dict[str, Any]]:
    """Each image with its copy as the page shows it: the service's own thumbnail and file once stored (the page
    never loads an image from a host a notification named), else the copy's state in French."""
    made = job.get("copies") or []
    shown = []
    for position, image in enumerate(images_of(job)):
        copy = made[position] if position < len(made) else None
        stored = copy is not None and copy["state"] == CopyState.STORED
        address = {"job_id": job["job_id"], "position": position}
        shown.append(
            {
                "alt": _text(image.get("description")),
                "state": copy["state"] if copy else None,
                "label": COPY_STATES.get(copy["state"], copy["state"]) if copy else "pas de copie",
                "error": copy["last_error"] if copy else None,
                "url": url_for("pages.image", **address, thumbnail=True) if stored else None,
                "file_url": url_for("pages.image", **address, thumbnail=False) if stored else None,
            }
        )
    return shown


def images_of(job: dict[str, Any]) -> list[dict[str, Any]]:
    """The job's images as the notification described them, each a mapping (its schema says so; a row written
    otherwise shows as an image described by nothing)."""
    images = job["images"] if isinstance(job["images"], list) else []
    return [image if isinstance(image, dict) else {} for image in images]


def present(job: dict[str, Any]) -> dict[str, Any]:
    """What the page shows of a job, the same in the HTML and in the feed; thumbnails served by the service."""
    images = copies(job)
    metadata = job["metadata"] if isinstance(job["metadata"], dict) else {}
    status = job["status"] if job["status"] in STATUSES else "unknown"
    progress, seconds = job["progress"], metadata.get("generation_time_seconds")
    return {name: job[name] for name in ("job_id", "message", "user_id", "organization_id")} | {
        **prompt_and_description(job),
        "href": url_for("pages.job_page", job_id=job["job_id"]),
        "status": status,
        "running": status in INTERMEDIATE,
        "progress": min(max(float(progress), 0.0), 100.0) if isinstance(progress, int | float) else None,
        "error_message": job["error_message"] if status == "failed" else None,
        "thumbnails": images[:THUMBNAILS],
        "more_images": max(len(images) - THUMBNAILS, 0),
        "model": _text(metadata.get("model_name")),
        "generation_seconds": seconds if type(seconds) in (int, float) else None,
        "created_at": job["created_at"],
    }


def prompt_and_description(job: dict[str, Any]) -> dict[str, str | None]:
    """The job's prompt, and the first image's description, each for what it is. No notification carries a
    prompt: the records keep the registration's (PUT /api/jobs/<id>), else the first image's description, as
    the specification's Prisma example does; that copy is the description here, not a prompt."""
    images = job["images"] if isinstance(job["images"], list) else []
    first = _text(images[0].get("description")) if images and isinstance(images[0], dict) else None
    prompt = _text(job["prompt"])
    return {"prompt": prompt if prompt != first else None, "description": first}


def clocks(job: dict[str, Any]) -> dict[str, bool]:
    """Whose clock the job's end is: the backend's (the completed notification's generated_at, or its
    timestamp) unless it carried none, when the service wrote its reception (updated_at, the same instant);
    creation is always the service's reception. And whether the backend's end comes before that creation."""
    by_backend = job["completed_at"] is not None and job["completed_at"] != job["updated_at"]
    created, completed = moment(job["created_at"]), moment(job["completed_at"])
    early = by_backend and created is not None and completed is not None and completed < created
    return {"completed_by_backend": by_backend, "completed_before_created": early}


def metadata_rows(metadata: dict[str, Any]) -> list[dict[str, Any]]:
    """The metadata as the page lists it: a time (a key in `timestamp` or `_at`) and a size (in `_bytes`) for
    people, the value as it arrived beside; anything else as text, JSON for what is not a string."""
    return [
        {
            "key": key,
            "text": value if isinstance(value, str) else json.dumps(value),
            "time": value if key.endswith(("timestamp", "_at")) and moment(value) else None,
            "size": value if key.endswith("_bytes") and type(value) is int else None,
        }
        for key, value in metadata.items()
    ]


def delivery(row: dict[str, Any]) -> dict[str, Any]:
    """A delivery as the page lists it: its outcome and reason in French (the stored words kept), its bodies
    indented."""
    return row | {
        "outcome_text": outcome(row["outcome"]),
        "reason_text": reason(row["reason"]),
        "body": pretty(row["body"]),
        "response_body": pretty(row["response_body"]),
    }


def age(when: str | None) -> str:
    """How long ago an ISO 8601 time was, as the page's script also writes it: '42 s', '5 min', '3 h', '2 j'."""
    then = moment(when)
    if then is None:
        return ""
    seconds = max(0, int((datetime.now(UTC) - then).total_seconds()))
    unit, size = next(((unit, size) for unit, size in AGE_UNITS if seconds >= size), ("s", 1))
    return f"{seconds // size} {unit}"


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def pretty(text: str | None) -> str:
    """A body as it arrived, indented when it is JSON, cut to MAX_BODY characters."""
    if not text:
        return ""
    with contextlib.suppress(ValueError, RecursionError):  # not JSON: shown as it arrived
        text = json.dumps(json.loads(text), indent=2, ensure_ascii=False)
    return text if len(text) <= MAX_BODY else text[:MAX_BODY] + "\n… (tronqué)"
