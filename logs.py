"""Logging set-up: the spec's emoji lines on stderr, one handler on the service's logger."""
import logging
import sys

LOGGER = "image_webhook"


def configure(level="INFO"):
    """Give the service's logger its stderr handler (once) and its level."""
    logger = logging.getLogger(LOGGER)
    if not any(getattr(h, "image_webhook", False) for h in logger.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.image_webhook = True
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        logger.addHandler(handler)
    logger.setLevel(level)
    return logger
