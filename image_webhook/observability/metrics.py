"""Prometheus metrics (prometheus-client): what the spec's Monitoring section asks to watch.

Every label value comes from a closed set, never from a job id or a raw header, so a hostile sender
cannot grow the number of series. With several worker processes (PROMETHEUS_MULTIPROC_DIR set before
they start) prometheus-client's multiprocess mode adds up the workers' values.
"""

import os
import re
import threading

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily

from ..domain.notifications import Notification
from ..domain.values import Outcome, Status

# the outcomes a webhook answer is counted under (the read API's parameters are not the webhook's)
OUTCOMES = frozenset(Outcome) - {Outcome.INVALID_PARAMETER}
MAX_MODELS = 20  # distinct model_name label values per process; later ones count as "other"
MODEL_NAME = re.compile(r"[A-Za-z0-9._:/-]{1,64}")
# sub-millisecond work: the service's own processing time, in seconds
PROCESSING_BUCKETS = (0.0001, 0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 2.5)
GENERATION_BUCKETS = (1, 2.5, 5, 10, 20, 30, 60, 120, 300, 600)
COMMIT_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5)
COPY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


def multiprocess_mode():
    return bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))


class Metrics:
    """The service's metrics, in a registry of their own (one per application)."""

    def __init__(self):
        self.registry = CollectorRegistry()
        r = self.registry
        self.notifications = Counter(
            "image_webhook_notifications",
            "Notifications received, by status and outcome",
            ["status", "outcome"],
            registry=r,
        )
        self.processing = Histogram(
            "image_webhook_processing_seconds",
            "Time the service spent on a processed notification (processing_time_ms)",
            ["status"],
            buckets=PROCESSING_BUCKETS,
            registry=r,
        )
        self.images = Counter("image_webhook_images", "Images of completed jobs", ["model"], registry=r)
        self.image_bytes = Counter("image_webhook_image_bytes", "Sum of the images' size_bytes", ["model"], registry=r)
        self.generation = Histogram(
            "image_webhook_generation_seconds",
            "Generation time reported by the backend",
            ["model"],
            buckets=GENERATION_BUCKETS,
            registry=r,
        )
        self.entries = Gauge(
            "image_webhook_idempotence_entries",
            "Jobs remembered by the idempotence store",
            multiprocess_mode="livesum",
            registry=r,
        )
        self.evictions = Counter(
            "image_webhook_idempotence_evictions",
            "Jobs forgotten before the end of the window (IDEMPOTENCE_MAX_ENTRIES reached)",
            registry=r,
        )
        self.expired = Counter("image_webhook_idempotence_expired", "Jobs removed by the cleanup", registry=r)
        self.last_cleanup = Gauge(
            "image_webhook_idempotence_last_cleanup_timestamp_seconds",
            "When the cleanup last ran (Unix time)",
            multiprocess_mode="max",
            registry=r,
        )
        self.commit = Histogram(
            "image_webhook_database_commit_seconds",
            "Duration of a group commit (every write queued meanwhile, one transaction)",
            buckets=COMMIT_BUCKETS,
            registry=r,
        )
        self.writes = Counter("image_webhook_database_writes", "Writes committed to the database", registry=r)
        self.database_errors = Counter(
            "image_webhook_database_errors",
            "Writes lost to a database that did not answer (unreachable, locked past its timeout, full)",
            registry=r,
        )
        self.copies = Counter("image_webhook_copies", "Image copy attempts, by outcome", ["outcome"], registry=r)
        self.copied_bytes = Counter("image_webhook_copied_bytes", "Bytes of the images stored", registry=r)
        self.copy_seconds = Histogram(
            "image_webhook_copy_seconds",
            "Time of one copy attempt: fetch, verification, thumbnail, store",
            buckets=COPY_BUCKETS,
            registry=r,
        )
        self.copy_queue = None  # () -> (tasks queued, age of the oldest in seconds), read from the database
        self._models = set()
        self._models_lock = threading.Lock()

    def count(self, status: Status | None, outcome: Outcome | None) -> None:
        """One notification answered; labels stay in their closed sets ('unknown' status, 'error' outcome)."""
        label = outcome if outcome in OUTCOMES else Outcome.ERROR
        self.notifications.labels(status.value if status else "unknown", label.value).inc()

    def processed(self, notification: Notification, seconds: float) -> None:
        """A terminal notification processed: its time and, for completed, its images and model."""
        self.processing.labels(notification.status.value).observe(seconds)
        if notification.status is not Status.COMPLETED:
            return
        images, metadata = notification.images, notification.metadata
        model = self._model_label(metadata.get("model_name"))
        self.images.labels(model).inc(len(images))
        self.image_bytes.labels(model).inc(sum(image.get("size_bytes") or 0 for image in images))
        if metadata.get("generation_time_seconds") is not None:
            self.generation.labels(model).observe(metadata["generation_time_seconds"])

    def _model_label(self, name):
        if not isinstance(name, str) or not MODEL_NAME.fullmatch(name):
            return "other"
        if name in self._models:
            return name
        with self._models_lock:
            if len(self._models) < MAX_MODELS:
                self._models.add(name)
                return name
        return "other"

    def count_entries(self, entries):
        """The entries gauge reads `entries()` at each scrape (one process only: the files of the
        multiprocess mode cannot call a function)."""
        if not multiprocess_mode():
            self.entries.set_function(entries)

    def committed(self, writes, seconds):
        """A group commit: its duration, and how many writes it held."""
        self.commit.observe(seconds)
        self.writes.inc(writes)

    def cleanup_ran(self, removed, at):
        self.expired.inc(removed)
        self.last_cleanup.set(at)

    def copied(self, outcome, seconds, size=0):
        self.copies.labels(outcome).inc()
        self.copy_seconds.observe(seconds)
        self.copied_bytes.inc(size)

    def exposition(self):
        """The text format of every metric, added up across workers in multiprocess mode; the copy queue's
        gauges read from the database at the scrape (the same value whichever worker answers)."""
        registry = self.registry
        if multiprocess_mode():
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
        text = generate_latest(registry)
        if self.copy_queue is not None:
            text += generate_latest(_QueueRegistry(self.copy_queue))
        return text, CONTENT_TYPE_LATEST


class _QueueRegistry:
    """The copy queue's two gauges, as a registry generate_latest() reads."""

    def __init__(self, read):
        self.read = read

    def collect(self):
        try:
            queued, oldest = self.read()
        except Exception:  # the database does not answer: /metrics still shows the rest
            return
        yield GaugeMetricFamily("image_webhook_copy_tasks_queued", "Image copies waiting for a copier", value=queued)
        yield GaugeMetricFamily(
            "image_webhook_copy_oldest_queued_seconds",
            "Age of the oldest image copy waiting for a copier (0 when none waits)",
            value=oldest or 0,
        )
