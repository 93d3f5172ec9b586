"""What storage raises when it cannot answer: the HTTP surfaces answer it with a 503 and Retry-After."""

from __future__ import annotations

RETRY_AFTER = 5  # seconds the sender is asked to wait while a store is unavailable


class Unavailable(Exception):
    """A store did not answer in time (unreachable, locked, full, stalled): the request may be retried later."""

    message = "Stockage indisponible, réessayez plus tard"
    retry_after = RETRY_AFTER

    def __init__(self) -> None:
        super().__init__(self.message)


class DatabaseUnavailable(Unavailable):
    """The database did not answer within DB_TIMEOUT."""

    message = "Base de données indisponible, réessayez plus tard"


class StoreUnavailable(Unavailable):
    """Redis did not answer within its timeout."""

    message = "Stockage d'idempotence indisponible, réessayez plus tard"


class ImageStoreUnavailable(Unavailable):
    """The image store (a directory or S3) could not be written or read: the copy is tried again later.
    `detail` names the store and the cause for the logs and /readyz (never a credential)."""

    message = "Stockage des images indisponible, réessayez plus tard"

    def __init__(self, detail: str = "") -> None:
        super().__init__()
        self.detail = detail

    def __str__(self) -> str:
        return f"{self.message}: {self.detail}" if self.detail else self.message
