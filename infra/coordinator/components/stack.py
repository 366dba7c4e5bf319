"""The whole coordinator: the parts in dependency order, and the stack outputs they add up to."""

from __future__ import annotations

from typing import Any

import pulumi

from components.chain import Chain
from components.contracts import Contracts
from components.docker_target import DockerWorkload
from components.redis import Redis
from components.services import Discovery, Orchestrator, ServiceContext, Validator
from components.spec import StackNaming
from config import StackConfig


class CoordinatorStack(pulumi.ComponentResource):
    """Chain and Redis first; then the contracts bootstrap (anvil mode); then discovery; then orchestrator and
    validator. Each step waits for the previous ones to be healthy (or, for the one-shot, finished).

    `outputs` holds the stack outputs: discoveryUrl, orchestratorUrl, validatorUrl, rpcUrl (secret when
    configured as one), chainId, poolId, contracts (name -> address), deployment (the file miners need),
    containers (names), stackLabel.
    """

    outputs: dict[str, Any]

    def __init__(self, config: StackConfig, naming: StackNaming, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("primenet:coordinator:Stack", naming.prefix, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        chain = Chain(config, naming, child)
        redis = Redis(config, naming, child)
        contracts = Contracts(config, naming, chain.local_rpc_url, depends_on=[chain, redis], opts=child)
        context = ServiceContext(
            config=config,
            naming=naming,
            chain=chain,
            redis=redis,
            contracts=contracts,
            admin_token=pulumi.Output.secret(config.admin_token.get_secret_value()),
        )
        discovery = Discovery(context, child)
        orchestrator = Orchestrator(context, discovery, child)
        validator = Validator(context, discovery, child)

        workloads: list[DockerWorkload | None] = [
            chain.workload,
            redis.workload,
            contracts.workload,
            discovery.workload,
            orchestrator.workload,
            validator.workload,
        ]
        self.outputs = {
            "discoveryUrl": discovery.url,
            "orchestratorUrl": orchestrator.url,
            "validatorUrl": validator.url,
            "rpcUrl": chain.rpc_url,
            "chainId": chain.chain_id,
            "poolId": contracts.pool_id,
            "contracts": contracts.contracts,
            "deployment": contracts.deployment,
            "containers": pulumi.Output.all(*[w.container_name for w in workloads if w is not None]),
            "stackLabel": naming.stack_label,
        }
        self.register_outputs(self.outputs)
