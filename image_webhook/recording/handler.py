"""The job handler: what processing a job means beyond recording it (a seam of create_app, none by default)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

JobHandler = Callable[[dict[str, Any]], object]


def ignore_job(payload: dict[str, Any]) -> None:
    """The default job handler: recording the job (in the database, when there is one) is the processing."""


class HandlerTimeout(Exception):
    """The job handler did not return within its bound: its job is not recorded, the sender retries."""


def bounded(handler: JobHandler, seconds: float) -> JobHandler:
    """`handler`, run in a thread of its own and waited for at most `seconds`: with a database it runs inside
    the transaction that records its job, where the database's write lock is held (on SQLite, for every worker
    of the machine), so its time is bounded like a database operation's. A handler that outlives the bound goes
    on in the background; its job is rolled back and answered 500, and the sender's retry calls it again."""
    if handler is ignore_job:
        return handler  # nothing to run: no thread

    def run_bounded(payload: dict[str, Any]) -> None:
        failure: list[BaseException] = []
        done = threading.Event()

        def run() -> None:
            try:
                handler(payload)
            except BaseException as exc:  # handed to the transaction, which rolls back
                failure.append(exc)
            finally:
                done.set()

        threading.Thread(target=run, name="job-handler", daemon=True).start()
        if not done.wait(seconds):
            raise HandlerTimeout(f"the job handler did not return within {seconds:g} s")
        if failure:
            raise failure[0]

    return run_bounded
