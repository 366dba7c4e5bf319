"""The `isolated` policy's firewall for real, inside network namespaces this test creates (never the machine's own).

Three namespaces stand in for a provider: `task` (a container on the task bridge), `host` (the provider's host:
the rules are applied here, on the interface that plays the bridge) and `out` (the world beyond the host: an allowed
address, the cloud metadata address 169.254.169.254 and a LAN address). Before the rules every address answers the
task (so the test can fail); after `firewall.apply` the host's own addresses, metadata and the LAN get nothing while
the allowed address still answers, and listeners record that no dropped connection arrived."""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import pytest

from primenet.miner import firewall

pytestmark = pytest.mark.integration

PORT = 18080
IP = shutil.which("ip") or "/usr/sbin/ip"
TASK_IP, GATEWAY = "10.231.0.2", "10.231.0.1"  # the task bridge's subnet; the gateway is the host's address
HOST_OUT, ALLOWED = "198.51.100.1", "198.51.100.2"  # the host's outward address; an allowed destination
METADATA, LAN = "169.254.169.254", "192.168.77.7"

SERVER = """
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", int(sys.argv[1])))
s.listen(16)
print("ready", flush=True)
while True:
    c, _ = s.accept()
    print("from", c.getpeername()[0], "to", c.getsockname()[0], flush=True)
    c.close()
"""
PROBE = """
import socket, sys
for address in sys.argv[2:]:
    try:
        socket.create_connection((address, int(sys.argv[1])), timeout=1.5).close()
        print(address, "open")
    except OSError as error:
        print(address, type(error).__name__)
"""


def sh(*command: str) -> None:
    subprocess.run(command, check=True, capture_output=True, timeout=30)


@dataclass
class Namespaces:
    task: str
    host: str
    out: str
    bridge: str  # the host's interface toward the task: the rules' `-i`

    def exec(self, namespace: str) -> list[str]:
        return [IP, "netns", "exec", namespace]

    def probe(self, *addresses: str) -> dict[str, str]:
        command = [*self.exec(self.task), sys.executable, "-c", PROBE, str(PORT), *addresses]
        output = subprocess.run(command, check=True, capture_output=True, text=True, timeout=60).stdout
        return dict(line.split() for line in output.splitlines())


@pytest.fixture
def namespaces() -> Iterator[Namespaces]:
    if os.geteuid() != 0 or shutil.which("ip") is None or shutil.which("iptables") is None:
        pytest.skip("needs root, ip and iptables to build network namespaces")
    tag = secrets.token_hex(3)
    made = Namespaces(task=f"pn-task-{tag}", host=f"pn-host-{tag}", out=f"pn-out-{tag}", bridge=f"pnt{tag}")
    try:
        sh(IP, "netns", "add", made.host)
    except subprocess.CalledProcessError as error:
        pytest.skip(f"cannot create a network namespace here: {error.stderr.decode().strip()}")
    created = [made.host]
    try:
        for namespace in (made.task, made.out):
            sh(IP, "netns", "add", namespace)
            created.append(namespace)
        h, t, o = made.exec(made.host), made.exec(made.task), made.exec(made.out)
        # Both veth pairs are made inside `host`, then one end moved: nothing touches the machine's namespace.
        sh(*h, "ip", "link", "add", made.bridge, "type", "veth", "peer", "name", "eth0", "netns", made.task)
        sh(*h, "ip", "link", "add", f"pno{tag}", "type", "veth", "peer", "name", "eth0", "netns", made.out)
        for ns in (h, t, o):
            sh(*ns, "ip", "link", "set", "lo", "up")
        sh(*h, "ip", "addr", "add", f"{GATEWAY}/24", "dev", made.bridge)
        sh(*h, "ip", "addr", "add", f"{HOST_OUT}/24", "dev", f"pno{tag}")
        sh(*h, "ip", "link", "set", made.bridge, "up")
        sh(*h, "ip", "link", "set", f"pno{tag}", "up")
        sh(*h, "sysctl", "-qw", "net.ipv4.ip_forward=1")
        for address in (METADATA, LAN):
            sh(*h, "ip", "route", "add", f"{address}/32", "via", ALLOWED)
        sh(*t, "ip", "addr", "add", f"{TASK_IP}/24", "dev", "eth0")
        sh(*t, "ip", "link", "set", "eth0", "up")
        sh(*t, "ip", "route", "add", "default", "via", GATEWAY)
        for address in (f"{ALLOWED}/24", f"{METADATA}/32", f"{LAN}/32"):
            sh(*o, "ip", "addr", "add", address, "dev", "eth0")
        sh(*o, "ip", "link", "set", "eth0", "up")
        sh(*o, "ip", "route", "add", "10.231.0.0/24", "via", HOST_OUT)
        yield made
    finally:
        for namespace in created:
            subprocess.run([IP, "netns", "del", namespace], capture_output=True, check=False, timeout=30)


