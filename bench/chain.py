"""How long does registering N compute nodes take: one transaction at a time, or pipelined?

Measured in one run against a private Anvil (automine), through `primenet.chain`:
  sequential  each `addComputeNode` is estimated, signed, sent, and its receipt awaited before the next;
  pipelined   all are estimated, signed and sent back to back with consecutive nonces (`send_many`), then
              every receipt is awaited together.
Both include the node-key EIP-712 signatures. Prints nodes/s for each and their ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

from eth_account import Account
from web3.contract.async_contract import AsyncContractFunction

from primenet.chain.contracts import Network
from primenet.chain.deploy import deploy
from primenet.chain.rpc import connect
from primenet.devnet.accounts import role_account
from primenet.devnet.local import Devnet, DevnetSettings
from primenet.devnet.processes import free_port, stop
from results import record

TOKEN = 10**18


async def add_nodes(network: Network, n: int, *, pipelined: bool) -> float:
    """Register n fresh nodes for the provider; returns the elapsed seconds."""
    provider = network.transactor(role_account("provider"))
    nodes = [Account.create() for _ in range(n)]
    start = time.perf_counter()
    if pipelined:
        calls: list[AsyncContractFunction] = []
        for node in nodes:
            # Each node key's first signature uses nonce 0; no read needed per node.
            signature = await network.node_key_signature(node, provider.address)
            calls.append(network.add_node_call(node.address, "", 1, signature))
        await provider.send_many(calls)
    else:
        for node in nodes:
            await network.add_node(provider, node, compute_units=1)
    return time.perf_counter() - start


async def measure(rpc_url: str, n: int) -> tuple[float, float]:
    w3 = connect(rpc_url)
    federator = role_account("federator")
    deployment = await deploy(w3, federator, stake_minimum=TOKEN)
    async with Network(w3, deployment) as network:
        fed = network.transactor(federator)
        provider = network.transactor(role_account("provider"))
        await network.mint(fed, provider.address, 4 * n * TOKEN)
        await network.register_provider(provider, 2 * n * TOKEN + TOKEN)
        await network.whitelist_provider(fed, provider.address)
        sequential = await add_nodes(network, n, pipelined=False)
        pipelined = await add_nodes(network, n, pipelined=True)
        assert (await network.provider(provider.address)).node_count == 2 * n
    return sequential, pipelined


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", type=int, default=200, help="nodes per measurement (default 200)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as state_dir:
        devnet = Devnet(DevnetSettings(state_dir=Path(state_dir), anvil_port=free_port()))
        anvil = devnet.start_anvil()
        try:
            sequential, pipelined = asyncio.run(measure(anvil.url, args.n))
        finally:
            stop(anvil)
    print(f"register {args.n} nodes, sequential   {sequential:7.2f} s   {args.n / sequential:8.1f} nodes/s")
    print(f"register {args.n} nodes, pipelined    {pipelined:7.2f} s   {args.n / pipelined:8.1f} nodes/s")
    print(f"pipelined / sequential throughput: {sequential / pipelined:.1f}x")
    record("chain.py", f"N = {args.n} nodes, sequential", f"{args.n / sequential:.0f} nodes/s", "baseline")
    record(
        "chain.py",
        f"N = {args.n} nodes, pipelined, against sequential",
        f"{args.n / pipelined:.0f} nodes/s, {sequential / pipelined:.1f}x",
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
