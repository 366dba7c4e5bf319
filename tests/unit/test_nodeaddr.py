"""The node address rules as pure functions: parsing, canonical forms, classes, the policy, URLs, the limit key."""

from __future__ import annotations

import ipaddress

import pytest
from pydantic import ValidationError

from primenet.core.models import ComputeSpecs, NodeRecord
from primenet.core.nodeaddr import (
    AddressClass,
    AddressPolicy,
    AddressRefusedError,
    canonical_ip,
    classify,
    ip_limit_key,
    node_url,
    parse_ip,
)
from primenet.discovery.settings import DiscoverySettings
from primenet.miner.settings import MinerSettings

NODE = "0x" + "ab" * 20

# Documentation, benchmarking and special ranges stand in for real hosts: no test names an address it could reach.
CLASSES = {
    "0.0.0.0": AddressClass.UNSPECIFIED,
    "0.1.2.3": AddressClass.UNSPECIFIED,
    "::": AddressClass.UNSPECIFIED,
    "127.0.0.1": AddressClass.LOOPBACK,
    "127.255.0.9": AddressClass.LOOPBACK,
    "::1": AddressClass.LOOPBACK,
    "169.254.169.254": AddressClass.LINK_LOCAL,  # cloud metadata service
    "fe80::1": AddressClass.LINK_LOCAL,
    "224.0.0.1": AddressClass.MULTICAST,
    "ff02::1": AddressClass.MULTICAST,
    "240.0.0.1": AddressClass.RESERVED,
    "255.255.255.255": AddressClass.RESERVED,
    "10.0.0.5": AddressClass.PRIVATE,
    "172.16.3.4": AddressClass.PRIVATE,
    "192.168.1.1": AddressClass.PRIVATE,
    "100.64.0.1": AddressClass.PRIVATE,  # carrier-grade NAT
    "192.0.2.10": AddressClass.PRIVATE,  # documentation (not routable)
    "fc00::1": AddressClass.PRIVATE,
    "2001:db8::1": AddressClass.PRIVATE,
    "2002:7f00:1::": AddressClass.LOOPBACK,  # 6to4 of 127.0.0.1
    "2002:a00:5::": AddressClass.PRIVATE,  # 6to4 of 10.0.0.5
    "64:ff9b::a9fe:a9fe": AddressClass.LINK_LOCAL,  # NAT64 of 169.254.169.254
    "::ffff:127.0.0.1": AddressClass.LOOPBACK,
}


@pytest.mark.parametrize(("text", "expected"), sorted(CLASSES.items()))
def test_each_range_has_its_class(text: str, expected: AddressClass) -> None:
    assert classify(ipaddress.ip_address(text)) is expected


def test_a_global_address_is_global() -> None:
    # Constructed, not parsed from a literal that looks reachable: no test sends anything anywhere.
    assert classify(ipaddress.IPv4Address("8.8.4.4")) is AddressClass.GLOBAL
    assert classify(ipaddress.IPv6Address("2606:4700::1")) is AddressClass.GLOBAL


@pytest.mark.parametrize(
    "text",
    [
        "010.0.0.1",  # leading zeros: octal to some resolvers, a second spelling to the per-IP limit
        "127.000.000.001",
        "10.0.0.5/x?",  # a path and a query riding along into the URL
        "10.0.0.5:8080",
        "localhost",
        "gpu-7.example",
        "0x7f.1",
        "2130706433",  # 127.0.0.1 as one integer
        "1.2.3",
        "[::1]",
        "fe80::1%eth0",
        " 10.0.0.5",
        "10.0.0.5\n",
        "",
    ],
)
def test_anything_but_a_plain_ip_literal_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match=r"IP address|zone ids"):
        parse_ip(text)
    with pytest.raises(AddressRefusedError) as refused:
        AddressPolicy(allow_loopback=True, allow_private=True).check(text)
    assert refused.value.reason == "not_an_ip"


def test_one_address_has_one_spelling() -> None:
    assert canonical_ip("::FFFF:10.0.0.1") == "10.0.0.1"
    assert canonical_ip("2001:DB8:0:0:0:0:0:1") == "2001:db8::1"
    assert canonical_ip("10.0.0.1") == "10.0.0.1"


