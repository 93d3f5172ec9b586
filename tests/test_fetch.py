"""The image fetcher: the IMAGE_SOURCES policy on resolved addresses, and transfers from real loopback servers of
the test's own (redirects, stalls, early closes, lying lengths, oversized bodies, 503s)."""

import hashlib
import io
import socket
import socketserver
import ssl
import subprocess
import threading
import time
from ipaddress import ip_address

import pytest

from image_webhook.copying.addresses import kind, machine_addresses
from image_webhook.copying.fetch import Fetched, Fetcher, FetchFailed
from image_webhook.copying.sources import Refused, Sources
from image_webhook.domain.parsers import origins
from image_webhook.domain.settings import load_settings
from tests.servers import free_port, require

IMAGE = bytes(range(256)) * 1000  # 256,000 bytes: several 64 KiB chunks
HEAD = "HTTP/1.1 {status}\r\nConnection: close\r\n{headers}\r\n"


def head(status="200 OK", **headers):
    lines = "".join(f"{name.replace('_', '-')}: {value}\r\n" for name, value in headers.items())
    return HEAD.format(status=status, headers=lines).encode()


class Source:
    """A source of images on 127.0.0.1 (and ::1 on the same port where IPv6 works): a threaded server that
    counts the connections it accepts, keeps the request heads, and answers each path with its route."""

    def __init__(self, host="127.0.0.1", port=0, tls=None):
        self.tls = tls  # a server-side SSLContext: https
        self.connections = 0
        self.heads = []
        self.routes = {}
        self.stop = threading.Event()
        self.cut = threading.Event()  # a route's write failed: the client closed the connection
        self.sent = 0
        self._lock = threading.Lock()
        for _ in range(5):  # on 127.0.0.1, the same port on ::1 too, for the URLs spelling loopback in IPv6
            self._servers = [self._server(socket.AF_INET, host, port)]
            self.port = self._servers[0].server_address[1]
            if host != "127.0.0.1" or not socket.has_ipv6:
                break
            try:
                self._servers.append(self._server(socket.AF_INET6, "::1", self.port))
                break
            except OSError:
                self._servers[0].server_close()  # no IPv6 loopback, or this port taken there: try another
        else:
            self._servers = [self._server(socket.AF_INET, host, port)]
            self.port = self._servers[0].server_address[1]
        self.ipv6 = len(self._servers) == 2
        self.origin = f"{'https' if tls else 'http'}://{host}:{self.port}"
        for server in self._servers:
            threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def _server(self, family, host, port):
        source = self

        class Server(socketserver.ThreadingTCPServer):
            address_family = family
            allow_reuse_address = True
            daemon_threads = True

            def get_request(self):
                sock, address = super().get_request()
                return (source.tls.wrap_socket(sock, server_side=True) if source.tls else sock), address

            def process_request(self, request, client_address):
                with source._lock:
                    source.connections += 1
                super().process_request(request, client_address)

        server = Server((host, port), Handler)
        server.source = self
        return server

    def url(self, path):
        return self.origin + path

    def close(self):
        self.stop.set()
        for server in self._servers:
            server.shutdown()
            server.server_close()


class Handler(socketserver.BaseRequestHandler):
    """Reads a request's head, then lets the route of its path write the answer on the raw socket."""

    def handle(self):
        source = self.server.source
        data = b""
        while b"\r\n\r\n" not in data and len(data) < 65536:
            chunk = self.request.recv(4096)
            if not chunk:
                return
            data += chunk
        request_head = data.split(b"\r\n\r\n")[0].decode("latin-1")
        source.heads.append(request_head)
        path = request_head.split(" ")[1]
        route = source.routes.get(path, lambda conn, src: conn.sendall(head("404 Not Found", Content_Length=0)))
        try:
            route(self.request, source)
        except OSError:
            source.cut.set()


