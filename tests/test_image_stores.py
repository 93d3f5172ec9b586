"""The image stores, a directory and S3 (a real SeaweedFS), through the same tests: put, read back, atomicity."""

import contextlib
import os
import resource
import signal
import stat
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import requests

from image_webhook.domain.settings import load_settings
from image_webhook.storage.images import DirectoryStore, ImageStoreUnavailable, UnsafeKey, check_key, open_store
from image_webhook.storage.images.directory import CHUNK
from image_webhook.storage.images.s3 import S3Store
from tests.servers import ROOT, SeaweedServer

KEY = "ab/abcdef0123456789.png"
UNSAFE_KEYS = ["", "/ab/x.png", "../x.png", "ab/../x.png", "ab/./x.png", "ab//x.png", "ab/", ".x.png", "ab/.x"]
DEVELOPMENT = {"APP_ENV": "development"}  # no secret needed to read the settings
UNSAFE_KEYS += ["ab\\x.png", "ab/x.png\x00", "ab/x y.png", "é.png", "a" * 513]


def s3_store(server, **options):
    """A store under a prefix of its own in the server's bucket, with short timeouts."""
    return S3Store(server.BUCKET, f"tests/{uuid.uuid4().hex}", server.url, 900, timeout=1, **options)


@pytest.fixture(params=["directory", "s3"])
def store(request, tmp_path):
    if request.param == "directory":
        return DirectoryStore(tmp_path / "images")
    return s3_store(request.getfixturevalue("s3_environment"))


def read_back(store, key):
    """The bytes kept under `key`, read the way a reader would: the file, or a plain GET of the URL."""
    where = store.locate(key)
    if isinstance(where, Path):
        return where.read_bytes()
    response = requests.get(where, timeout=5)
    assert response.status_code == 200, response.text
    return response.content


@pytest.fixture
def image_file(tmp_path):
    path = tmp_path / "source.png"
    path.write_bytes(os.urandom(100_000))
    return path


def test_put_exists_locate_delete(store, image_file):
    """A put file exists, reads back byte for byte where locate says, and is gone after delete (twice fine)."""
    assert not store.exists(KEY)
    store.put(KEY, image_file, "image/png")
    assert store.exists(KEY)
    assert read_back(store, KEY) == image_file.read_bytes()
    store.delete(KEY)
    assert not store.exists(KEY)
    store.delete(KEY)


def test_put_bytes(store):
    """Bytes put under a key read back the same, and another key beside it is independent."""
    store.put_bytes("ab/abcdef.thumb.webp", b"RIFF-thumbnail", "image/webp")
    assert read_back(store, "ab/abcdef.thumb.webp") == b"RIFF-thumbnail"
    assert not store.exists("ab/abcdef.png")


def test_put_again_is_fine(store, image_file, tmp_path):
    """Putting the same key again succeeds and keeps one whole file (the second content), no temporary left."""
    store.put(KEY, image_file, "image/png")
    other = tmp_path / "other.png"
    other.write_bytes(b"second")
    store.put(KEY, other, "image/png")
    store.put(KEY, other, "image/png")
    assert read_back(store, KEY) == b"second"
    if isinstance(store, DirectoryStore):
        assert sorted(p.name for p in (store.root / "ab").iterdir()) == ["abcdef0123456789.png"]


def test_s3_url_is_presigned_for_the_ttl_and_typed(s3_environment, image_file):
    """S3's locate is a GET URL signed (v4) for IMAGE_URL_TTL seconds; it serves the put content type."""
    store = s3_store(s3_environment)
    store.put(KEY, image_file, "image/png")
    url = store.locate(KEY)
    assert "X-Amz-Expires=900" in url and "X-Amz-Signature=" in url
    response = requests.get(url, timeout=5)
    assert response.headers["Content-Type"] == "image/png"
    assert requests.get(url.replace("X-Amz-Signature=", "X-Amz-Signature=0"), timeout=5).status_code == 403


@pytest.mark.parametrize("key", UNSAFE_KEYS)
def test_unsafe_keys_are_refused(store, key, tmp_path):
    """A key that is not a plain relative path is refused by every method before anything is written."""
    for call in (
        lambda: store.put_bytes(key, b"x", "image/png"),
        lambda: store.exists(key),
        lambda: store.delete(key),
        lambda: store.locate(key),
    ):
        with pytest.raises(UnsafeKey):
            call()
    assert not (tmp_path / "images").exists() and not (tmp_path / "x.png").exists()


