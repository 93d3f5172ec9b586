"""The default recorder: the database decides each notification in the transaction that keeps it."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from functools import partial
from typing import Any

from ..domain.notifications import Delivery, Notification
from ..domain.values import Outcome
from ..observability.context import request_clock
from ..observability.metrics import Metrics
from ..storage.database import Database, deliveries, jobs
from ..storage.errors import Unavailable
from ..storage.idempotence import IdempotenceStore
from . import Recorded, Tally, answers, journal
from .handler import JobHandler

ANSWER_KEPT = 4096  # characters of a refused delivery's answer kept


class DatabaseRecorder:
    """Every notification is decided and written in one transaction of the group commit: the job's row, its
    counters and its delivery; the answer leaves after the commit. The job handler runs inside that
    transaction (an exception rolls the job back, and the retry is processed), bounded by DB_TIMEOUT. The
    window (memory or Redis) is only a cache of the jobs completed lately: it answers their duplicates
    without waiting for the database. Every authenticated delivery is kept, refused ones included."""

    keeps_records = True

    def __init__(
        self,
        db: Database,
        cache: IdempotenceStore,
        metrics: Metrics,
        handler: JobHandler,
        *,
        on_images: Callable[[], object] = lambda: None,
    ) -> None:
        self.db = db
        self.on_images = on_images  # a completed job's copies are queued: the copiers look at once
        self.cache = cache
        self.handler = handler
        self.tally = Tally(metrics)

    @property
    def processed_jobs(self) -> int:
        return self.tally.count

    def record(self, notification: Notification, delivery: Delivery) -> Recorded:
        job_id = notification.job_id
        if notification.status.terminal and self.cache.seen(job_id):  # the fast path: completed lately
            journal.duplicate(job_id)
            jobs.count_duplicate(self.db, delivery, answers.DUPLICATE_TEXT)
            return Recorded(Outcome.DUPLICATE, answers.DUPLICATE)
        answer = partial(_answer, notification, request_clock())
        decision, body = jobs.record(self.db, notification, delivery, answer=answer, on_job=self.handler)
        if decision.completed:  # the fast path learns every completed job it meets, processed here or not
            with contextlib.suppress(Unavailable):  # it is a cache: the record is on disk
                self.cache.claim(job_id)
        if decision.replay:
            journal.replay(delivery.message_id)
        elif decision.outcome is Outcome.DUPLICATE:
            journal.duplicate(job_id)
            if decision.after_completed:
                journal.failed_after_completed(job_id)
        elif decision.outcome is not Outcome.PROCESSED:  # logged here, in the request's thread, once committed
            journal.progress(
                notification, decision.outcome, late=decision.outcome is Outcome.STALE, job_status=decision.current
            )
        else:
            if decision.replaced_failed:
                journal.completed_after_failed(job_id)
            if notification.images:
                self.on_images()
            journal.terminal(notification, Outcome.PROCESSED)
            return self.tally.processed(notification, body)
        return Recorded(decision.outcome, body)

    def replayed(self, delivery: Delivery) -> Recorded:
        """Kept as a duplicate, as another worker's database would keep it."""
        journal.replay(delivery.message_id)
        deliveries.insert_later(
            self.db, delivery, outcome=Outcome.DUPLICATE.stored, status=200, answer=answers.DUPLICATE_TEXT
        )
        return Recorded(Outcome.DUPLICATE, answers.DUPLICATE)

    def refused(self, delivery: Delivery, *, outcome: Outcome | None, status: int, answer: str) -> None:
        reason = outcome.value if outcome is not None else None  # its body is cut in deliveries.insert
        kept = "unavailable" if outcome is Outcome.UNAVAILABLE else "error" if status >= 500 else "rejected"
        answer = answer[:ANSWER_KEPT]
        deliveries.insert_later(self.db, delivery, outcome=kept, status=status, answer=answer, reason=reason)

    def not_ready(self) -> str | None:
        return self.db.not_ready() or self.cache.not_ready()

    def stop(self) -> None:
        self.db.close()  # commits what is queued


def _answer(notification: Notification, elapsed: Callable[[], float], decision: jobs.Decision) -> dict[str, Any]:
    """The answer of a decision, made inside its transaction (a processed one's time includes the decision)."""
    if decision.outcome is Outcome.DUPLICATE:
        return answers.DUPLICATE
    if decision.outcome is not Outcome.PROCESSED:
        return answers.progress(notification)
    return answers.processed(notification, elapsed())
