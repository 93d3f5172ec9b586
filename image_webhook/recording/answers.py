"""The bodies of the webhook's 200 answers, as the specification words them."""

from __future__ import annotations

import json
from typing import Any

from ..domain.notifications import Notification
from ..domain.values import Status

DUPLICATE = {"success": True, "message": "Job déjà traité"}
DUPLICATE_TEXT = json.dumps(DUPLICATE, ensure_ascii=False)  # as a delivery's stored answer


def progress(notification: Notification) -> dict[str, Any]:
    """The answer to an intermediate status, late or not."""
    status = notification.status.value
    return {
        "success": True,
        "message": f"Statut intermédiaire reçu: {status}",
        "job_id": notification.job_id,
        "status": status,
    }


def processed(notification: Notification, milliseconds: float) -> dict[str, Any]:
    """The answer to a processed completed or failed notification, with its processing time."""
    job_id = notification.job_id
    if notification.status is Status.FAILED:
        body = {"success": True, "message": "Échec de la génération enregistré", "job_id": job_id}
    else:
        count = len(notification.images)
        body = {
            "success": True,
            "message": f"{count} image(s) générée(s) avec succès",
            "job_id": job_id,
            "images_count": count,
        }
    return body | {"processing_time_ms": milliseconds}
