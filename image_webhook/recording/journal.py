"""The specification's log lines of a notification: 📦 on arrival, then what was done with it."""

from __future__ import annotations

import logging
from typing import Any

from ..domain.notifications import Notification
from ..domain.values import Status
from ..observability.logs import LOGGER, LazyJson

log = logging.getLogger(LOGGER)


def payload(notification: Notification) -> None:
    """📦: the summary of a valid payload."""
    if log.isEnabledFor(logging.INFO):
        data = notification.payload.get("data")
        images = data.get("images") if isinstance(data, dict) else None
        summary = {
            "job_id": notification.job_id,
            "status": notification.status.value,
            "has_data": data is not None,
            "images_count": len(images) if isinstance(images, list) else 0,
        }
        log.info("📦 [Image Webhook] Payload reçu: %s", LazyJson(summary), extra={"event": "payload"})


def progress(notification: Notification, *, late: bool) -> None:
    """ℹ️: an intermediate status; `late` when its job is already further on (it changes nothing)."""
    job_id, status = notification.job_id, notification.status.value
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
            notification.payload.get("progress", "?"),
            extra={"event": "progress"},
        )


def terminal(notification: Notification) -> None:
    """❌ for a failed job with its error; ✅ then one 💾 per image for a completed one."""
    payload, job_id = notification.payload, notification.job_id
    if notification.status is Status.FAILED:
        error_message = payload.get("error_message") or payload.get("message") or "inconnue"
        log.error(
            "❌ [Image Webhook] Échec de la génération: %s",
            LazyJson({"job_id": job_id, "error_message": error_message}),
            extra={"event": "job_failed"},
        )
        return
    if not log.isEnabledFor(logging.INFO):
        return
    images, metadata = notification.images, notification.metadata
    summary = {
        "images_count": len(images),
        "model": metadata.get("model_name"),
        "generation_time": metadata.get("generation_time_seconds"),
    }
    log.info("✅ [Image Webhook] Génération réussie: %s", LazyJson(summary), extra={"event": "job_completed"})
    for image in images:
        log.info("💾 [Image Webhook] Images générées: %s", LazyJson(_image_summary(image)), extra={"event": "image"})


def processed(milliseconds: float) -> None:
    """⏱️: the time a processed notification took."""
    log.info(
        "⏱️ [Image Webhook] Traitement terminé en %sms",
        milliseconds,
        extra={"event": "processed", "processing_time_ms": milliseconds},
    )


def duplicate(job_id: str) -> None:
    log.warning("⚠️ [Image Webhook] Job déjà traité: %s", job_id, extra={"event": "duplicate"})


def replay(message_id: str | None) -> None:
    log.warning("⚠️ [Image Webhook] Message signé rejoué: %s", message_id, extra={"event": "replay"})


def failed_after_completed(job_id: str) -> None:
    log.warning(
        "⚠️ [Image Webhook] Échec reçu après la réussite du job (ignoré): %s",
        job_id,
        extra={"event": "failed_after_completed"},
    )


def completed_after_failed(job_id: str) -> None:
    log.warning(
        "⚠️ [Image Webhook] Réussite reçue après un échec: le job est remplacé: %s",
        job_id,
        extra={"event": "completed_after_failed"},
    )


def _image_summary(image: dict[str, Any]) -> dict[str, Any]:
    size = image.get("size_bytes")
    return {
        "url": image["url"],
        "format": image.get("format"),
        "dimensions": image.get("dimensions"),
        "size_kb": round(size / 1024, 1) if size is not None else None,
    }