def test_the_record_model_keeps_only_canonical_ips() -> None:
    def record(ip: str) -> NodeRecord:
        return NodeRecord(node=NODE, provider=NODE, ip=ip, port=1, pool_id=0, specs=ComputeSpecs())

    assert record("::ffff:127.0.0.5").ip == "127.0.0.5"
    assert record("2001:DB8::0001").ip == "2001:db8::1"
    for bad in ("010.0.0.1", "10.0.0.5/x?", "miner.example"):
        with pytest.raises(ValidationError, match="not an IP address"):
            record(bad)


def test_the_policy_allows_only_what_it_names() -> None:
    strict, devnet, lan = AddressPolicy(), AddressPolicy(allow_loopback=True), AddressPolicy(allow_private=True)
    refused = {text: kind for text, kind in CLASSES.items() if kind not in (AddressClass.GLOBAL, AddressClass.LOOPBACK)}
    for text, kind in refused.items():
        for policy in (strict, devnet) if kind is AddressClass.PRIVATE else (strict, devnet, lan):
            with pytest.raises(AddressRefusedError) as caught:
                policy.check(text)
            assert caught.value.reason == kind.value
    with pytest.raises(AddressRefusedError, match="PRIMENET_ALLOW_LOOPBACK_NODES"):
        strict.check("127.0.0.1")
    assert str(devnet.check("::ffff:127.0.0.1")) == "127.0.0.1"
    assert str(lan.check("10.0.0.5")) == "10.0.0.5"
    with pytest.raises(AddressRefusedError):
        lan.check("127.0.0.1")
    with pytest.raises(AddressRefusedError):  # loopback allowed never means link-local or unspecified allowed
        AddressPolicy(allow_loopback=True, allow_private=True).check("169.254.169.254")


def test_urls_are_built_from_parts() -> None:
    assert node_url("10.0.0.5", 8091, "/invite") == "http://10.0.0.5:8091/invite"
    assert node_url("::1", 8091, "/challenge/commit") == "http://[::1]:8091/challenge/commit"
    assert node_url("::ffff:10.0.0.5", 8091) == "http://10.0.0.5:8091/"
    for ip, port, path in (
        ("gpu-7.example", 80, "/"),
        ("10.0.0.5/x?", 80, "/"),
        ("10.0.0.5", 0, "/"),
        ("10.0.0.5", 65536, "/"),
        ("10.0.0.5", 80, "invite"),
        ("10.0.0.5", 80, "/invite?x=1"),
        ("10.0.0.5", 80, "/a#b"),
    ):
        with pytest.raises(ValueError, match=r"not an IP address|out of range|not a plain absolute path"):
            node_url(ip, port, path)


def test_the_ip_limit_counts_ipv4_addresses_and_ipv6_64s() -> None:
    assert ip_limit_key("10.0.0.5") == ip_limit_key("::ffff:10.0.0.5") == "10.0.0.5"
    assert ip_limit_key("2001:db8:1:2::1") == ip_limit_key("2001:db8:1:2:ffff::9") == "2001:db8:1:2::/64"
    assert ip_limit_key("2001:db8:1:3::1") != ip_limit_key("2001:db8:1:2::1")


def test_the_settings_name_the_policy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PRIMENET_ALLOW_LOOPBACK_NODES", raising=False)
    assert DiscoverySettings().node_addresses() == AddressPolicy()
    monkeypatch.setenv("PRIMENET_ALLOW_LOOPBACK_NODES", "true")
    monkeypatch.setenv("PRIMENET_ALLOW_PRIVATE_NODES", "1")
    assert DiscoverySettings().node_addresses() == AddressPolicy(allow_loopback=True, allow_private=True)


def test_a_miner_publishes_an_ip_literal_or_auto() -> None:
    assert MinerSettings(public_ip="auto").public_ip == "auto"
    assert MinerSettings(public_ip="::ffff:127.0.0.2").public_ip == "127.0.0.2"
    with pytest.raises(ValidationError, match="not an IP address"):
        MinerSettings(public_ip="gpu-7.example")
