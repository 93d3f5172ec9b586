"""The stateless mode's recorder: the specification's window decides, in memory or in Redis; nothing is kept."""

from __future__ import annotations

from ..domain.notifications import Delivery, Notification
from ..domain.values import Outcome
from ..observability.context import elapsed_ms
from ..observability.metrics import Metrics
from ..storage.idempotence import IdempotenceStore, claimed
from . import Recorded, Tally, answers, journal
from .handler import JobHandler


class WindowRecorder:
    """A terminal notification is processed once within IDEMPOTENCE_WINDOW: its job id is claimed in the
    window (this process's memory, or Redis shared by every worker), the job handler runs in the request's
    thread while the claim is held, and an exception releases the claim so that the sender's retry is
    processed. Progress notifications are answered and logged. No job or delivery is kept."""

    keeps_records = False

    def __init__(self, jobs: IdempotenceStore, metrics: Metrics, handler: JobHandler) -> None:
        self.jobs = jobs
        self.handler = handler
        self.tally = Tally(metrics)

    @property
    def processed_jobs(self) -> int:
        return self.tally.count

    def record(self, notification: Notification, delivery: Delivery) -> Recorded:
        job_id = notification.job_id
        if not notification.status.terminal:
            journal.progress(notification, Outcome.INTERMEDIATE, late=self.jobs.seen(job_id))
            return Recorded(Outcome.INTERMEDIATE, answers.progress(notification))
        with claimed(self.jobs, job_id) as new:
            if not new:
                journal.duplicate(job_id)
                return Recorded(Outcome.DUPLICATE, answers.DUPLICATE)
            journal.terminal(notification)
            self.handler(notification.payload)
        return self.tally.processed(notification, answers.processed(notification, elapsed_ms()))

    def replayed(self, delivery: Delivery) -> Recorded:
        journal.replay(delivery.message_id)
        return Recorded(Outcome.DUPLICATE, answers.DUPLICATE)

    def refused(self, delivery: Delivery, *, outcome: Outcome | None, status: int, answer: str) -> None:
        """Nothing is kept in the stateless mode: the refusal is counted and logged."""

    def not_ready(self) -> str | None:
        return self.jobs.not_ready()

    def stop(self) -> None:
        """Nothing is queued."""
