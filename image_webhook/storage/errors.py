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