@pytest.fixture
def make_source():
    made = []

    def make(host="127.0.0.1", port=0, tls=None):
        source = Source(host, port, tls)
        made.append(source)
        return source

    yield make
    for source in made:
        source.close()


@pytest.fixture
def source(make_source):
    return make_source()


def fetcher(allowed, **options):
    """A Fetcher for `allowed` (IMAGE_SOURCES's text, read by the real parser) with small bounds."""
    options = {"max_bytes": 10 * len(IMAGE), "timeout": 5.0, "stall_timeout": 0.5, **options}
    resolve = options.pop("resolve", None)
    sources = Sources(origins("IMAGE_SOURCES", allowed), **({"resolve": resolve} if resolve else {}))
    return Fetcher(sources, **options)


def serve(body, **headers):
    """A route answering 200 with `body` (and its Content-Length unless given as None)."""
    headers = {"Content_Type": "image/png", "Content_Length": len(body), **headers}
    headers = {k: v for k, v in headers.items() if v is not None}
    return lambda conn, source: conn.sendall(head(**headers) + body)


def redirect(location, status="302 Found"):
    return lambda conn, source: conn.sendall(head(status, Location=location, Content_Length=0))


# the policy, unit by unit, through the injectable resolver


def resolving(*answers):
    """A resolver answering `answers` whatever the host, counting its calls."""

    def resolve(host, port):
        resolve.calls.append((host, port))
        return list(answers)

    resolve.calls = []
    return resolve


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("10.0.0.1", "privée"),
        ("172.16.0.1", "privée"),
        ("192.168.1.1", "privée"),
        ("169.254.169.254", "de lien local"),
        ("100.64.0.1", "partagée (CGNAT)"),
        ("224.0.0.1", "de multidiffusion"),
        ("0.0.0.0", "non spécifiée"),
        ("127.0.0.1", "de bouclage"),
        ("127.255.255.254", "de bouclage"),
        ("255.255.255.255", "réservée"),
        ("192.0.2.1", "réservée"),
        ("::", "non spécifiée"),
        ("::1", "de bouclage"),
        ("fe80::1", "de lien local"),
        ("fe80::1%1", "de lien local"),
        ("fc00::1", "privée"),
        ("fd12:3456::1", "privée"),
        ("ff02::1", "de multidiffusion"),
        ("2001:db8::1", "réservée"),
        ("::ffff:10.0.0.1", "privée"),
        ("::ffff:127.0.0.1", "de bouclage"),
        ("::127.0.0.1", "réservée"),
        ("64:ff9b::7f00:1", "de bouclage"),
        ("64:ff9b::a9fe:a9fe", "de lien local"),
        ("64:ff9b:1::1", "privée"),
        ("2002:7f00:1::", "de bouclage"),
        ("2002:a00:1::", "privée"),
        ("8.8.8.8", None),
        ("1.1.1.1", None),
        ("2606:4700::1111", None),
        ("::ffff:8.8.8.8", None),
        ("2002:808:808::", None),
        ("64:ff9b::808:808", None),
    ],
)
def test_public_mode_classifies_the_resolved_address(address, expected):
    """In the public mode a host resolving to a non-public address is refused, naming its kind; public ones pass."""
    sources = Sources(("public",), resolve=resolving(address), own=())
    if expected is None:
        target = sources.check("https://images.example/a.png?sig=1")
        assert (ip_address(target.address), target.host, target.port, target.path_and_query) == (
            ip_address(address),
            "images.example",
            443,
            "/a.png?sig=1",
        )
        assert target.family == (socket.AF_INET if ip_address(address).version == 4 else socket.AF_INET6)
    else:
        with pytest.raises(Refused) as refused:
            sources.check("https://images.example/a.png?sig=1")
        assert f"adresse {expected} refusée (IMAGE_SOURCES=public)" in str(refused.value)
        assert "sig=1" not in str(refused.value)  # a signed URL's query is never shown


