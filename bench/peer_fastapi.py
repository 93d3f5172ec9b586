"""A benchmark peer, not part of the service: the specification's contract as a user would write it in FastAPI.

POST /api/webhooks/image-completion with pydantic models, the statuses, the French answers and the five emoji
log lines of a completed job, and the idempotence window as a dict of processed job ids (5 minutes), on one
uvicorn process: what a user would pick instead of Flask and gunicorn, durable nowhere (a restart forgets the
window, nothing is on disk). `make bench` serves it with
`python -m uvicorn bench.peer_fastapi:app --port PORT --log-level warning --no-access-log`.
GET /healthz answers 200 so the bench's start-up wait works as for gunicorn.
"""

import logging
import os
import sys
import time
from typing import Literal

from fastapi import FastAPI, Header, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel

WINDOW = 300.0  # seconds: the specification's idempotence window
SECRET = os.environ.get("WEBHOOK_SECRET", "")
PRODUCTION = os.environ.get("APP_ENV", os.environ.get("NODE_ENV", "development")) == "production"
INTERMEDIATE = {"pending", "initializing", "generating", "saving"}

logging.basicConfig(stream=sys.stdout, level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
log = logging.getLogger("peer")


class Image(BaseModel):
    url: str
    format: str | None = None
    dimensions: str | None = None
    size_bytes: int | None = None
    file_path: str | None = None
    description: str | None = None


class Metadata(BaseModel):
    model_name: str | None = None
    version: str | None = None
    generation_time_seconds: float | None = None
    input_tokens: int | None = None
    output_size_bytes: int | None = None
    timestamp: str | None = None


class Data(BaseModel):
    job_id: str | None = None
    images: list[Image] | None = None
    metadata: Metadata | None = None
    status: str | None = None
    generated_at: str | None = None


class Notification(BaseModel):
    job_id: str
    status: Literal["pending", "initializing", "generating", "saving", "completed", "failed"]
    timestamp: str | None = None
    environment: str | None = None
    data: Data | None = None
    progress: int | None = None
    message: str | None = None
    error_message: str | None = None


app = FastAPI()
processed: dict[str, float] = {}  # job id: when it was processed
last_cleanup = time.monotonic()


@app.exception_handler(RequestValidationError)
async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
    log.info("❌ [Image Webhook] Payload invalide")
    return JSONResponse({"error": "Payload invalide"}, status_code=400)


@app.get("/healthz")
async def healthz() -> dict:
    return {"status": "ok"}


def seen(job_id: str, now: float) -> bool:
    """Whether the job was processed within the window; the dict is swept every 5 minutes."""
    global last_cleanup
    if now - last_cleanup > WINDOW:
        for key in [k for k, t in processed.items() if now - t > WINDOW]:
            del processed[key]
        last_cleanup = now
    at = processed.get(job_id)
    return at is not None and now - at <= WINDOW


@app.post("/api/webhooks/image-completion")
async def image_completion(
    notification: Notification, x_webhook_secret: str | None = Header(default=None)
) -> JSONResponse:
    started = time.perf_counter()
    log.info("🎨 [Image Webhook] Réception d'un webhook de génération d'images...")
    if PRODUCTION and x_webhook_secret != SECRET:
        log.info("❌ [Image Webhook] Secret invalide")
        return JSONResponse({"error": "Unauthorized"}, status_code=401)
    images = notification.data.images if notification.data and notification.data.images else []
    log.info(
        "📦 [Image Webhook] Payload reçu: %s",
        {
            "job_id": notification.job_id,
            "status": notification.status,
            "has_data": notification.data is not None,
            "images_count": len(images),
        },
    )
    if notification.status in INTERMEDIATE:
        log.info("ℹ️ [Image Webhook] Statut intermédiaire: %s", notification.status)
        return JSONResponse(
            {
                "success": True,
                "message": f"Statut intermédiaire reçu: {notification.status}",
                "job_id": notification.job_id,
                "status": notification.status,
            }
        )
    now = time.monotonic()
    if seen(notification.job_id, now):
        log.info("⚠️ [Image Webhook] Job déjà traité: %s", notification.job_id)
        return JSONResponse({"success": True, "message": "Job déjà traité"})
    if notification.status == "failed":
        processed[notification.job_id] = now
        log.info("❌ [Image Webhook] Échec de la génération: %s", notification.error_message or "inconnue")
        body = {"success": True, "message": "Échec de la génération enregistré", "job_id": notification.job_id}
    else:
        if not images:
            log.info("❌ [Image Webhook] Données d'images manquantes")
            return JSONResponse({"error": "Données d'images manquantes"}, status_code=400)
        processed[notification.job_id] = now
        metadata = notification.data.metadata if notification.data else None
        log.info(
            "✅ [Image Webhook] Génération réussie: %s",
            {
                "images_count": len(images),
                "model": metadata.model_name if metadata else None,
                "generation_time": metadata.generation_time_seconds if metadata else None,
            },
        )
        log.info(
            "💾 [Image Webhook] Images générées: %s",
            [
                {
                    "url": i.url,
                    "format": i.format,
                    "dimensions": i.dimensions,
                    "size_kb": round(i.size_bytes / 1024) if i.size_bytes else None,
                }
                for i in images
            ],
        )
        body = {
            "success": True,
            "message": f"{len(images)} image(s) générée(s) avec succès",
            "job_id": notification.job_id,
            "images_count": len(images),
        }
    milliseconds = round((time.perf_counter() - started) * 1000, 3)
    log.info("⏱️ [Image Webhook] Traitement terminé en %sms", milliseconds)
    return JSONResponse(body | {"processing_time_ms": milliseconds})
