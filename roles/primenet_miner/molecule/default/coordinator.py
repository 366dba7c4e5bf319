"""The scenario's coordinator on this machine: the devnet without its own miner, and a federator that whitelists.

    coordinator.py up STATE_DIR                   start it on free loopback ports, print its JSON (below)
    coordinator.py whitelist STATE_DIR PROVIDER   (started by `up`) whitelist PROVIDER once it registered

The devnet's chain-only mode gives Anvil, Redis, the contracts, domain 0 and pool 0; discovery, the validator and
the orchestrator are then started by the devnet's own launcher, exactly as `primenet devnet up` starts them, and
all of them, the whitelister included, are recorded in STATE_DIR/devnet.json: `primenet devnet down --state-dir
STATE_DIR` stops every one. The miner is the role's, in the test host's Docker engine; its provider is Anvil's dev
account 8, which the devnet knows nothing about (public keys: a local network only). `up` prints
{"rpc_url", "discovery_url", "orchestrator_url", "deployment_file", "admin_token_file", "provider",
"provider_key_file", "federator_key_file", "miner_port"}; run again, it starts nothing and prints the same.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path

from eth_account.signers.local import LocalAccount

from primenet.chain.contracts import Network
from primenet.chain.deployment import Deployment
from primenet.devnet.accounts import dev_account, role_account
from primenet.devnet.local import Devnet, DevnetSettings, DevnetState
from primenet.devnet.processes import ManagedProcess, free_port, spawn
from primenet.devnet.services import LaunchConfig, ServiceLauncher, admin_token

PROVIDER_ACCOUNT = 8  # not one of the devnet roles (primenet.devnet.accounts.ROLES)
SERVICES = ("discovery", "validator", "orchestrator")
HEARTBEAT_INTERVAL_S = 2.0
WHITELIST_TIMEOUT_S = 1800.0


def _progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _key_file(path: Path, account: LocalAccount) -> Path:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    path.touch(mode=0o600, exist_ok=True)
    path.chmod(0o600)
    path.write_text(account.key.hex() + "\n")
    return path


def _save(devnet: Devnet, state: DevnetState) -> None:
    temporary = devnet.state_path.with_suffix(".tmp")
    temporary.write_text(state.model_dump_json(indent=2))
    temporary.replace(devnet.state_path)


def _describe(devnet: Devnet, state: DevnetState) -> dict[str, str]:
    keys = devnet.state_dir / "keys"
    provider = dev_account(PROVIDER_ACCOUNT)
    return {
        "rpc_url": state.rpc_url,
        "discovery_url": state.processes["discovery"].url,
        "orchestrator_url": state.processes["orchestrator"].url,
        "deployment_file": state.deployment_file,
        "admin_token_file": str(devnet.state_dir / "admin.token"),
        "provider": provider.address,
        "provider_key_file": str(_key_file(keys / "scenario-provider.key", provider)),
        "federator_key_file": str(_key_file(keys / "federator.key", role_account("federator"))),
        "miner_port": _miner_port(devnet.state_dir),
    }


def _miner_port(state_dir: Path) -> str:
    """A free port for the role's miner, chosen once: converge and the idempotence run must agree on it."""
    path = state_dir / "scenario-miner.port"
    if not path.exists():
        path.write_text(f"{free_port()}\n")
    return path.read_text().strip()


def up(state_dir: Path) -> dict[str, str]:
    """Start what is not running (all of it, after a partial failure) and describe the coordinator."""
    devnet = Devnet(DevnetSettings(state_dir=state_dir, anvil_port=free_port(), redis_port=free_port(), services=False))
    recorded = devnet.recorded()
    if recorded is not None and all(devnet.running().values()) and "whitelister" in recorded.processes:
        return _describe(devnet, recorded)
    devnet.down()
    state, _ = devnet.up(progress=_progress)
    ports = {"anvil": devnet.settings.anvil_port, "redis": devnet.settings.redis_port}
    ports |= {service: free_port() for service in SERVICES}
    launch = LaunchConfig(
        host=devnet.settings.host,
        ports=ports,
        rpc_url=state.rpc_url,
        redis_port=devnet.settings.redis_port,
        deployment_file=state.deployment_file,
        heartbeat_interval_s=HEARTBEAT_INTERVAL_S,
    )
    launcher = ServiceLauncher(
        launch, state_dir=devnet.state_dir, timeout_s=devnet.settings.start_timeout_s, progress=_progress
    )
    admin_token(devnet.state_dir)
    # Recorded as each starts, so that `devnet down` stops what started even if a later one fails.
    state.launch = launch
    for service in SERVICES:
        state.processes[service] = launcher.start(service)
        _save(devnet, state)
    log = devnet.state_dir / "whitelister.log"
    provider = dev_account(PROVIDER_ACCOUNT).address
    process = spawn([sys.executable, str(Path(__file__).resolve()), "whitelist", str(devnet.state_dir), provider], log)
    state.processes["whitelister"] = ManagedProcess.of("whitelister", process, port=0, url="", log=log)
    _save(devnet, state)
    return _describe(devnet, state)


async def whitelist(state_dir: Path, provider: str) -> None:
    """Play the federator: wait until `provider` registered (the miner does that), then whitelist it."""
    devnet = Devnet(DevnetSettings(state_dir=state_dir, services=False))
    state = devnet.recorded()
    if state is None:
        raise SystemExit(f"no devnet state in {devnet.state_path}")
    deployment = Deployment.load(Path(state.deployment_file))
    async with Network.connect(state.rpc_url, deployment) as network:
        deadline = time.monotonic() + WHITELIST_TIMEOUT_S
        while not (info := await network.provider(provider)).is_registered:
            if time.monotonic() > deadline:
                raise SystemExit(f"provider {provider} did not register within {WHITELIST_TIMEOUT_S:.0f} s")
            await asyncio.sleep(0.5)
        if not info.is_whitelisted:
            await network.whitelist_provider(network.transactor(role_account("federator")), provider)
        _progress(f"provider {provider} whitelisted by the federator")


def main(argv: list[str]) -> int:
    if len(argv) == 2 and argv[0] == "up":
        print(json.dumps(up(Path(argv[1]))))
        return 0
    if len(argv) == 3 and argv[0] == "whitelist":
        asyncio.run(whitelist(Path(argv[1]), argv[2]))
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
