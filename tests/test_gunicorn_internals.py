"""The gunicorn internals the head-reading worker and the loggers build on are all in the pinned gunicorn."""

import gunicorn

from image_webhook.server import internals


def test_the_pinned_gunicorn_has_every_internal_the_edge_uses():
    """Every name of image_webhook.server.internals exists in the installed gunicorn (a missing one is named)."""
    assert internals.missing() == [], f"gunicorn {gunicorn.__version__} lacks: {internals.missing()}"


def test_a_missing_name_is_named():
    """A class attribute, an instance attribute no longer assigned and a module gunicorn lacks are each named."""
    gone = internals.missing(
        {"gunicorn.workers.gthread.ThreadWorker": ("accept", "take_head"), "gunicorn.no_such_module": ("x",)},
        {"gunicorn.workers.gthread.TConn.__init__": ("sock", "head_deadline")},
        {},
    )
    assert gone == [
        "gunicorn.workers.gthread.ThreadWorker.take_head",
        "gunicorn.no_such_module.x",
        "gunicorn.workers.gthread.TConn.__init__ (self.head_deadline = ...)",
    ]


def test_an_override_of_a_method_gunicorn_no_longer_has_is_named():
    """A method the worker defines that is neither gunicorn's nor listed as its own is named as missing."""
    overrides = {
        "image_webhook.server.worker.HeadReadingWorker": ("gunicorn.workers.gthread.ThreadWorker", frozenset())
    }
    gone = internals.missing({}, {}, overrides)
    assert "gunicorn.workers.gthread.ThreadWorker.read_head" in gone
    assert "gunicorn.workers.gthread.ThreadWorker.accept" not in gone