def test_public_mode_refuses_the_machine_own_addresses():
    """An address of the machine itself is refused in the public mode even where it is a public one."""
    sources = Sources(("public",), resolve=resolving("8.8.4.4"), own=["8.8.4.4"])
    with pytest.raises(Refused, match="adresse de cette machine refusée"):
        sources.check("http://images.example/a.png")
    assert kind(ip_address("8.8.4.4")) is None


def test_machine_addresses_include_loopback_the_name_and_the_interfaces():
    """The machine's addresses hold loopback, what its name resolves to, and the interface of its default route."""
    found = machine_addresses()
    assert {ip_address("127.0.0.1"), ip_address("::1")} <= found
    assert {ip_address(a) for a in socket.gethostbyname_ex(socket.gethostname())[2]} <= found
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("198.51.100.1", 9))  # UDP: no packet is sent, the kernel only picks the source address
        except OSError:
            return  # no route out of this machine: nothing more to compare
        assert ip_address(probe.getsockname()[0]) in found


def test_public_mode_refuses_a_name_answering_public_and_private_addresses():
    """Every resolved address is checked: one loopback address among public ones refuses the URL."""
    for answers in (("8.8.8.8", "127.0.0.1"), ("127.0.0.1", "8.8.8.8"), ("2606:4700::1111", "::1")):
        with pytest.raises(Refused, match="de bouclage"):
            Sources(("public",), resolve=resolving(*answers), own=()).check("http://images.example/")


def test_each_check_resolves_once_and_its_target_keeps_the_checked_address():
    """A resolver answering public then loopback (rebinding): the first check's Target holds the public address
    it checked, the second check refuses; the resolver is asked once per check."""
    answers = iter([["8.8.8.8"], ["127.0.0.1"]])
    calls = []

    def rebinding(host, port):
        calls.append(host)
        return next(answers)

    sources = Sources(("public",), resolve=rebinding, own=())
    target = sources.check("http://images.example/a.png")
    assert (target.address, calls) == ("8.8.8.8", ["images.example"])
    with pytest.raises(Refused, match=r"127\.0\.0\.1"):
        sources.check("http://images.example/a.png")
    assert calls == ["images.example", "images.example"]


LISTED = ("http://localhost:9006", "https://cdn.example:443")


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://localhost:9006/a.png", ("localhost", 9006, "/a.png")),
        ("HTTP://LocalHost:9006/a.png?x=1#top", ("localhost", 9006, "/a.png?x=1")),
        ("http://localhost:9006", ("localhost", 9006, "/")),
        ("https://cdn.example/a.png", ("cdn.example", 443, "/a.png")),
        ("https://cdn.example:443/a.png", ("cdn.example", 443, "/a.png")),
    ],
)
def test_listed_origin_is_allowed(url, expected):
    """A URL whose origin, normalised as IMAGE_SOURCES is, is listed gives its Target, on loopback too."""
    target = Sources(LISTED, resolve=resolving("127.0.0.1")).check(url)
    assert (target.host, target.port, target.path_and_query, target.address) == (*expected, "127.0.0.1")


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://localhost/a.png", "origine non autorisée (IMAGE_SOURCES): http://localhost:80"),
        ("https://localhost:9006/a.png", "origine non autorisée (IMAGE_SOURCES): https://localhost:9006"),
        ("http://localhost:9007/", "origine non autorisée (IMAGE_SOURCES): http://localhost:9007"),
        ("http://127.0.0.1:9006/", "origine non autorisée (IMAGE_SOURCES): http://127.0.0.1:9006"),
        ("http://cdn.example/a.png", "origine non autorisée (IMAGE_SOURCES): http://cdn.example:80"),
        ("http://user:s3cret@localhost:9006/", "identifiants dans l'URL refusés: http://localhost"),
        ("http://localhost:9006@evil.example/", "identifiants dans l'URL refusés: http://evil.example"),
        ("http://localhost:9006\\@evil.example/", "barre oblique inverse"),
        ("http://local host:9006/", "espace"),
        ("http://localhost:9006/\r\nX: y", "caractère de contrôle"),
        ("http://localhöst:9006/", "non ASCII"),
        ("http://localhost:0/", "port invalide"),
        ("http://localhost:99999/", "URL invalide"),
        ("http://[::1/", "URL invalide"),
        ("ftp://localhost:9006/a.png", "schéma non autorisé (http ou https seulement): ftp"),
        ("file:///etc/passwd", "schéma non autorisé (http ou https seulement): file"),
        ("//localhost:9006/a.png", "schéma non autorisé (http ou https seulement): aucun"),
        ("http:///a.png", "URL sans hôte"),
    ],
)
def test_unlisted_or_malformed_url_is_refused(url, message):
    """A URL off the listed origins, with credentials or that parsers could read two ways is refused, unresolved."""
    resolve = resolving("127.0.0.1")
    with pytest.raises(Refused) as refused:
        Sources(LISTED, resolve=resolve).check(url)
    assert message in str(refused.value)
    assert "s3cret" not in str(refused.value) and "user" not in str(refused.value)
    assert resolve.calls == []


