"""The keys of the image stores: relative paths made of plain names, checked before any store uses one."""

from __future__ import annotations

import re

MAX_KEY_LENGTH = 512
# segments of letters, digits, `.`, `_` and `-`, never starting with a dot: no "..", no hidden file, and never
# the name of a store's own temporary or probe files (they start with a dot)
SAFE_KEY = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]*(?:/[A-Za-z0-9_-][A-Za-z0-9._-]*)*")


class UnsafeKey(ValueError):
    """A key that is not a safe relative path (absolute, `..`, empty segment, other characters): a caller's bug."""


def check_key(key: str) -> str:
    """`key` itself when it is a safe relative path, else UnsafeKey."""
    if len(key) > MAX_KEY_LENGTH or not SAFE_KEY.fullmatch(key):
        raise UnsafeKey(f"unsafe image store key: {key!r}")
    return key