def test_safe_keys_are_kept():
    """The keys the copier makes (two hex characters, the digest, the extension) are safe."""
    digest = "0123456789abcdef" * 4
    assert check_key(f"01/{digest}.png") == f"01/{digest}.png"
    assert check_key(f"01/{digest}.thumb.webp") == f"01/{digest}.thumb.webp"


def test_check_passes_on_a_writable_store(store):
    """check() writes and removes its probe on a store that works, leaving no key behind."""
    store.check()
    store.check()
    if isinstance(store, DirectoryStore):
        assert list(store.root.iterdir()) == []


@pytest.fixture
def unwritable_root(tmp_path):
    """A root that cannot be written: a read-only folder, or, as root (who writes anywhere), a path under a file."""
    if os.geteuid() == 0:
        (tmp_path / "a-file").write_bytes(b"")
        yield tmp_path / "a-file" / "images"
        return
    folder = tmp_path / "read-only"
    folder.mkdir(mode=0o500)
    yield folder / "images"
    folder.chmod(0o700)


def test_check_fails_on_an_unwritable_directory(unwritable_root, image_file):
    """check() and put raise ImageStoreUnavailable, naming the folder, when the directory cannot be written."""
    store = DirectoryStore(unwritable_root)
    with pytest.raises(ImageStoreUnavailable, match="images"):
        store.check()
    with pytest.raises(ImageStoreUnavailable):
        store.put(KEY, image_file, "image/png")


def test_stopped_seaweed_is_unavailable(monkeypatch, tmp_path, image_file):
    """Against a stopped S3 server, check(), put, exists and delete raise ImageStoreUnavailable, within seconds."""
    SeaweedServer.require()
    server = SeaweedServer(tmp_path)
    for name, value in server.environment.items():
        monkeypatch.setenv(name, value)
    server.start()
    store = s3_store(server)
    store.check()
    server.stop()
    started = time.monotonic()
    for call in (
        store.check,
        lambda: store.put(KEY, image_file, "image/png"),
        lambda: store.exists(KEY),
        lambda: store.delete(KEY),
    ):
        with pytest.raises(ImageStoreUnavailable, match=r"127\.0\.0\.1"):
            call()
    assert time.monotonic() - started < 10


def test_wrong_credentials_are_unavailable(s3_environment, monkeypatch):
    """A key the server does not know makes check() raise ImageStoreUnavailable, without the secret in it."""
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret")
    with pytest.raises(ImageStoreUnavailable) as raised:
        s3_store(s3_environment).check()
    assert "not-the-secret" not in str(raised.value)


@contextlib.contextmanager
def fails_mid_way(store, seaweed=None):
    """Writes to `store` fail part-way: files past 1 MiB refused (RLIMIT_FSIZE) for a directory, the S3 server
    stalled (SIGSTOP) for S3, until the block ends."""
    if isinstance(store, DirectoryStore):
        soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
        previous = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG
        resource.setrlimit(resource.RLIMIT_FSIZE, (1024 * 1024, hard))
        try:
            yield
        finally:
            resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
            signal.signal(signal.SIGXFSZ, previous)
        return
    seaweed.process.send_signal(signal.SIGSTOP)
    try:
        yield
    finally:
        seaweed.process.send_signal(signal.SIGCONT)


def test_a_put_failing_mid_way_leaves_the_previous_file(store, request, tmp_path):
    """A put of 16 MiB that fails part-way raises ImageStoreUnavailable and leaves the key's previous content
    whole (or no file at all), and no temporary file beside it."""
    store.put_bytes(KEY, b"previous", "image/png")
    store.put_bytes("ab/absent.png", b"x", "image/png")
    store.delete("ab/absent.png")
    big = tmp_path / "big.png"
    big.write_bytes(os.urandom(16 * 1024 * 1024))
    seaweed = request.getfixturevalue("seaweed") if isinstance(store, S3Store) else None
    with fails_mid_way(store, seaweed):
        with pytest.raises(ImageStoreUnavailable):
            store.put(KEY, big, "image/png")
        with pytest.raises(ImageStoreUnavailable):
            store.put("ab/absent.png", big, "image/png")
    store.put_bytes("ab/later.png", b"answering", "image/png")  # the store works again
    time.sleep(0.3)  # what the stalled server received is handled by now: it must not become an object
    assert read_back(store, KEY) == b"previous"
    assert not store.exists("ab/absent.png")
    if isinstance(store, DirectoryStore):
        assert sorted(p.name for p in (store.root / "ab").iterdir()) == ["abcdef0123456789.png", "later.png"]


