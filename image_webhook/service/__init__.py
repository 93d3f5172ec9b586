"""The service: what create_app() sets up once per worker process, and how a request reaches it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from flask import current_app

from ..storage.errors import ImageStoreUnavailable

if TYPE_CHECKING:
    from ..copying.copier import Copiers
    from ..domain.settings import Settings
    from ..intake.auth import Authenticator, BasicUsers, BearerTokens
    from ..intake.body import BodyDeadlines
    from ..intake.validation import PayloadValidator
    from ..observability.metrics import Metrics
    from ..recording import Recorder
    from ..storage.database import Database
    from ..storage.database.retention import Retention
    from ..storage.idempotence import IdempotenceStore
    from ..storage.images import ImageStore
    from .maintenance import MaintenanceThread

EXTENSION = "image_webhook"  # the key of the Service in app.extensions
COPIES_GRACE = 20  # seconds the copies under way get to end at a stop, within gunicorn's graceful_timeout (30)


@dataclass(frozen=True)
class Service:
    """Per-application state, set up once by create_app() in the process that serves the requests."""

    settings: Settings
    auth: Authenticator  # who may post notifications
    readers: BearerTokens  # who may read /api/jobs
    page_users: BasicUsers  # who may open the /jobs page
    validator: PayloadValidator
    recorder: Recorder  # how a valid notification is decided and recorded: the database, or the window alone
    messages: IdempotenceStore  # signed messages (webhook-id) seen in the window: replays
    deadlines: BodyDeadlines
    metrics: Metrics
    openapi: dict[str, Any]
    db: Database | None  # the records the read API, the page and the commands read; None in the stateless mode
    maintenance: MaintenanceThread | None  # expiry of the memory window, retention of the records
    retention: Retention | None  # the records' retention pass (run by the maintenance thread); None stateless
    images: ImageStore | None  # where the copies of the images are kept; None in the stateless mode
    copiers: Copiers | None  # started where the service serves (gunicorn's workers) or by `images work`

    def start(self) -> None:
        """Start the background threads (after the fork: gunicorn builds the app in each worker)."""
        if self.maintenance is not None:
            self.maintenance.start()
        self.deadlines.start()

    def not_ready(self) -> str | None:
        """Why the service cannot do its work, or None."""
        if self.maintenance is not None and not self.maintenance.is_alive():
            return "le nettoyage des jobs traités ne tourne pas"
        if self.images is not None:
            try:
                self.images.check()
            except ImageStoreUnavailable:  # what every store raises when it cannot be written
                return "le stockage des images n'accepte pas d'écriture"
        return self.recorder.not_ready()

    def stop(self) -> None:
        """Stop the background threads (tests, and gunicorn's worker exit); commit what is queued."""
        if self.maintenance is not None:
            self.maintenance.stop()
        if self.retention is not None:
            self.retention.close()  # its lease: another worker takes the next pass
        if self.copiers is not None:
            self.copiers.stop(COPIES_GRACE)
        self.deadlines.stop()
        self.recorder.stop()


def service() -> Service:
    """The Service of the current application."""
    return current_app.extensions[EXTENSION]
