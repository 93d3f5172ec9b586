"""The directory store: each image a file under one root, written beside its final name and renamed into place."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

from ..errors import ImageStoreUnavailable
from .keys import check_key

DIRECTORY_MODE = 0o750
FILE_MODE = 0o640
CHUNK = 1024 * 1024


class DirectoryStore:
    """Files under `root`, created on first use. A put writes a temporary file in the target's own directory
    (".<name>.<random>.tmp": a dot name is never a key), fsyncs it, renames it over the final name and fsyncs
    the directory: a reader, or a crash, sees the old file or the new one, never a part. The file is copied
    rather than hard-linked: a link saves ~3 ms on 3 MB (measured) against a download's seconds, and would
    share its inode (and mode) with the caller's temporary file, often on another filesystem anyway."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def put(self, key: str, path: Path, content_type: str) -> None:
        target = self._target(key)
        with open(path, "rb") as source:  # the caller's file: its errors are not the store's
            self._write(target, lambda out: shutil.copyfileobj(source, out, CHUNK))

    def put_bytes(self, key: str, data: bytes, content_type: str) -> None:
        self._write(self._target(key), lambda out: out.write(data))

    def exists(self, key: str) -> bool:
        with self._unavailable("lecture"):
            return self._target(key).is_file()

    def delete(self, key: str) -> None:
        target = self._target(key)
        with self._unavailable("suppression"):
            target.unlink(missing_ok=True)

    def locate(self, key: str) -> Path:
        return self._target(key)

    def check(self) -> None:
        with self._unavailable("écriture"):
            self._make_directories(self.root)
            probe = self.root / f".probe-{uuid.uuid4().hex}"
            probe.write_bytes(b"ok")
            probe.unlink()

    def describe(self) -> str:
        return f"dossier {self.root}"

    def _target(self, key: str) -> Path:
        return self.root / check_key(key)

    def _write(self, target: Path, write: Callable[[IO[bytes]], object]) -> None:
        with self._unavailable("écriture"):
            self._make_directories(target.parent)
            fd, name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
            try:
                with os.fdopen(fd, "wb") as out:
                    write(out)
                    out.flush()
                    os.fchmod(out.fileno(), FILE_MODE)
                    os.fsync(out.fileno())
                os.replace(name, target)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(name)
                raise
            _fsync_directory(target.parent)

    def _make_directories(self, directory: Path) -> None:
        """The root and the folders down to `directory`, each 0o750 (mkdir's `parents` ignores the mode)."""
        self.root.mkdir(mode=DIRECTORY_MODE, parents=True, exist_ok=True)
        folder = self.root
        for part in directory.relative_to(self.root).parts:
            folder = folder / part
            folder.mkdir(mode=DIRECTORY_MODE, exist_ok=True)

    @contextlib.contextmanager
    def _unavailable(self, action: str) -> Iterator[None]:
        try:
            yield
        except OSError as exc:
            raise ImageStoreUnavailable(f"{action} impossible dans {self.root}: {exc.strerror or exc}") from exc


def _fsync_directory(directory: Path) -> None:
    """Make the rename durable: the new directory entry is on disk once this returns."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
