"""What intake refuses: a body or a parameter that is not what the service accepts (answered 400)."""

from __future__ import annotations

from ..domain.values import Outcome


class InvalidPayload(Exception):
    """A body that is not a notification the service accepts, or a bad parameter: an `error`, its `details`
    (each a path and a French message), and the `outcome` it is counted under."""

    def __init__(
        self, error: str, details: list[dict[str, str]] | None = None, *, outcome: Outcome = Outcome.INVALID_PAYLOAD
    ) -> None:
        super().__init__(error)
        self.error = error
        self.details = details
        self.outcome = outcome
