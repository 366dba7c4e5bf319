"""Node addresses: what a node record may name as its IP, and the one way to build a URL to a node.

A node record's `ip` is chosen by whoever holds a node key, and validators and orchestrators connect to it. So:

- `canonical_ip(text)` accepts only an IP literal (no host name, no IPv6 zone, no IPv4 octet with a leading zero)
  and returns its one canonical spelling; an IPv4-mapped IPv6 address (`::ffff:10.0.0.1`) becomes the IPv4
  address it maps, so every way of writing one address is one string (the per-IP limit counts strings).
- `classify(ip)` names the range an address lies in (`AddressClass`); `AddressPolicy.check` refuses every class but
  `global`, except loopback and private addresses when the policy allows them (the devnet allows loopback).
  Link-local (169.254.169.254, the cloud metadata service, is one), multicast, reserved and unspecified
  addresses are never allowed: no honest miner is reachable there.
- `node_url(ip, port, path, scheme)` builds the URL from its parts (`httpx.URL`), never by pasting strings, so an
  address cannot carry a path, a query or a user.
- `ip_limit_key(ip)` is what the per-IP limit counts: the address for IPv4, its /64 for IPv6 (one subscriber's
  prefix holds 2^64 addresses, so counting single IPv6 addresses would limit nothing).

Pure functions, no I/O: every caller (discovery's upload route, the validator's challenger, the orchestrator's
miner client) uses them, and unit tests check them as they are.
"""

from __future__ import annotations

import enum
import ipaddress
from dataclasses import dataclass

import httpx

from primenet.core.errors import PrimenetError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Ranges `ipaddress` (Python 3.11) does not flag, or flags only as "private" though they are never a miner.
_THIS_NETWORK = ipaddress.IPv4Network("0.0.0.0/8")  # "this host on this network": Linux treats 0.x as local
_SHARED = ipaddress.IPv4Network("100.64.0.0/10")  # carrier-grade NAT: internal to an ISP, like a private range
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")  # well-known NAT64 prefix: the low 32 bits are an IPv4 address
IPV6_LIMIT_PREFIX = 64


class AddressClass(enum.StrEnum):
    """The range an address lies in, most specific first (an address has exactly one class here)."""

    UNSPECIFIED = "unspecified"
    LOOPBACK = "loopback"
    LINK_LOCAL = "link_local"
    MULTICAST = "multicast"
    RESERVED = "reserved"
    PRIVATE = "private"
    GLOBAL = "global"


class AddressRefusedError(PrimenetError, ValueError):
    """A node address that may not be connected to; `reason` is its `AddressClass` (or `not_an_ip`)."""

    def __init__(self, address: str, reason: str, message: str) -> None:
        super().__init__(message)
        self.address = address
        self.reason = reason


def parse_ip(text: str) -> IPAddress:
    """The address `text` spells; ValueError for anything but a plain IPv4 or IPv6 literal.

    Refused: host names, IPv6 zones (`fe80::1%eth0`), brackets, IPv4 octets with leading zeros (`010.0.0.1`,
    which some resolvers read as octal) and any surrounding text (`10.0.0.5/x?`). IPv4-mapped IPv6 addresses are
    returned as the IPv4 address they map.
    """
    if not isinstance(text, str) or text != text.strip() or not text:
        raise ValueError("an IP address is required")
    if "%" in text:
        raise ValueError(f"{text!r}: IPv6 zone ids are not allowed")
    try:
        address = ipaddress.ip_address(text)  # refuses leading zeros in IPv4 since Python 3.9.5
    except ValueError:
        raise ValueError(f"{text!r} is not an IP address (host names are not accepted)") from None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def canonical_ip(text: str) -> str:
    """The canonical spelling of the address `text` spells (see `parse_ip` for what is refused)."""
    return str(parse_ip(text))


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address a 6to4 or NAT64 address reaches, whose range is what the connection really goes to."""
    if address.sixtofour is not None:
        return address.sixtofour
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def classify(address: IPAddress) -> AddressClass:
    """The class of `address`; an IPv6 address that embeds an IPv4 one (6to4, NAT64) is classed by that one."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return classify(address.ipv4_mapped)
        embedded = _embedded_ipv4(address)
        if embedded is not None:
            inner = classify(embedded)
            if inner is not AddressClass.GLOBAL:
                return inner
    if address.is_unspecified or address in _THIS_NETWORK:
        return AddressClass.UNSPECIFIED
    if address.is_loopback:
        return AddressClass.LOOPBACK
    if address.is_link_local:
        return AddressClass.LINK_LOCAL
    if address.is_multicast:
        return AddressClass.MULTICAST
    if address.is_reserved:
        return AddressClass.RESERVED
    if address.is_private or address in _SHARED or not address.is_global:
        return AddressClass.PRIVATE
    return AddressClass.GLOBAL


@dataclass(frozen=True)
class AddressPolicy:
    """Which node addresses may be connected to: global ones always, loopback and private ones when allowed."""

    allow_loopback: bool = False
    allow_private: bool = False

    def allowed(self) -> frozenset[AddressClass]:
        classes = {AddressClass.GLOBAL}
        if self.allow_loopback:
            classes.add(AddressClass.LOOPBACK)
        if self.allow_private:
            classes.add(AddressClass.PRIVATE)
        return frozenset(classes)

    def check(self, ip: str) -> IPAddress:
        """The parsed address if this policy allows connecting to it; else `AddressRefusedError` saying why."""
        try:
            address = parse_ip(ip)
        except ValueError as exc:
            raise AddressRefusedError(str(ip), "not_an_ip", str(exc)) from None
        kind = classify(address)
        if kind not in self.allowed():
            hint = {
                AddressClass.LOOPBACK: " (PRIMENET_ALLOW_LOOPBACK_NODES=true allows it, for a devnet)",
                AddressClass.PRIVATE: " (PRIMENET_ALLOW_PRIVATE_NODES=true allows it, for a private network)",
            }.get(kind, "")
            raise AddressRefusedError(str(address), kind.value, f"{address} is a {kind.value} address{hint}")
        return address


def node_url(ip: str, port: int, path: str = "/", scheme: str = "http") -> str:
    """`<scheme>://<ip>:<port><path>`, built from its parts: `ip` must be an IP literal, `path` an absolute path,
    `scheme` http or https (the `node_scheme` setting).

    IPv6 addresses are bracketed by `httpx.URL`. ValueError for a host name, a port out of range, or a path with
    a query, a fragment or no leading slash (the path is ours, never a peer's).
    """
    address = parse_ip(ip)
    if not 1 <= port <= 65535:
        raise ValueError(f"port {port} is out of range")
    if not path.startswith("/") or any(c in path for c in "?#\\") or any(c.isspace() for c in path):
        raise ValueError(f"{path!r} is not a plain absolute path")
    if scheme not in ("http", "https"):
        raise ValueError(f"scheme {scheme!r} is neither http nor https")
    return str(httpx.URL(scheme=scheme, host=str(address), port=port, path=path))


def ip_limit_key(ip: str) -> str:
    """What the per-IP limit counts `ip` as: the IPv4 address, or the /64 an IPv6 address lies in."""
    address = parse_ip(ip)
    if isinstance(address, ipaddress.IPv6Address):
        return str(ipaddress.IPv6Network((address, IPV6_LIMIT_PREFIX), strict=False))
    return str(address)
