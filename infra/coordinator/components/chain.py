"""The chain: an Anvil container on loopback (anvil mode) or an existing RPC endpoint (external mode)."""

from __future__ import annotations

import pulumi

from components.docker_target import DockerWorkload
from components.spec import LOOPBACK, HealthProbe, StackNaming, VolumeMount, WorkloadSpec
from config import StackConfig, config_is_secret


class Chain(pulumi.ComponentResource):
    """Outputs: `rpc_url` (secret when configured as one), `chain_id`; `local_rpc_url` in anvil mode, else None.

    Anvil keeps its state in `/data/anvil-state.json` on the `chain-data` volume, so a restarted container
    resumes the same chain (and the deployment file on the contracts volume stays valid).
    """

    rpc_url: pulumi.Output[str]
    local_rpc_url: str | None
    chain_id: int
    workload: DockerWorkload | None

    def __init__(self, config: StackConfig, naming: StackNaming, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("primenet:coordinator:Chain", "chain", None, opts)
        self.chain_id = config.chain_id
        if config.external:
            url = config.chain.rpc_url or ""
            self.rpc_url = pulumi.Output.secret(url) if config_is_secret("chain") else pulumi.Output.from_input(url)
            self.local_rpc_url = None
            self.workload = None
        else:
            port = config.ports.chain
            self.local_rpc_url = f"http://{LOOPBACK}:{port}"
            self.rpc_url = pulumi.Output.from_input(self.local_rpc_url)
            spec = WorkloadSpec(
                part="chain",
                image=config.image("chain"),
                command=[
                    "--host",
                    LOOPBACK,
                    "--port",
                    str(port),
                    "--chain-id",
                    str(self.chain_id),
                    "--state",
                    "/data/anvil-state.json",
                ],
                volumes=[VolumeMount("chain-data", "/data", owned=True)],
                health=HealthProbe(["primenet-healthcheck", "rpc", str(port)]),
                port=port,
            )
            self.workload = DockerWorkload(spec, naming, config.wait_timeout_s, pulumi.ResourceOptions(parent=self))
        self.register_outputs({"chainId": self.chain_id})
