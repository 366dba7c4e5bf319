"""The Docker target: a `WorkloadSpec` becomes a `RemoteImage`, its `Volume`s and one `Container`.

Only these three pulumi-docker resource types are used, with host networking (the services bind their own
addresses). Secrets go in as `uploads` with mode 0600 owned by the image's user, their content marked secret.
A long-running container is restarted `unless-stopped` and `pulumi up` waits (`wait`) until its health check
passes, so dependents start against a ready service; a one-shot container runs attached to completion and its
output is `container_logs`.
"""

from __future__ import annotations

import pulumi
import pulumi_docker as docker

from components.spec import RUN_AS, StackNaming, WorkloadSpec


class DockerWorkload(pulumi.ComponentResource):
    """One workload on the Docker host in `DOCKER_HOST`.

    Outputs: `container` (the resource), `container_name`, `container_logs` (one-shot only: what it printed).
    """

    container: docker.Container
    container_name: pulumi.Output[str]
    container_logs: pulumi.Output[str]

    def __init__(
        self,
        spec: WorkloadSpec,
        naming: StackNaming,
        wait_timeout_s: int,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        name = f"{spec.part}-workload"
        super().__init__("primenet:docker:Workload", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        labels = naming.labels(spec.part)

        # keep_locally: destroying the stack must not delete images the operator built or loaded.
        image = docker.RemoteImage(f"{spec.part}-image", name=spec.image, keep_locally=True, opts=child)

        created = {
            mount.volume: docker.Volume(
                f"{mount.volume}-volume",
                name=naming.volume(mount.volume),
                labels=[docker.VolumeLabelArgs(label=key, value=value) for key, value in labels.items()],
                opts=child,
            )
            for mount in spec.volumes
            if mount.owned
        }
        volumes = [
            docker.ContainerVolumeArgs(
                volume_name=created[mount.volume].name if mount.owned else naming.volume(mount.volume),
                container_path=mount.path,
                read_only=mount.read_only,
            )
            for mount in spec.volumes
        ]

        uploads = [
            docker.ContainerUploadArgs(
                file=path, content=pulumi.Output.secret(content), owner=RUN_AS, group=RUN_AS, permissions="0600"
            )
            for path, content in sorted(spec.secret_files.items())
        ] + [
            docker.ContainerUploadArgs(file=path, content=content, owner=RUN_AS, group=RUN_AS, permissions="0644")
            for path, content in sorted(spec.plain_files.items())
        ]

        envs = [pulumi.Output.concat(key, "=", value) for key, value in sorted(spec.env.items())]
        long_running = not spec.one_shot
        self.container = docker.Container(
            f"{spec.part}-container",
            name=naming.container(spec.part),
            image=image.image_id,
            network_mode="host",
            user=f"{RUN_AS}:{RUN_AS}",
            envs=envs,
            command=list(spec.command),
            uploads=uploads,
            volumes=volumes,
            healthcheck=_healthcheck(spec),
            labels=[docker.ContainerLabelArgs(label=key, value=value) for key, value in labels.items()],
            restart="unless-stopped" if long_running else "no",
            must_run=long_running,
            wait=long_running and spec.health is not None,
            wait_timeout=wait_timeout_s,
            attach=spec.one_shot,
            logs=spec.one_shot,
            opts=pulumi.ResourceOptions(parent=self, depends_on=list(spec.depends_on)),
        )
        self.container_name = self.container.name
        self.container_logs = self.container.container_logs.apply(lambda logs: logs or "")
        self.register_outputs({"containerName": self.container_name})


def _healthcheck(spec: WorkloadSpec) -> docker.ContainerHealthcheckArgs:
    if spec.health is None:
        # A one-shot container built from a service image must not inherit the image's HEALTHCHECK.
        return docker.ContainerHealthcheckArgs(tests=["NONE"])
    probe = spec.health
    return docker.ContainerHealthcheckArgs(
        tests=["CMD", *probe.command],
        interval=f"{probe.interval_s}s",
        timeout=f"{probe.timeout_s}s",
        start_period=f"{probe.start_period_s}s",
        retries=probe.retries,
    )
