"""A test application whose job handler takes a while (graceful shutdown tests)."""

import os
import time

from image_webhook import create_app


def create():
    delay = float(os.environ.get("SLOW_JOB_SECONDS", "2"))
    return create_app(job_handler=lambda payload: time.sleep(delay))
