"""What receiving a notification means: the spec's log lines and the answers' bodies."""

from __future__ import annotations

import json
import logging
from typing import Any

from .logs import LOGGER, LazyJson

log = logging.getLogger(LOGGER)
DUPLICATE = {"success": True, "message": "Job déjà traité"}
DUPLICATE_BODY = json.dumps(DUPLICATE, ensure_ascii=False)  # as a delivery's stored answer


def log_payload(payload: dict[str, Any]) -> None:
    """📦: the summary of a valid payload."""
    if log.isEnabledFor(logging.INFO):
        data = payload.get("data")
        images = data.get("images") if isinstance(data, dict) else None
        summary = {
            "job_id": payload["job_id"],
            "status": payload["status"],
            "has_data": data is not None,
            "images_count": len(images) if isinstance(images, list) else 0,
        }
        log.info("📦 [Image Webhook] Payload reçu: %s", LazyJson(summary), extra={"event": "payload"})


def log_progress(payload: dict[str, Any], *, late: bool) -> None:
    """ℹ️: an intermediate status; `late` when its job is already further on (it changes nothing)."""
    job_id, status = payload["job_id"], payload["status"]
    if late:
        log.info(
            "ℹ️ [Image Webhook] Statut intermédiaire reçu après la fin du job (ignoré): %s %s",
            job_id,
            status,
            extra={"event": "late_progress"},
        )
    else:
        log.info(
            "ℹ️ [Image Webhook] Statut intermédiaire: %s %s (%s%%)",
            job_id,
            status,
            payload.get("progress", "?"),
            extra={"event": "progress"},
        )


def progress_answer(payload: dict[str, Any]) -> dict[str, Any]:
    """The answer to an intermediate status, late or not."""
    status = payload["status"]
    return {
        "success": True,
        "message": f"Statut intermédiaire reçu: {status}",
        "job_id": payload["job_id"],
        "status": status,
    }


def terminal_answer(payload: dict[str, Any], milliseconds: float) -> dict[str, Any]:
    """The answer to a processed completed or failed notification, with its processing time."""
    job_id = payload["job_id"]
    if payload["status"] == "failed":
        body = {"success": True, "message": "Échec de la génération enregistré", "job_id": job_id}
    else:
        count = len(payload["data"]["images"])
        body = {
            "success": True,
            "message": f"{count} image(s) générée(s) avec succès",
            "job_id": job_id,
            "images_count": count,
        }
    return body | {"processing_time_ms": milliseconds}


def log_terminal(payload: dict[str, Any]) -> None:
    """❌ for a failed job with its error; ✅ then one 💾 per image for a completed one."""
    job_id = payload["job_id"]
    if payload["status"] == "failed":
        error_message = payload.get("error_message") or payload.get("message") or "inconnue"
        log.error(
            "❌ [Image Webhook] Échec de la génération: %s",
            LazyJson({"job_id": job_id, "error_message": error_message}),
            extra={"event": "job_failed"},
        )
        return
    if not log.isEnabledFor(logging.INFO):
        return
    images = payload["data"]["images"]
    metadata = payload["data"].get("metadata") or {}
    log.info(
        "✅ [Image Webhook] Génération réussie: %s",
        LazyJson(
            {
                "images_count": len(images),
                "model": metadata.get("model_name"),
                "generation_time": metadata.get("generation_time_seconds"),
            }
        ),
        extra={"event": "job_completed"},
    )
    for image in images:
        log.info("💾 [Image Webhook] Images générées: %s", LazyJson(_image_summary(image)), extra={"event": "image"})


def _image_summary(image: dict[str, Any]) -> dict[str, Any]:
    size = image.get("size_bytes")
    return {
        "url": image["url"],
        "format": image.get("format"),
        "dimensions": image.get("dimensions"),
        "size_kb": round(size / 1024, 1) if size is not None else None,
    }


def ignore_job(payload: dict[str, Any]) -> None:
    """The default job handler: recording the job (in the database, when there is one) is the processing."""
