"""Redis on loopback with a password and an append-only file on a volume."""

from __future__ import annotations

import pulumi

from components.docker_target import DockerWorkload
from components.spec import LOOPBACK, SECRETS_DIR, HealthProbe, StackNaming, VolumeMount, WorkloadSpec
from config import StackConfig

CONF_PATH = f"{SECRETS_DIR}/redis.conf"


def redis_conf(password: str, port: int) -> str:
    """redis.conf: loopback only, password required, AOF in /data (the volume), fsynced before each reply so that
    what a service acknowledged survives the host's crash, not only a restart."""
    return "\n".join(
        [
            f"bind {LOOPBACK}",
            f"port {port}",
            "protected-mode yes",
            f"requirepass {password}",
            "appendonly yes",
            "appendfsync always",
            "dir /data",
            "",
        ]
    )


class Redis(pulumi.ComponentResource):
    """Outputs: `url` (secret: it carries the password), e.g. `redis://:PASSWORD@127.0.0.1:6379/0`.

    The password reaches the container only inside the 0600 config file given to `redis-server` as its argument.
    """

    url: pulumi.Output[str]

    def __init__(self, config: StackConfig, naming: StackNaming, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("primenet:coordinator:Redis", "redis", None, opts)
        port = config.ports.redis
        password = pulumi.Output.secret(config.redis_password.get_secret_value())
        self.url = pulumi.Output.secret(password.apply(lambda pw: f"redis://:{pw}@{LOOPBACK}:{port}/0"))
        spec = WorkloadSpec(
            part="redis",
            image=config.image("redis"),
            command=[CONF_PATH],
            secret_files={CONF_PATH: password.apply(lambda pw: redis_conf(pw, port))},
            volumes=[VolumeMount("redis-data", "/data", owned=True)],
            health=HealthProbe(["primenet-healthcheck", "redis", str(port)]),
            port=port,
        )
        self.workload = DockerWorkload(spec, naming, config.wait_timeout_s, pulumi.ResourceOptions(parent=self))
        self.register_outputs({})
