"""The image fetcher: the IMAGE_SOURCES policy on resolved addresses, and transfers from real loopback servers of
the test's own (redirects, stalls, early closes, lying lengths, oversized bodies, 503s)."""

import socket
import socketserver
import threading
from ipaddress import ip_address

import pytest

from image_webhook.copying.addresses import kind, machine_addresses
from image_webhook.copying.fetch import Fetcher
from image_webhook.copying.sources import Refused, Sources
from image_webhook.domain.parsers import origins

IMAGE = bytes(range(256)) * 1000  # 256,000 bytes: several 64 KiB chunks
HEAD = "HTTP/1.1 {status}\r\nConnection: close\r\n{headers}\r\n"


def head(status="200 OK", **headers):
    lines = "".join(f"{name.replace('_', '-')}: {value}\r\n" for name, value in headers.items())
    return HEAD.format(status=status, headers=lines).encode()


class Source:
    """A source of images on 127.0.0.1 (and ::1 on the same port where IPv6 works): a threaded server that
    counts the connections it accepts, keeps the request heads, and answers each path with its route."""

    def __init__(self, host="127.0.0.1"):
        self.connections = 0
        self.heads = []
        self.routes = {}
        self.stop = threading.Event()
        self.cut = threading.Event()  # a route's write failed: the client closed the connection
        self.sent = 0
        self._lock = threading.Lock()
        self._servers = []
        for _ in range(20):
            first = self._server(socket.AF_INET, host, 0)
            self.port = first.server_address[1]
            try:
                self._servers = (
                    [first, self._server(socket.AF_INET6, "::1", self.port)] if host == "127.0.0.1" else [first]
                )
                break
            except OSError:
                self._servers = [first]
                if not socket.has_ipv6:
                    break
                first.server_close()  # ::1 refused this port: another pair
        self.ipv6 = len(self._servers) == 2 or host != "127.0.0.1"
        self.origin = f"http://{host}:{self.port}"
        for server in self._servers:
            threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def _server(self, family, host, port):
        source = self

        class Server(socketserver.ThreadingTCPServer):
            address_family = family
            allow_reuse_address = True
            daemon_threads = True

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

    def make(host="127.0.0.1"):
        source = Source(host)
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
