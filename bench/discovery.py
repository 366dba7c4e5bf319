"""Discovery under load: registrations per second, and pool-listing latency with N (10,000) registered nodes.

Everything is real and local: a private Anvil with the contracts and N nodes registered on chain, a private
Redis (AOF on), and `primenet discovery` running as its own process (so the load generator does not share its
interpreter). Measured in one run:
  upload      signed PUT /api/nodes for all N nodes, 64 in flight (each checked against the chain)
  listing     signed GET /api/pool/0 returning all N nodes, one at a time (p50/p99)
  baseline    GET /health on the same server (p50), to read the listing latency against
Setup (putting N nodes on chain) is reported but not part of the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from coincurve import PrivateKey
from eth_abi.abi import encode
from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils.abi import function_signature_to_4byte_selector
from eth_utils.crypto import keccak

from primenet.chain.contracts import Network
from primenet.chain.deploy import deploy
from primenet.chain.rpc import connect
from primenet.core.auth import AUTH_HEADER, RequestSigner, sign_request
from primenet.core.models import ComputeSpecs, NodeRecord
from primenet.devnet.accounts import role_account
from primenet.devnet.local import Devnet, DevnetSettings
from primenet.devnet.processes import answers_health, free_port, spawn, stop, wait_ready
from results import record

ADD_NODE = function_signature_to_4byte_selector("addComputeNode(address,string,uint256,bytes)")
NODE_KEY_TYPEHASH = keccak(text="NodeKey(address provider,address node,uint256 nonce)")
IN_FLIGHT = 64


async def put_nodes_on_chain(network: Network, provider: LocalAccount, nodes: list[LocalAccount]) -> None:
    """addComputeNode for every node, encoded and signed locally and sent in JSON-RPC batches (setup only)."""
    separator: bytes = await network.prime.functions.domainSeparator().call()
    nonce = await network.w3.eth.get_transaction_count(provider.address)
    fee = 1000 * 10**9  # generous: a burst of full blocks raises the base fee, and an underpriced tx would stall
    raw: list[str] = []
    for i, node in enumerate(nodes):
        fields = [NODE_KEY_TYPEHASH, provider.address, node.address, 0]
        struct = keccak(encode(["bytes32", "address", "address", "uint256"], fields))
        digest = keccak(b"\x19\x01" + separator + struct)
        signature = PrivateKey(bytes(node.key)).sign_recoverable(digest, hasher=None)
        signature = signature[:64] + bytes((signature[64] + 27,))
        data = ADD_NODE + encode(["address", "string", "uint256", "bytes"], [node.address, "", 1, signature])
        tx: dict[str, Any] = {
            "to": network.prime.address,
            "data": data,
            "value": 0,
            "gas": 300_000,
            "nonce": nonce + i,
            "chainId": network.chain_id,
            "maxFeePerGas": fee,
            "maxPriorityFeePerGas": 10**9,
        }
        raw.append("0x" + bytes(provider.sign_transaction(tx).raw_transaction).hex())
    deadline = time.monotonic() + 600
    async with httpx.AsyncClient(timeout=120) as http:
        for start in range(0, len(raw), 250):
            batch = [
                {"jsonrpc": "2.0", "id": j, "method": "eth_sendRawTransaction", "params": [tx]}
                for j, tx in enumerate(raw[start : start + 250])
            ]
            replies = (await http.post(network.w3.provider.endpoint_uri, json=batch)).json()  # type: ignore[attr-defined]
            errors = [reply["error"] for reply in replies if "error" in reply]
            if errors:
                raise RuntimeError(f"sending addComputeNode failed: {errors[:3]}")
            # One batch mined before the next is sent: a node's pool only holds so many queued transactions.
            mined_up_to = nonce + min(start + 250, len(raw))
            while await network.w3.eth.get_transaction_count(provider.address) < mined_up_to:
                if time.monotonic() > deadline:
                    raise RuntimeError("the addComputeNode transactions were not mined within 600 s")
                # Automine builds one block per arriving transaction; what did not fit the gas limit waits for
                # the next arrival, so mine explicitly (this is a private Anvil).
                await network.w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]
    added = (await network.provider(provider.address)).node_count
    if added != len(nodes):
        raise RuntimeError(f"only {added} of {len(nodes)} nodes were added on chain")


async def chain_setup(rpc_url: str, n: int, deployment_file: Path) -> list[LocalAccount]:
    w3 = connect(rpc_url)
    federator, provider = role_account("federator"), role_account("provider")
    deployment = await deploy(w3, federator, stake_minimum=1)
    deployment.save(deployment_file)
    async with Network(w3, deployment) as network:
        fed = network.transactor(federator)
        await network.create_domain(fed, "bench")
        pool = await network.create_pool(fed, domain_id=0, manager=role_account("orchestrator").address, name="bench")
        await network.start_pool(fed, pool)
        await network.mint(fed, provider.address, 10 * n)
        await network.register_provider(network.transactor(provider), 2 * n)
        await network.whitelist_provider(fed, provider.address)
        nodes = [Account.create() for _ in range(n)]
        await put_nodes_on_chain(network, provider, nodes)
    return nodes


def start_discovery(env: dict[str, str], port: int, log: Path) -> Any:
    process = spawn([str(Path(sys.executable).with_name("primenet")), "discovery"], log)
    wait_ready(process, answers_health(f"http://127.0.0.1:{port}"), name="discovery", log_path=log, timeout_s=60)
    return process


async def uploads_per_s(url: str, nodes: list[LocalAccount]) -> float:
    provider = role_account("provider").address.lower()
    requests: list[tuple[bytes, str]] = []
    for i, node in enumerate(nodes):
        record = NodeRecord(
            node=node.address,
            provider=provider,
            ip=f"127.0.{i // 250}.{i % 250 + 1}",
            port=8091,
            pool_id=0,
            specs=ComputeSpecs(cpu_cores=8, ram_mib=32_000),
        )
        body = record.model_dump_json().encode()
        header = sign_request(node, method="PUT", path="/api/nodes", body=body, audience="discovery", chain_id=31337)
        requests.append((body, header))
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=httpx.Limits(max_connections=IN_FLIGHT)) as http:

        async def worker(share: list[tuple[bytes, str]]) -> None:
            for body, header in share:
                headers = {AUTH_HEADER: header, "content-type": "application/json"}
                response = await http.put("/api/nodes", content=body, headers=headers)
                if response.status_code != 200:
                    raise RuntimeError(f"upload refused: {response.status_code} {response.text}")

        start = time.perf_counter()
        await asyncio.gather(*(worker(requests[i::IN_FLIGHT]) for i in range(IN_FLIGHT)))
        return len(requests) / (time.perf_counter() - start)


async def latencies(url: str, path: str, account: LocalAccount | None, repeat: int) -> list[float]:
    auth = RequestSigner(account, audience="discovery", chain_id=31337) if account else None
    async with httpx.AsyncClient(base_url=url, timeout=60, auth=auth) as http:
        times = []
        for _ in range(repeat):
            start = time.perf_counter()
            response = await http.get(path)
            times.append(time.perf_counter() - start)
            response.raise_for_status()
        return times


def p(values: list[float], q: float) -> float:
    return sorted(values)[min(len(values) - 1, int(q * len(values)))] * 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", type=int, default=10_000, help="registered nodes (default 10000)")
    parser.add_argument("--repeat", type=int, default=20, help="listing requests to time (default 20)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        state = Path(tmp)
        devnet = Devnet(DevnetSettings(state_dir=state, anvil_port=free_port(), redis_port=free_port()))
        anvil, redis = devnet.start_anvil(), devnet.start_redis()
        discovery = None
        try:
            started = time.perf_counter()
            nodes = asyncio.run(chain_setup(anvil.url, args.n, state / "deployment.json"))
            print(f"setup: {args.n} nodes on chain in {time.perf_counter() - started:.1f} s")
            port = free_port()
            os.environ.update(
                {
                    "PRIMENET_REDIS_URL": redis.url,
                    "PRIMENET_RPC_URL": anvil.url,
                    "PRIMENET_DEPLOYMENT_FILE": str(state / "deployment.json"),
                    "PRIMENET_PORT": str(port),
                    "PRIMENET_LOG_LEVEL": "warning",
                    "PRIMENET_MAX_NODES_PER_IP": "1000",
                    "PRIMENET_ALLOW_LOOPBACK_NODES": "true",  # the simulated nodes list 127.0.0.x addresses
                    "PRIMENET_AUTH__RATE_LIMIT": "100000000",
                    "PRIMENET_AUTH__IP_RATE_LIMIT": "0",  # every simulated client sends from 127.0.0.1
                    "PRIMENET_AUTH__TIMESTAMP_WINDOW_S": "3600",
                }
            )
            discovery = start_discovery(dict(os.environ), port, state / "discovery.log")
            url = f"http://127.0.0.1:{port}"
            rate = asyncio.run(uploads_per_s(url, nodes))
            listing = asyncio.run(latencies(url, "/api/pool/0", role_account("orchestrator"), args.repeat))
            health = asyncio.run(latencies(url, "/health", None, args.repeat))
        finally:
            if discovery is not None:
                discovery.terminate()
                discovery.wait()
            stop(anvil)
            stop(redis)
    print(f"uploads (signed, chain-checked, {IN_FLIGHT} in flight)  {rate:8.0f} /s")
    print(f"GET /api/pool/0 with {args.n} nodes      p50 {p(listing, 0.5):7.1f} ms   p99 {p(listing, 0.99):7.1f} ms")
    print(f"GET /health (baseline)                   p50 {p(health, 0.5):7.1f} ms")
    print(f"listing / baseline p50: {p(listing, 0.5) / p(health, 0.5):.0f}x")
    record("discovery.py", f"N = {args.n:,}, signed uploads, {IN_FLIGHT} in flight", f"{rate:.0f}/s")
    record(
        "discovery.py",
        f"N = {args.n:,}, pool listing of all nodes, against `/health` p50 {p(health, 0.5):.1f} ms",
        f"p50 {p(listing, 0.5):.0f} ms, p99 {p(listing, 0.99):.0f} ms",
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