def test_a_writer_killed_mid_file_leaves_only_a_temporary_name(tmp_path):
    """A process killed while it writes a file leaves a dot-named temporary file, never the final name, and the
    temporary name is not a key; a later put of the key works."""
    root, fifo = tmp_path / "images", tmp_path / "source"
    os.mkfifo(fifo)
    code = (
        "import sys; from pathlib import Path; from image_webhook.storage.images import DirectoryStore; "
        "DirectoryStore(Path(sys.argv[1])).put(sys.argv[2], Path(sys.argv[3]), 'image/png')"
    )
    child = subprocess.Popen([sys.executable, "-c", code, str(root), KEY, str(fifo)], cwd=ROOT)
    try:
        with open(fifo, "wb") as writer:
            # a chunk and a half: the child writes the first chunk (1 MiB), then waits for the rest of the second
            writer.write(b"\x89PNG" + b"x" * (3 * CHUNK // 2))
            writer.flush()
            deadline = time.monotonic() + 10
            while written(root / "ab") < CHUNK:
                assert time.monotonic() < deadline, "the child did not write what it read"
                time.sleep(0.02)
            child.kill()
            child.wait(10)
    except BrokenPipeError:  # the child died first: the assertions below say what it left
        pass
    finally:
        child.kill()
    names = [p.name for p in (root / "ab").iterdir()]
    assert len(names) == 1 and names[0].startswith(".abcdef0123456789.png.") and names[0].endswith(".tmp")
    with pytest.raises(UnsafeKey):
        check_key(f"ab/{names[0]}")
    store = DirectoryStore(root)
    assert not store.exists(KEY)
    store.put_bytes(KEY, b"whole", "image/png")
    assert store.locate(KEY).read_bytes() == b"whole"


def written(folder):
    """The bytes in the temporary files of `folder` so far."""
    return sum(p.stat().st_size for p in folder.glob(".*")) if folder.is_dir() else 0


def test_directory_modes(tmp_path, image_file):
    """The directory store makes its folders 0o750 and its files 0o640 (the service's user and group only)."""
    store = DirectoryStore(tmp_path / "images")
    store.put(KEY, image_file, "image/png")
    store.put_bytes("cd/ef.png", b"x", "image/png")
    for folder in (store.root, store.root / "ab", store.root / "cd"):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o750 & ~current_umask()
    for file in (store.root / KEY, store.root / "cd/ef.png"):
        assert stat.S_IMODE(file.stat().st_mode) == 0o640


def current_umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_open_store_chooses_by_scheme(tmp_path):
    """IMAGE_STORE's scheme chooses the store: file:// a DirectoryStore at its path, s3:// an S3Store with its
    prefix, endpoint and URL lifetime; describe() shows where, never a password."""
    settings = load_settings({"IMAGE_STORE": f"file://{tmp_path}/images"}, environ=DEVELOPMENT)
    directory = open_store(settings)
    assert isinstance(directory, DirectoryStore) and directory.root == tmp_path / "images"
    assert directory.describe() == f"dossier {tmp_path}/images"
    environ = {
        **DEVELOPMENT,
        "IMAGE_STORE": "s3://bucket/some/prefix/",
        "S3_ENDPOINT_URL": "http://user:pw@127.0.0.1:9000",
    }
    s3 = open_store(load_settings({"IMAGE_URL_TTL": 60}, environ=environ))
    assert isinstance(s3, S3Store)
    assert (s3.bucket, s3.prefix, s3.url_ttl) == ("bucket", "some/prefix/", 60)
    assert s3.describe() == "S3 s3://bucket/some/prefix/ (http://127.0.0.1:9000)"
    aws = open_store(load_settings(environ={**DEVELOPMENT, "IMAGE_STORE": "s3://bucket"}))
    assert aws.describe() == "S3 s3://bucket/ (AWS)"
