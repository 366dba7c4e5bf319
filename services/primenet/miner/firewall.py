"""The iptables rules of the `isolated` task network: what a task may not reach from the provider's host.

Contract: a packet that enters from the task bridge (`-i <bridge>`) is dropped when it is addressed to the host
itself (any of its addresses: the INPUT path, so the miner's API, Redis, Anvil and sshd are out of reach whatever
address they bind), or is forwarded to link-local/metadata 169.254.0.0/16 (always) or to one of the blocked
ranges (the provider's LAN; `DEFAULT_BLOCKED`). Anything else is forwarded as Docker would (the internet, when
the network is not internal). Replies to a task's own connections come in on another interface and are not
matched.

`plan()` is pure: it returns idempotent steps (a check and the action taken when the check fails), which
`script()` prints as shell and `apply()` runs. The rules live in two chains of our own, flushed and refilled on
every apply, entered from INPUT and from DOCKER-USER (Docker keeps that chain ahead of its own rules across
restarts) or FORWARD where Docker manages no iptables. `remove()` undoes them.
"""

from __future__ import annotations

import ipaddress
import shlex
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass

IN_CHAIN = "PRIMENET-TASKS-IN"
FORWARD_CHAIN = "PRIMENET-TASKS-FWD"
LINK_LOCAL = "169.254.0.0/16"
# The private ranges a provider's LAN uses, and carrier-grade NAT; IPv4 only (the task network has no IPv6).
DEFAULT_BLOCKED = ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10")

Runner = Callable[[Sequence[str]], int]


def cidr(value: str) -> str:
    """An IPv4 network in canonical form (`10.1.2.3/8` is refused: host bits set); ValueError otherwise."""
    network = ipaddress.ip_network(value.strip(), strict=True)
    if network.version != 4:
        raise ValueError(f"{value!r}: only IPv4 ranges are filtered (the task network has no IPv6)")
    return str(network)


@dataclass(frozen=True)
class Step:
    """Run `action` unless `check` succeeds (no check: always)."""

    action: tuple[str, ...]
    check: tuple[str, ...] | None = None


def plan(
    interface: str, blocked: Sequence[str] = DEFAULT_BLOCKED, *, forward_parent: str = "DOCKER-USER"
) -> list[Step]:
    """The steps that make the rules of the contract hold for the bridge `interface` (iptables arguments)."""
    ranges = [LINK_LOCAL, *(r for r in (cidr(b) for b in blocked) if r != LINK_LOCAL)]
    steps: list[Step] = []
    for chain in (IN_CHAIN, FORWARD_CHAIN):
        steps.append(Step(("-N", chain), check=("-n", "-L", chain)))
        steps.append(Step(("-F", chain)))
    # To the host itself: nothing. A task has no business with the provider's own services.
    steps.append(Step(("-A", IN_CHAIN, "-j", "DROP")))
    for network in ranges:
        steps.append(Step(("-A", FORWARD_CHAIN, "-d", network, "-j", "DROP")))
    steps.append(Step(("-A", FORWARD_CHAIN, "-j", "RETURN")))
    for parent, chain in (("INPUT", IN_CHAIN), (forward_parent, FORWARD_CHAIN)):
        jump = (parent, "-i", interface, "-j", chain)
        steps.append(Step(("-I", parent, "1", *jump[1:]), check=("-C", *jump)))
    return steps


def removal(interface: str, *, forward_parent: str = "DOCKER-USER") -> list[Step]:
    """The steps that take the rules out again (each one tolerated when already gone)."""
    steps = [
        Step(("-D", "INPUT", "-i", interface, "-j", IN_CHAIN)),
        Step(("-D", forward_parent, "-i", interface, "-j", FORWARD_CHAIN)),
    ]
    for chain in (IN_CHAIN, FORWARD_CHAIN):
        steps += [Step(("-F", chain)), Step(("-X", chain))]
    return steps


def script(steps: Sequence[Step], iptables: Sequence[str] = ("iptables",)) -> str:
    """The steps as a shell script a provider can read or run."""
    base = " ".join(shlex.quote(part) for part in iptables)
    lines = []
    for step in steps:
        action = f"{base} {shlex.join(step.action)}"
        if step.check is None:
            lines.append(action)
        else:
            lines.append(f"{base} {shlex.join(step.check)} >/dev/null 2>&1 || {action}")
    return "\n".join(lines) + "\n"


class FirewallError(RuntimeError):
    """An iptables command failed."""


def _run(command: Sequence[str]) -> int:
    return subprocess.run(list(command), capture_output=True, check=False, timeout=30).returncode


def apply(steps: Sequence[Step], iptables: Sequence[str] = ("iptables",), *, run: Runner = _run) -> None:
    """Run the steps; FirewallError names the first action that failed."""
    for step in steps:
        if step.check is not None and run([*iptables, *step.check]) == 0:
            continue
        if run([*iptables, *step.action]) != 0:
            raise FirewallError(f"iptables {shlex.join(step.action)} failed")


def remove(steps: Sequence[Step], iptables: Sequence[str] = ("iptables",), *, run: Runner = _run) -> None:
    """Run removal steps, ignoring those whose rule or chain is already gone."""
    for step in steps:
        run([*iptables, *step.action])


def forward_parent(iptables: Sequence[str] = ("iptables",), *, run: Runner = _run) -> str:
    """DOCKER-USER where Docker manages iptables (the chain exists), else FORWARD."""
    return "DOCKER-USER" if run([*iptables, "-n", "-L", "DOCKER-USER"]) == 0 else "FORWARD"
