"""What a downloaded file is: one of the four image formats, fully decodable, its size, how it differs from
what the notification claimed, and its thumbnail."""

from __future__ import annotations

import io
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image

from ..domain.images import FORMATS, Mismatch

# the largest image opened: 8192 x 8192, above any generator's output (upscales included). Decoding a PNG that
# large takes up to 4 bytes a pixel, 256 MiB, so 512 MiB with the copier's two threads: the bound is that memory
MAX_PIXELS = 8192 * 8192
# Pillow's own check, the second line: it warns above this and refuses above twice this, in Image.open
Image.MAX_IMAGE_PIXELS = MAX_PIXELS
THUMBNAIL = 256  # the thumbnail's longest side, in pixels
THUMBNAIL_QUALITY = 80
PILLOW_FORMATS = [name.upper() for name in FORMATS]  # the only decoders ever tried
# how each format starts: a file that does but cannot be decoded was cut off (the download is retried)
SIGNATURES = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"GIF87a", b"GIF89a")
DIMENSIONS = re.compile(r"\s*([0-9]+)\s*[x×]\s*([0-9]+)\s*", re.IGNORECASE)
ALIASES = {"jpg": "jpeg"}
# modes Pillow resizes by nearest neighbour only (palettes, bilevel): converted before the last resize, after
# a first one (converting them at full size would take 4 bytes a pixel)
SHRUNK_FIRST = {"P", "PA", "1"}

NOT_AN_IMAGE = "pas une image PNG, JPEG, WebP ou GIF"
TRUNCATED = "image tronquée"


@dataclass(frozen=True)
class Verified:
    """A file that is an image: its format (a key of FORMATS), its size, what the claims got wrong, its thumbnail."""

    format: str
    content_type: str
    width: int
    height: int
    mismatches: tuple[Mismatch, ...]
    thumbnail: bytes  # WebP, longest side at most THUMBNAIL pixels, never upscaled


class NotAnImage(Exception):
    """The file cannot be kept as an image: `permanent` when trying again cannot help (not an image, a bomb),
    not when it looks cut off in transit (truncated). Its message is French, for the job's record."""

    def __init__(self, message: str, *, permanent: bool) -> None:
        super().__init__(message)
        self.permanent = permanent


def verify(path: Path, size: int, claimed: Mapping[str, Any]) -> Verified:
    """Open and fully decode the file at `path` (`size` bytes) and compare it with the claims given among
    `format`, `dimensions` and `size_bytes`. Raises NotAnImage. Peak memory: the decoded first frame (4 bytes
    a pixel) and its thumbnail, measured at 6 MiB for a 1024 x 1024 RGB PNG, 10 MiB in RGBA, 66 MiB for
    4096 x 4096; JPEGs are decoded at a reduced scale (7 MiB for 4096 x 4096)."""
    try:
        with Image.open(path, formats=PILLOW_FORMATS) as im:
            width, height = im.size
            if width * height > MAX_PIXELS:  # before any decoding
                raise NotAnImage(_too_large(f"{width} × {height}"), permanent=True)
            fmt = str(im.format).lower()
            if fmt == "jpeg":  # decode at 1/2 to 1/8 scale, still reading every byte (truncation shows)
                im.draft(None, (2 * THUMBNAIL, 2 * THUMBNAIL))
            im.load()  # the whole first frame: a truncated file raises here (LOAD_TRUNCATED_IMAGES stays off)
            thumbnail = _thumbnail(im)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):  # the warning when warnings are errors
        raise NotAnImage(_too_large(f"plus de {MAX_PIXELS}"), permanent=True) from None
    except (FileNotFoundError, PermissionError):  # the caller's file is missing: not the image's fault
        raise
    except (OSError, SyntaxError, ValueError, EOFError) as exc:  # what Pillow's decoders raise on bad data
        message, permanent = _unreadable(path)
        raise NotAnImage(message, permanent=permanent) from exc
    mismatches = tuple(_mismatches(claimed, fmt, width, height, size))
    return Verified(fmt, FORMATS[fmt], width, height, mismatches, thumbnail)


def _thumbnail(im: Image.Image) -> bytes:
    """The first frame, shrunk to THUMBNAIL pixels on its longest side (aspect kept, never enlarged), as WebP."""
    if im.mode in SHRUNK_FIRST:  # to twice the size by nearest neighbour, then converted: cheap, and smooth
        im.thumbnail((2 * THUMBNAIL, 2 * THUMBNAIL))
        im = im.convert("RGBA" if im.has_transparency_data else "RGB")
    im.thumbnail((THUMBNAIL, THUMBNAIL))  # in place: the full-size pixels are freed
    if im.mode not in ("RGB", "RGBA"):  # CMYK, L, I;16...: what WebP encodes
        im = im.convert("RGBA" if im.has_transparency_data else "RGB")
    out = io.BytesIO()
    im.save(out, "WEBP", quality=THUMBNAIL_QUALITY)
    return out.getvalue()


def _unreadable(path: Path) -> tuple[str, bool]:
    """Why a file Pillow could not read is refused: cut off if it starts as an image does, else not one."""
    with open(path, "rb") as file:
        head = file.read(12)
    looks_like_image = head.startswith(SIGNATURES) or (head[:4] == b"RIFF" and head[8:12] == b"WEBP")
    return (TRUNCATED, False) if looks_like_image else (NOT_AN_IMAGE, True)


def _too_large(dimensions: str) -> str:
    return f"image trop grande: {dimensions} pixels (bombe de décompression)"


def _mismatches(claimed: Mapping[str, Any], fmt: str, width: int, height: int, size: int) -> list[Mismatch]:
    """The claims that are given and wrong; a claim that cannot be read is wrong."""
    found = []
    if (claim := claimed.get("format")) is not None:
        name = str(claim).strip().lower()
        if ALIASES.get(name, name) != fmt:
            found.append(Mismatch("format", claim, fmt))
    if (claim := claimed.get("dimensions")) is not None:
        parsed = DIMENSIONS.fullmatch(str(claim))
        if not parsed or (int(parsed[1]), int(parsed[2])) != (width, height):
            found.append(Mismatch("dimensions", claim, f"{width}x{height}"))
    if (claim := claimed.get("size_bytes")) is not None and claim != size:
        found.append(Mismatch("size_bytes", claim, size))
    return found