class Listener:
    """A TCP listener on every address of one namespace, recording each connection's destination address."""

    def __init__(self, command: Sequence[str]) -> None:
        self.process = subprocess.Popen(
            [*command, sys.executable, "-c", SERVER, str(PORT)], stdout=subprocess.PIPE, text=True
        )
        assert self.process.stdout is not None
        assert self.process.stdout.readline().strip() == "ready"

    def stop(self) -> list[str]:
        """Stop, and return the addresses that connections arrived at."""
        self.process.terminate()
        output, _ = self.process.communicate(timeout=30)
        return [line.split()[-1] for line in output.splitlines() if line.startswith("from")]


def test_isolated_tasks_reach_the_world_but_not_the_host_metadata_or_lan(namespaces: Namespaces) -> None:
    blocked = (GATEWAY, HOST_OUT, METADATA, LAN)
    host = Listener(namespaces.exec(namespaces.host))
    out = Listener(namespaces.exec(namespaces.out))
    try:
        before = namespaces.probe(ALLOWED, *blocked)
        assert before == dict.fromkeys((ALLOWED, *blocked), "open")  # without the rules the task reaches all

        iptables = [*namespaces.exec(namespaces.host), "iptables"]
        parent = firewall.forward_parent(iptables)
        assert parent == "FORWARD"  # no Docker in this namespace
        steps = firewall.plan(namespaces.bridge, ["192.168.0.0/16"], forward_parent=parent)
        firewall.apply(steps, iptables)
        firewall.apply(steps, iptables)  # idempotent: a second apply adds nothing
        rules = subprocess.run([*iptables, "-S"], check=True, capture_output=True, text=True).stdout
        assert rules.count(f"-i {namespaces.bridge} -j {firewall.FORWARD_CHAIN}") == 1
        assert rules.count(f"-d {METADATA.rsplit('.', 2)[0]}.0.0/16 -j DROP") == 1

        after = namespaces.probe(ALLOWED, *blocked)
        assert after[ALLOWED] == "open"
        for address in blocked:
            assert after[address] == "TimeoutError", (address, after)  # dropped: no answer, not even a refusal
    finally:
        reached_host, reached_out = host.stop(), out.stop()
    # Each blocked address was reached exactly once: by the probe before the rules, none after.
    assert sorted(reached_host) == sorted([GATEWAY, HOST_OUT])
    assert sorted(reached_out) == sorted([ALLOWED, METADATA, LAN, ALLOWED])


def test_removal_takes_the_rules_out(namespaces: Namespaces) -> None:
    iptables = [*namespaces.exec(namespaces.host), "iptables"]
    firewall.apply(firewall.plan(namespaces.bridge, forward_parent="FORWARD"), iptables)
    assert namespaces.probe(METADATA)[METADATA] == "TimeoutError"
    firewall.remove(firewall.removal(namespaces.bridge, forward_parent="FORWARD"), iptables)
    rules = subprocess.run([*iptables, "-S"], check=True, capture_output=True, text=True).stdout
    assert "PRIMENET" not in rules
    assert namespaces.probe(METADATA)[METADATA] == "ConnectionRefusedError"  # reachable again (nobody listens)