def test_empty_sources_refuse_everything():
    """With IMAGE_SOURCES empty every URL is refused, even a malformed one, and nothing is resolved."""
    resolve = resolving("8.8.8.8")
    for url in ("http://localhost:9006/a.png", "https://images.example/", "nonsense"):
        with pytest.raises(Refused) as refused:
            Sources((), resolve=resolve).check(url)
        assert str(refused.value) == "aucune origine autorisée (IMAGE_SOURCES est vide)"
    assert resolve.calls == []


def test_describe_names_the_mode():
    """The start-up line says which sources images are copied from, in each mode."""
    assert (
        Sources(("http://localhost:9006",)).describe() == "images copiées depuis http://localhost:9006 (IMAGE_SOURCES)"
    )
    assert "toute adresse publique" in Sources(("public",)).describe()
    assert "IMAGE_SOURCES est vide" in Sources(()).describe()


# transfers from the test's own servers


def stall(conn, source):
    conn.sendall(head(Content_Length=1000) + b"x" * 100)
    source.stop.wait(10)


def silent(conn, source):
    source.stop.wait(10)


def close_early(conn, source):
    conn.sendall(head(Content_Length=99999) + b"x" * 12345)


def endless(conn, source):
    """A body without Content-Length that never ends (256 MiB at most, 10 s at most)."""
    conn.sendall(head(Content_Type="image/png"))
    chunk, until = b"x" * 65536, time.monotonic() + 10
    while source.sent < 256 * 1024 * 1024 and time.monotonic() < until and not source.stop.is_set():
        conn.sendall(chunk)
        source.sent += len(chunk)


def trickle(conn, source):
    """A byte every 0.1 s: never silent for long, never done."""
    conn.sendall(head(Content_Type="image/png"))
    while not source.stop.wait(0.1):
        conn.sendall(b"x")


def drip_head(conn, source):
    """A head that never ends, a byte every 0.1 s."""
    conn.sendall(b"HTTP/1.1 200 OK\r\nX-Drip: ")
    while not source.stop.wait(0.1):
        conn.sendall(b"x")


