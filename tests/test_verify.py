"""verify(): real images made with Pillow, lying claims, files that are not images, truncated ones, bombs."""

import io
import resource
import struct
import subprocess
import sys
import zlib

import pytest
from PIL import Image

from image_webhook.copying.verify import MAX_PIXELS, THUMBNAIL, NotAnImage, verify
from image_webhook.domain.images import Mismatch
from tests.servers import ROOT


def save(tmp_path, image, fmt, name=None, **options):
    """Write `image` as `fmt`; return its path and size."""
    path = tmp_path / (name or f"image.{fmt.lower()}")
    image.save(path, fmt, **options)
    return path, path.stat().st_size


def noise(size, mode="RGB"):
    return Image.effect_noise(size, 64).convert(mode)


def thumbnail_of(verified):
    with Image.open(io.BytesIO(verified.thumbnail)) as thumb:
        thumb.load()
        return thumb.format, thumb.size, thumb.mode


CASES = [  # (image, format to save, expected format, content type)
    (lambda: noise((640, 480)), "PNG", "png", "image/png"),
    (lambda: noise((640, 480)), "JPEG", "jpeg", "image/jpeg"),
    (lambda: noise((640, 480)), "WEBP", "webp", "image/webp"),
    (lambda: noise((640, 480)), "GIF", "gif", "image/gif"),
    (lambda: noise((640, 480), "RGBA"), "PNG", "png", "image/png"),
    (lambda: noise((640, 480)).convert("P", palette=Image.Palette.ADAPTIVE), "PNG", "png", "image/png"),
    (lambda: noise((640, 480), "CMYK"), "JPEG", "jpeg", "image/jpeg"),
    (lambda: noise((640, 480), "L"), "PNG", "png", "image/png"),
    (lambda: noise((640, 480), "LA"), "PNG", "png", "image/png"),
]


@pytest.mark.parametrize(("make", "fmt", "expected", "content_type"), CASES)
def test_each_format_and_mode(tmp_path, make, fmt, expected, content_type):
    """Each accepted format and colour mode is recognised with its size, and gets a WebP thumbnail 256 x 192."""
    path, size = save(tmp_path, make(), fmt)
    verified = verify(path, size, {})
    assert (verified.format, verified.content_type) == (expected, content_type)
    assert (verified.width, verified.height, verified.mismatches) == (640, 480, ())
    assert thumbnail_of(verified)[:2] == ("WEBP", (THUMBNAIL, 192))


def test_thumbnail_keeps_transparency_and_aspect(tmp_path):
    """A transparent PNG's thumbnail keeps its alpha; a tall image's keeps its aspect, its longest side 256."""
    image = noise((300, 1200), "RGBA")
    image.putalpha(Image.linear_gradient("L").resize((300, 1200)))
    path, size = save(tmp_path, image, "PNG")
    assert thumbnail_of(verify(path, size, {})) == ("WEBP", (64, 256), "RGBA")


def test_small_image_is_not_upscaled(tmp_path):
    """A 100 x 50 image's thumbnail stays 100 x 50."""
    path, size = save(tmp_path, noise((100, 50)), "PNG")
    assert thumbnail_of(verify(path, size, {}))[:2] == ("WEBP", (100, 50))


def test_large_jpeg_is_decoded_reduced(tmp_path):
    """A 4000 x 3000 JPEG gets its real dimensions and a 256 x 192 thumbnail (decoded at a reduced scale)."""
    path, size = save(tmp_path, Image.new("RGB", (4000, 3000), "teal"), "JPEG")
    verified = verify(path, size, {"dimensions": "4000x3000"})
    assert (verified.width, verified.height, verified.mismatches) == (4000, 3000, ())
    assert thumbnail_of(verified)[:2] == ("WEBP", (256, 192))


@pytest.mark.parametrize("fmt", ["GIF", "WEBP"])
def test_animation_gives_its_first_frame(tmp_path, fmt):
    """An animated GIF or WebP is verified by its first frame: the thumbnail is that frame (red, not blue)."""
    frames = [Image.new("RGB", (200, 100), colour) for colour in ("red", "blue", "green")]
    path, size = save(tmp_path, frames[0], fmt, save_all=True, append_images=frames[1:], duration=100, loop=0)
    verified = verify(path, size, {"format": fmt, "dimensions": "200x100", "size_bytes": size})
    assert (verified.width, verified.height, verified.mismatches) == (200, 100, ())
    with Image.open(io.BytesIO(verified.thumbnail)) as thumb:
        red, green, blue = thumb.convert("RGB").getpixel((50, 25))
    assert red > 200 and green < 60 and blue < 60


@pytest.mark.parametrize(
    "claimed",
    [
        {"format": "PNG", "dimensions": "640x480"},
        {"format": "png", "dimensions": "640×480"},
        {"format": " Png ", "dimensions": "640 x 480"},
        {"dimensions": "640X480"},
        {},
    ],
)
def test_claims_that_hold(tmp_path, claimed):
    """Claims written in any of the usual ways, or absent, give no mismatch."""
    path, size = save(tmp_path, noise((640, 480)), "PNG")
    assert verify(path, size, {**claimed, "size_bytes": size}).mismatches == ()


def test_jpg_is_jpeg(tmp_path):
    """A claimed format "JPG" matches a JPEG file."""
    path, size = save(tmp_path, noise((64, 64)), "JPEG")
    assert verify(path, size, {"format": "JPG"}).mismatches == ()


