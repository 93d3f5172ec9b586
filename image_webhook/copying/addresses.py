"""What kind of IP address a fetch would connect to: public, or which kind of non-public one, and the
machine's own addresses (its interfaces' and its name's)."""

from __future__ import annotations

import socket
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address
from pathlib import Path

IPAddress = IPv4Address | IPv6Address

# the special-purpose blocks (IANA's registries, RFC 6890), listed here rather than taken from `is_global`,
# whose tables changed between Python releases; the kind is the word a refusal gives
_IPV4 = [
    (IPv4Network(net), kind)
    for net, kind in (
        ("0.0.0.0/8", "non spécifiée"),  # "this network": 0.0.0.0 reaches the machine itself
        ("127.0.0.0/8", "de bouclage"),
        ("10.0.0.0/8", "privée"),
        ("172.16.0.0/12", "privée"),
        ("192.168.0.0/16", "privée"),
        ("100.64.0.0/10", "partagée (CGNAT)"),
        ("169.254.0.0/16", "de lien local"),  # the clouds' metadata services, 169.254.169.254
        ("192.0.0.0/24", "réservée"),
        ("192.0.2.0/24", "réservée"),
        ("192.88.99.0/24", "réservée"),  # the former 6to4 relays
        ("198.18.0.0/15", "réservée"),
        ("198.51.100.0/24", "réservée"),
        ("203.0.113.0/24", "réservée"),
        ("224.0.0.0/4", "de multidiffusion"),
        ("240.0.0.0/4", "réservée"),  # 255.255.255.255 included
    )
]
_IPV6 = [
    (IPv6Network(net), kind)
    for net, kind in (
        ("::/128", "non spécifiée"),
        ("::1/128", "de bouclage"),
        ("64:ff9b:1::/48", "privée"),  # local-use NAT64 (RFC 8215)
        ("::/8", "réservée"),  # IPv4-compatible ::a.b.c.d among them (the embedding forms are unwrapped first)
        ("100::/64", "réservée"),
        ("2001::/23", "réservée"),  # IETF protocols, Teredo among them
        ("2001:db8::/32", "réservée"),
        ("fc00::/7", "privée"),
        ("fe80::/10", "de lien local"),
        ("fec0::/10", "privée"),  # the former site-local addresses
        ("ff00::/8", "de multidiffusion"),
    )
]
_NAT64 = IPv6Network("64:ff9b::/96")


def embedded(address: IPv6Address) -> IPv4Address | None:
    """The IPv4 address an IPv6 one stands for and reaches: IPv4-mapped, 6to4 or NAT64; or None."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address in _NAT64:
        return IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def kind(address: IPAddress, own: frozenset[IPAddress] = frozenset()) -> str | None:
    """What non-public kind `address` is (`de bouclage`, `privée`…), or None if it is a public address."""
    if isinstance(address, IPv6Address):
        address = IPv6Address(str(address).split("%")[0])  # a scope id (fe80::1%eth0) does not change the kind
        inner = embedded(address)
        if inner is not None:
            return kind(inner, own)
    for net, name in _IPV4 if isinstance(address, IPv4Address) else _IPV6:
        if address in net:
            return name
    if address in own:
        return "de cette machine"  # a public address of its own reaches what listens on every interface
    # a block assigned after the tables above: Python's own table may know it
    return None if address.is_global and not address.is_multicast else "réservée"


def machine_addresses() -> frozenset[IPAddress]:
    """The machine's own addresses: loopback, its name's, and (on Linux) every local address of its interfaces."""
    found: set[str] = {"127.0.0.1", "::1"}
    try:
        found.update(socket.gethostbyname_ex(socket.gethostname())[2])
        found.update(str(info[4][0]) for info in socket.getaddrinfo(socket.gethostname(), None))
    except OSError:
        pass  # a name that does not resolve: the interfaces still count
    found.update(_linux_interface_addresses())
    return frozenset(ip_address(a.split("%")[0]) for a in found)


def _linux_interface_addresses() -> set[str]:
    """Every local address of the network interfaces, read from /proc (nothing elsewhere)."""
    found = set()
    try:
        # IPv4: the routing table's LOCAL entries, aliases included (what `ip addr` lists)
        last = None
        for line in Path("/proc/net/fib_trie").read_text().splitlines():
            line = line.strip()
            if line.startswith("|-- "):
                last = line[4:]
            elif line == "/32 host LOCAL" and last:
                found.add(last)
    except OSError:
        pass
    try:
        for line in Path("/proc/net/if_inet6").read_text().splitlines():
            hexa = line.split()[0]
            found.add(str(IPv6Address(bytes.fromhex(hexa))))
    except (OSError, ValueError, IndexError):
        pass
    return found