def chunked(body, *, cut=False):
    def route(conn, source):
        conn.sendall(head(Transfer_Encoding="chunked") + f"{len(body):x}\r\n".encode())
        conn.sendall(body[: len(body) // 2] if cut else body + b"\r\n0\r\n\r\n")

    return route


def status(line):
    return lambda conn, source: conn.sendall(head(line, Content_Length=0))


def flaky(conn, source):
    """503 to the first request, the image to the next."""
    if len(source.heads) == 1:
        conn.sendall(head("503 Service Unavailable", Content_Length=0, Retry_After=1))
    else:
        serve(IMAGE)(conn, source)


def quiet(source):
    """The connections `source` accepted, once any connection still under way would have been."""
    time.sleep(0.2)
    return source.connections


def failure(fetcher_, url, into=None):
    with pytest.raises(FetchFailed) as failed:
        fetcher_.fetch(url, into or io.BytesIO())
    return failed.value


def test_listed_origin_is_fetched_whole(source):
    """An image from a listed origin arrives byte for byte, with its SHA-256, its type and one connection."""
    source.routes["/a.png"] = serve(IMAGE)
    into = io.BytesIO()
    fetched = fetcher(source.origin).fetch(source.url("/a.png"), into)
    assert fetched == Fetched(len(IMAGE), hashlib.sha256(IMAGE).hexdigest(), "image/png", source.url("/a.png"))
    assert into.getvalue() == IMAGE
    assert source.connections == 1


def test_request_goes_to_the_checked_address_with_the_url_host(make_source):
    """A listed name is resolved once, by the policy: the GET goes to that address with the URL's Host, asks for
    images in identity, sends no cookie; a server on the address the name would rebind to sees nothing."""
    for _ in range(5):  # a port free on both addresses
        checked = make_source("127.0.0.1")
        try:
            rebound = make_source("127.0.0.2", checked.port)
            break
        except OSError:
            checked.close()
    checked.routes["/a.png"] = rebound.routes["/a.png"] = serve(IMAGE)
    answers = iter([["127.0.0.1"]])
    calls = []

    def rebinding(host, port):
        calls.append((host, port))
        return next(answers, ["127.0.0.2"])

    url = f"http://images.test:{checked.port}/a.png"
    fetched = fetcher(f"http://images.test:{checked.port}", resolve=rebinding).fetch(url, io.BytesIO())
    assert fetched.size == len(IMAGE)
    assert calls == [("images.test", checked.port)]
    assert (checked.connections, quiet(rebound)) == (1, 0)
    lines = checked.heads[0].split("\r\n")
    assert lines[0] == "GET /a.png HTTP/1.1"
    assert f"Host: images.test:{checked.port}" in lines
    assert {"Accept: image/*", "Accept-Encoding: identity", "User-Agent: image-webhook/1"} <= set(lines)
    assert not [line for line in lines if line.lower().startswith(("cookie", "authorization", "proxy"))]


def test_other_checked_addresses_are_tried_when_the_first_refuses(make_source):
    """A name with several addresses (localhost: ::1 and 127.0.0.1) is fetched from the next one if the first
    refuses the connection: each of them was checked."""
    source = make_source("127.0.0.2")
    source.routes["/a.png"] = serve(IMAGE)
    resolve = resolving("127.0.0.3", "127.0.0.2")
    url = f"http://images.test:{source.port}/a.png"
    assert fetcher(f"http://images.test:{source.port}", resolve=resolve).fetch(url, io.BytesIO()).size == len(IMAGE)


def test_unlisted_loopback_port_is_refused_without_connecting(source, make_source):
    """A URL on a loopback port that is not listed is refused, and the server there sees no connection."""
    other = make_source()
    with pytest.raises(Refused, match=f"origine non autorisée \\(IMAGE_SOURCES\\): {other.origin}"):
        fetcher(source.origin).fetch(other.url("/a.png"), io.BytesIO())
    assert quiet(other) == 0


def test_redirect_to_an_unlisted_origin_is_refused_without_connecting(source, make_source):
    """A redirect to an origin off the list is refused; its server sees no connection."""
    other = make_source()
    other.routes["/a.png"] = serve(IMAGE)
    source.routes["/go"] = redirect(other.url("/a.png"))
    with pytest.raises(Refused, match="origine non autorisée"):
        fetcher(source.origin).fetch(source.url("/go"), io.BytesIO())
    assert (source.connections, quiet(other)) == (1, 0)


def test_redirects_are_followed_three_times(source):
    """301, 303 and 307 relative redirects are followed to the image; redirect bodies never reach the file."""
    source.routes["/1"] = lambda conn, src: conn.sendall(head("301 Moved", Location="/2", Content_Length=5) + b"moved")
    source.routes["/2"] = redirect("2b", "303 See Other")  # relative to /2: /2b
    source.routes["/2b"] = redirect(source.url("/a.png"), "307 Temporary Redirect")
    source.routes["/a.png"] = serve(IMAGE)
    into = io.BytesIO()
    fetched = fetcher(source.origin).fetch(source.url("/1"), into)
    assert (fetched.url, into.getvalue(), source.connections) == (source.url("/a.png"), IMAGE, 4)


def test_a_fourth_redirect_fails(source):
    """More than three redirects is a permanent failure, and the fourth Location is not fetched."""
    for n in range(4):
        source.routes[f"/{n}"] = redirect(f"/{n + 1}", "308 Permanent Redirect")
    source.routes["/4"] = serve(IMAGE)
    failed = failure(fetcher(source.origin), source.url("/0"))
    assert (str(failed), failed.permanent, source.connections) == ("plus de 3 redirections", True, 4)


def test_redirect_without_location_fails(source):
    """A redirect that says nowhere is a permanent failure."""
    source.routes["/go"] = status("302 Found")
    failed = failure(fetcher(source.origin), source.url("/go"))
    assert (str(failed), failed.permanent) == ("redirection 302 sans Location", True)


SPELLINGS = [
    "http://127.1:{port}/a.png",
    "http://0x7f000001:{port}/a.png",
    "http://2130706433:{port}/a.png",
    "http://0177.0.0.1:{port}/a.png",
    "http://localhost:{port}/a.png",
    "http://[::ffff:127.0.0.1]:{port}/a.png",
    "http://[::1]:{port}/a.png",
]


@pytest.mark.parametrize("spelling", SPELLINGS)
def test_public_mode_refuses_every_spelling_of_loopback(source, spelling):
    """Each spelling of loopback reaches the server when its origin is listed (so it is one), and the public
    mode refuses it without a connection."""
    if "[" in spelling and not source.ipv6:
        pytest.skip("no IPv6 loopback on this machine")
    source.routes["/a.png"] = serve(IMAGE)
    url = spelling.format(port=source.port)
    origin = url.removesuffix("/a.png")
    assert fetcher(origin).fetch(url, io.BytesIO()).size == len(IMAGE)
    assert source.connections == 1
    with pytest.raises(Refused, match="refusée \\(IMAGE_SOURCES=public\\)"):
        fetcher("public").fetch(url, io.BytesIO())
    assert quiet(source) == 1


def test_empty_sources_fetch_nothing(source):
    """With IMAGE_SOURCES empty the fetch is refused and the server sees no connection."""
    source.routes["/a.png"] = serve(IMAGE)
    with pytest.raises(Refused, match=r"aucune origine autorisée \(IMAGE_SOURCES est vide\)"):
        Fetcher(Sources(()), max_bytes=1000, timeout=1).fetch(source.url("/a.png"), io.BytesIO())
    assert quiet(source) == 0


def test_body_announced_over_the_limit_is_not_read(source):
    """A Content-Length over IMAGE_MAX_BYTES fails permanently before a byte of the body is read."""
    source.routes["/a.png"] = serve(IMAGE)
    into = io.BytesIO()
    failed = failure(fetcher(source.origin, max_bytes=1000), source.url("/a.png"), into)
    assert (str(failed), failed.permanent) == ("corps au-delà de IMAGE_MAX_BYTES (1000 octets)", True)
    assert into.getvalue() == b""


def test_endless_body_is_cut_at_the_limit(source):
    """A body without Content-Length is counted as it comes: past IMAGE_MAX_BYTES the fetch fails permanently,
    no more than the limit reached the file, and the connection is closed (the source's writes fail)."""
    source.routes["/a.png"] = endless
    into = io.BytesIO()
    failed = failure(fetcher(source.origin, max_bytes=100_000), source.url("/a.png"), into)
    assert (str(failed), failed.permanent) == ("corps au-delà de IMAGE_MAX_BYTES (100000 octets)", True)
    assert len(into.getvalue()) <= 100_000
    assert source.cut.wait(5)
    assert source.sent < 64 * 1024 * 1024


def test_body_of_exactly_the_limit_is_fetched(source):
    """A body of exactly IMAGE_MAX_BYTES without Content-Length passes, read to its end."""
    source.routes["/a.png"] = serve(IMAGE, Content_Length=None)
    assert fetcher(source.origin, max_bytes=len(IMAGE)).fetch(source.url("/a.png"), io.BytesIO()).size == len(IMAGE)


def test_chunked_body_is_fetched(source):
    """A chunked body arrives whole, its SHA-256 that of the bytes."""
    source.routes["/a.png"] = chunked(IMAGE)
    fetched = fetcher(source.origin).fetch(source.url("/a.png"), io.BytesIO())
    assert (fetched.size, fetched.sha256) == (len(IMAGE), hashlib.sha256(IMAGE).hexdigest())


@pytest.mark.parametrize(
    ("route", "message"),
    [
        (close_early, "transfert interrompu (12345 octets sur 99999)"),
        (chunked(IMAGE, cut=True), f"transfert interrompu ({len(IMAGE) // 2} octets)"),
    ],
)
def test_truncated_body_fails_for_now(source, route, message):
    """A body that ends before its announced length (or its chunk) is a failure a retry may mend."""
    source.routes["/a.png"] = route
    failed = failure(fetcher(source.origin), source.url("/a.png"))
    assert (str(failed), failed.permanent) == (message, False)


@pytest.mark.parametrize(
    ("route", "timeout", "message", "least"),
    [
        (stall, 10, "source muette depuis 0.5 s", 0.4),  # silent mid-body: the stall timeout
        (silent, 10, "source muette depuis 0.5 s", 0.4),  # silent before its head
        (trickle, 1, "délai IMAGE_FETCH_TIMEOUT dépassé (1 s)", 0.9),  # never silent for long: the deadline
        (drip_head, 1, "délai IMAGE_FETCH_TIMEOUT dépassé (1 s)", 0.9),  # a head that never ends
    ],
)
def test_a_slow_source_fails_at_its_bound(source, route, timeout, message, least):
    """A source that goes silent fails after about stall_timeout; one that drips fails at the deadline."""
    source.routes["/a.png"] = route
    started = time.monotonic()
    failed = failure(fetcher(source.origin, stall_timeout=0.5, timeout=timeout), source.url("/a.png"))
    assert (str(failed), failed.permanent) == (message, False)
    assert least < time.monotonic() - started < 3


def test_503_then_200(source):
    """A 503 is a failure for now; the next fetch gets the image."""
    source.routes["/a.png"] = flaky
    failed = failure(fetcher(source.origin), source.url("/a.png"))
    assert (str(failed), failed.permanent) == ("réponse HTTP 503", False)
    assert fetcher(source.origin).fetch(source.url("/a.png"), io.BytesIO()).size == len(IMAGE)


@pytest.mark.parametrize(
    ("line", "permanent"),
    [
        ("404 Not Found", True),
        ("403 Forbidden", True),
        ("410 Gone", True),
        ("204 No Content", True),
        ("408 Request Timeout", False),
        ("429 Too Many Requests", False),
        ("500 Internal Server Error", False),
        ("502 Bad Gateway", False),
    ],
)
def test_status_decides_whether_a_retry_can_help(source, line, permanent):
    """A 4xx other than 408 and 429 is permanent; 408, 429 and 5xx are failures for now."""
    source.routes["/a.png"] = status(line)
    failed = failure(fetcher(source.origin), source.url("/a.png"))
    assert (str(failed), failed.permanent) == (f"réponse HTTP {line.split()[0]}", permanent)


def test_encoded_body_is_refused(source):
    """A body sent with a Content-Encoding though identity was asked is a permanent failure, not decoded."""
    source.routes["/a.png"] = serve(IMAGE, Content_Encoding="gzip")
    into = io.BytesIO()
    failed = failure(fetcher(source.origin), source.url("/a.png"), into)
    assert (str(failed), failed.permanent, into.getvalue()) == (
        "corps encodé (Content-Encoding: gzip), seul identity est accepté",
        True,
        b"",
    )


def test_connection_refused_fails_for_now():
    """A listed origin where nothing listens is a failure for now."""
    origin = f"http://127.0.0.1:{free_port()}"
    failed = failure(fetcher(origin), origin + "/a.png")
    assert (str(failed), failed.permanent) == ("connexion refusée", False)


def test_unresolved_name_fails_for_now():
    """A listed name that does not resolve now is a failure for now, not a refusal."""

    def unresolvable(host, port):
        raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")

    failed = failure(fetcher("http://images.test:9006", resolve=unresolvable), "http://images.test:9006/a.png")
    assert (str(failed), failed.permanent) == ("nom introuvable: images.test", False)


def test_fetcher_from_settings(source):
    """Fetcher.from_settings takes IMAGE_SOURCES, IMAGE_MAX_BYTES and IMAGE_FETCH_TIMEOUT from the settings."""
    settings = load_settings(
        {"IMAGE_SOURCES": source.origin, "IMAGE_MAX_BYTES": 1000, "IMAGE_FETCH_TIMEOUT": 7},
        environ={"APP_ENV": "development"},
    )
    fetcher_ = Fetcher.from_settings(settings)
    assert (fetcher_.max_bytes, fetcher_.timeout, fetcher_.sources.origins) == (1000, 7, (source.origin,))
    source.routes["/small.png"] = serve(b"\x89PNG")
    source.routes["/a.png"] = serve(IMAGE)
    assert fetcher_.fetch(source.url("/small.png"), io.BytesIO()).size == 4
    assert failure(fetcher_, source.url("/a.png")).permanent


@pytest.fixture
def certificate(tmp_path):
    """A self-signed certificate for images.test (openssl), and a client context trusting it alone."""
    require("openssl")
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    options = "-x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 -subj /CN=images.test"
    options += " -addext subjectAltName=DNS:images.test"
    command = ["openssl", "req", *options.split(), "-keyout", str(key), "-out", str(cert)]
    subprocess.run(command, check=True, capture_output=True)
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(cert, key)
    client = ssl.create_default_context(cafile=str(cert))
    return server, client


@pytest.mark.parametrize(("name", "error"), [("images.test", None), ("other.test", "certificat TLS refusé")])
def test_https_checks_the_certificate_against_the_url_host(make_source, certificate, name, error):
    """Over https the checked address is connected to and the certificate is checked against the URL's host:
    images.test's certificate serves https://images.test, not https://other.test on the same address."""
    server, client = certificate
    source = make_source(tls=server)
    source.routes["/a.png"] = serve(IMAGE)
    origin = f"https://{name}:{source.port}"
    fetcher_ = fetcher(origin, resolve=resolving("127.0.0.1"), tls=client)
    if error is None:
        assert fetcher_.fetch(origin + "/a.png", io.BytesIO()).sha256 == hashlib.sha256(IMAGE).hexdigest()
        assert f"Host: images.test:{source.port}" in source.heads[0].split("\r\n")
    else:
        failed = failure(fetcher_, origin + "/a.png")
        assert str(failed).startswith(error) and "other.test" in str(failed) and not failed.permanent
