"""The contracts and the pool: a one-shot `primenet chain bootstrap` (anvil mode) or an existing deployment.

Anvil mode: the orchestrator image runs `primenet chain bootstrap --json` once; it deploys unless the deployment
file on the `contracts-deployment` volume is live on the chain, creates (or reuses) a domain and a pool managed
by the orchestrator's address, and prints one JSON object as its last line. The pool id the orchestrator needs
and the contract addresses the stack exports are read from that line, so the services depend on it as data and
start only after it finished. External mode: no container; the deployment JSON from the config is uploaded as a
plain file into each service, and the pool id comes from the config.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pulumi
from pydantic import BaseModel, ConfigDict, ValidationError

from components.docker_target import DockerWorkload
from components.spec import DEPLOYMENT_DIR, DEPLOYMENT_FILE, SECRETS_DIR, StackNaming, VolumeMount, WorkloadSpec
from config import DEPLOYER_INDEX, MANAGER_INDEX, VALIDATOR_INDEX, StackConfig, address_of

DEPLOYER_KEY_FILE = f"{SECRETS_DIR}/deployer_key"
DEPLOYMENT_VOLUME = "contracts-deployment"


class BootstrapDeployment(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)

    chain_id: int
    contracts: dict[str, str]


class BootstrapResult(BaseModel):
    """The JSON object `primenet chain bootstrap --json` prints as its last line."""

    model_config = ConfigDict(extra="allow", frozen=True)

    deployed: bool
    pool_created: bool
    pool_id: int
    domain_id: int
    deployment: BootstrapDeployment


class BootstrapOutputError(ValueError):
    """The one-shot container printed no (valid) result line; the message quotes its last lines."""


def parse_bootstrap(logs: str) -> BootstrapResult:
    """The result from the one-shot's output: its last line that starts with a JSON object.

    Attached output may carry Docker's 8-byte stream header before each line, so a `{` counts as the start when
    it opens the line or follows such a header (a non-printable prefix of at most 8 characters).
    """
    lines = [line.strip() for line in logs.replace("\r", "").split("\n") if line.strip()]
    for line in reversed(lines):
        starts = [i for i in range(min(len(line), 9)) if line[i] == "{" and (i == 0 or not line[:i].isprintable())]
        if not starts:
            continue
        problem = ""
        for start in starts:
            try:
                return BootstrapResult.model_validate_json(line[start:])
            except ValidationError as exc:
                first = exc.errors()[0]
                problem = f"{'.'.join(str(part) for part in first['loc'])}: {first['msg']}"
        raise BootstrapOutputError(f"the contracts bootstrap printed an unexpected result ({problem})")
    tail = "\n".join(lines[-5:]) or "(no output)"
    raise BootstrapOutputError(f"the contracts bootstrap printed no JSON result; its last lines:\n{tail}")


class Contracts(pulumi.ComponentResource):
    """Outputs: `pool_id`, `contracts` (name -> address), `deployment` (the whole deployment file, which miners
    need: `pulumi stack output deployment --json`); what services need to read the deployment file.

    `service_volumes` and `service_files` are what each service adds to its spec so that
    `/run/primenet/deployment/deployment.json` holds the deployment; `depends_on` is what they wait for.
    """

    pool_id: pulumi.Output[int]
    contracts: pulumi.Output[dict[str, str]]
    deployment: pulumi.Output[dict[str, Any]]
    service_volumes: Sequence[VolumeMount]
    service_files: Mapping[str, pulumi.Input[str]]
    depends_on: Sequence[pulumi.Resource]
    workload: DockerWorkload | None

    def __init__(
        self,
        config: StackConfig,
        naming: StackNaming,
        rpc_url: str | None,
        depends_on: Sequence[pulumi.Resource],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("primenet:coordinator:Contracts", "contracts", None, opts)
        if config.external:
            deployment = config.existing_deployment
            self.pool_id = pulumi.Output.from_input(config.pool_id or 0)
            self.contracts = pulumi.Output.from_input(dict(deployment.contracts))
            self.deployment = pulumi.Output.from_input(deployment.model_dump())
            self.service_volumes = ()
            self.service_files = {DEPLOYMENT_FILE: config.chain.deployment or ""}
            self.depends_on = ()
            self.workload = None
        else:
            validator = address_of(config.key("validator_key", VALIDATOR_INDEX))
            manager = address_of(config.key("manager_key", MANAGER_INDEX))
            deployer_key = pulumi.Output.secret(config.key("deployer_key", DEPLOYER_INDEX))
            spec = WorkloadSpec(
                part="contracts",
                image=config.image("orchestrator"),
                command=["chain", "bootstrap", "--validator", validator, "--manager", manager, "--json"],
                env={
                    "PRIMENET_RPC_URL": rpc_url or "",
                    "PRIMENET_DEPLOYMENT": DEPLOYMENT_FILE,
                    "PRIMENET_KEY_FILE": DEPLOYER_KEY_FILE,
                },
                secret_files={DEPLOYER_KEY_FILE: deployer_key},
                volumes=[VolumeMount(DEPLOYMENT_VOLUME, DEPLOYMENT_DIR, owned=True)],
                one_shot=True,
                depends_on=depends_on,
            )
            self.workload = DockerWorkload(spec, naming, config.wait_timeout_s, pulumi.ResourceOptions(parent=self))
            result = self.workload.container_logs.apply(parse_bootstrap)
            self.pool_id = result.apply(lambda r: r.pool_id)
            self.contracts = result.apply(lambda r: dict(r.deployment.contracts))
            self.deployment = result.apply(lambda r: r.deployment.model_dump())
            self.service_volumes = (VolumeMount(DEPLOYMENT_VOLUME, DEPLOYMENT_DIR, read_only=True),)
            self.service_files = {}
            self.depends_on = (self,)
        self.register_outputs({"poolId": self.pool_id, "contracts": self.contracts, "deployment": self.deployment})