def test_claims_that_lie(tmp_path):
    """Each wrong claim is a mismatch with what was claimed and what the file is; a true one is not."""
    path, size = save(tmp_path, noise((640, 480)), "JPEG")
    claimed = {"format": "PNG", "dimensions": "1024x1024", "size_bytes": size + 1, "url": "https://x/y.png"}
    assert verify(path, size, claimed).mismatches == (
        Mismatch("format", "PNG", "jpeg"),
        Mismatch("dimensions", "1024x1024", "640x480"),
        Mismatch("size_bytes", size + 1, size),
    )


@pytest.mark.parametrize("dimensions", ["1024", "big", "1024x", "x1024", "-1x2", "1024x1024x3", ""])
def test_unreadable_dimensions_are_a_mismatch(tmp_path, dimensions):
    """A dimensions claim that cannot be read is a mismatch, not an error."""
    path, size = save(tmp_path, noise((64, 64)), "PNG")
    assert verify(path, size, {"dimensions": dimensions}).mismatches == (Mismatch("dimensions", dimensions, "64x64"),)


@pytest.mark.parametrize(
    "content",
    [b"<!doctype html><html><body>404 Not Found</body></html>", b"", b'{"error": "expired"}', b"\x00" * 4096],
)
def test_not_an_image_is_permanent(tmp_path, content):
    """An HTML page, an empty file, JSON or zeros are not an image, for good."""
    path = tmp_path / "page.png"
    path.write_bytes(content)
    with pytest.raises(NotAnImage) as raised:
        verify(path, len(content), {"format": "PNG"})
    assert (str(raised.value), raised.value.permanent) == ("pas une image PNG, JPEG, WebP ou GIF", True)


@pytest.mark.parametrize("fmt", ["TIFF", "BMP", "ICO", "PPM"])
def test_other_formats_are_refused(tmp_path, fmt):
    """A real image in a format that is not accepted (TIFF, BMP...) is refused for good, never decoded."""
    path, size = save(tmp_path, noise((64, 64)), fmt)
    with pytest.raises(NotAnImage, match="pas une image") as raised:
        verify(path, size, {})
    assert raised.value.permanent


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "GIF", "WEBP"])
@pytest.mark.parametrize("kept", [0.5, 0.9])
def test_truncated_image_is_retried(tmp_path, fmt, kept):
    """A file cut off part-way (a transfer broken) is "image tronquée", not permanent: it is fetched again."""
    path, _ = save(tmp_path, noise((512, 512)), fmt)
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * kept)])
    with pytest.raises(NotAnImage) as raised:
        verify(path, path.stat().st_size, {})
    assert (str(raised.value), raised.value.permanent) == ("image tronquée", False)


def bomb_png(path, width, height):
    """A valid 1-bit PNG of width x height, all black: a few hundred KiB on disk, width x height pixels decoded."""
    row = b"\x00" * (1 + (width + 7) // 8)  # filter byte, then the packed bits
    compressor, chunks = zlib.compressobj(9), []
    for _ in range(height // 1000):
        chunks.append(compressor.compress(row * 1000))
    chunks.append(compressor.compress(row * (height % 1000)) + compressor.flush())

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    idat = b"".join(chunks)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b""))
    return path.stat().st_size


def test_decompression_bomb_is_refused_without_decoding(tmp_path):
    """A small PNG declaring 30000 x 30000 pixels is refused for good as a bomb, and the memory did not grow."""
    path = tmp_path / "bomb.png"
    size = bomb_png(path, 30_000, 30_000)
    assert size < 1024 * 1024
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(NotAnImage, match="bombe de décompression") as raised:
        verify(path, size, {})
    assert raised.value.permanent
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 50 * 1024  # KiB: decoding takes 900 MB


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")  # as in production: a warning only
def test_image_just_above_the_bound_is_refused_with_its_dimensions(tmp_path):
    """An image above MAX_PIXELS but below Pillow's own refusal is refused by verify's check, naming its size."""
    path = tmp_path / "large.png"
    size = bomb_png(path, 8192, 8193)
    assert MAX_PIXELS < 8192 * 8193
    with pytest.raises(NotAnImage) as raised:
        verify(path, size, {})
    assert str(raised.value) == "image trop grande: 8192 × 8193 pixels (bombe de décompression)"
    assert raised.value.permanent


def test_image_at_the_bound_is_accepted(tmp_path):
    """An image of exactly MAX_PIXELS is verified, without any warning."""
    path = tmp_path / "bound.png"
    size = bomb_png(path, 8192, 8192)
    verified = verify(path, size, {"dimensions": "8192x8192"})
    assert (verified.width, verified.height, verified.mismatches) == (8192, 8192, ())


PEAK = (
    "import re, sys; from pathlib import Path; from image_webhook.copying.verify import verify\n"
    # VmHWM, the process's peak resident memory: unlike ru_maxrss it starts afresh at exec, not at the parent's
    "peak = lambda: int(re.search(r'VmHWM:\\s+(\\d+)', Path('/proc/self/status').read_text())[1])\n"
    "before = peak(); verify(Path(sys.argv[1]), int(sys.argv[2]), {}); print(peak() - before)"
)


def test_memory_peak_of_a_1024_png(tmp_path):
    """Verifying a 1024 x 1024 PNG of noise raises a fresh process's peak memory by less than 16 MiB (6 measured)."""
    path, size = save(tmp_path, noise((1024, 1024)), "PNG")
    result = subprocess.run(
        [sys.executable, "-c", PEAK, str(path), str(size)], cwd=ROOT, capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 0, result.stderr
    assert 1024 < int(result.stdout) < 16 * 1024, f"{result.stdout.strip()} KiB"
