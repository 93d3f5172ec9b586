"""What receiving a notification means: the spec's log lines, the answer, and the job handler."""

import logging

from .logs import LOGGER, LazyJson

log = logging.getLogger(LOGGER)


def log_payload(payload):
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


def acknowledge_progress(payload, *, late):
    """ℹ️: an intermediate status is acknowledged, never processed; `late` if its job already ended."""
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
    return {"success": True, "message": f"Statut intermédiaire reçu: {status}", "job_id": job_id, "status": status}


def process_terminal(payload, on_job):
    """Process a completed or failed job (logs, then `on_job(payload)`); return the answer's body."""
    job_id = payload["job_id"]
    if payload["status"] == "failed":
        error_message = payload.get("error_message") or payload.get("message") or "inconnue"
        log.error(
            "❌ [Image Webhook] Échec de la génération: %s",
            LazyJson({"job_id": job_id, "error_message": error_message}),
            extra={"event": "job_failed"},
        )
        on_job(payload)
        return {"success": True, "message": "Échec de la génération enregistré", "job_id": job_id}
    images = payload["data"]["images"]
    if log.isEnabledFor(logging.INFO):
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
            log.info(
                "💾 [Image Webhook] Images générées: %s", LazyJson(_image_summary(image)), extra={"event": "image"}
            )
    on_job(payload)
    return {
        "success": True,
        "message": f"{len(images)} image(s) générée(s) avec succès",
        "job_id": job_id,
        "images_count": len(images),
    }


def _image_summary(image):
    size = image.get("size_bytes")
    return {
        "url": image["url"],
        "format": image.get("format"),
        "dimensions": image.get("dimensions"),
        "size_kb": round(size / 1024, 1) if size is not None else None,
    }


def ignore_job(payload):
    """The default job handler: the spec's service only logs (a database write would go here)."""
