"""Realise the coordinator program on a real dockerd without the Pulumi CLI: mocks that do what the provider does.

The Pulumi CLI and the docker provider plugin cannot run on our machines (toolchain.md section 5), so the program is
run under `pulumi.runtime.set_mocks` with `DockerRealiser` as the mocks: each `docker.RemoteImage`, `docker.Volume`
and `docker.Container` the program registers is made on the local engine with the Docker SDK, with the inputs the
program gave it (image, env, command, user, uploads with owner, group and mode, volumes, health check, restart
policy, labels), and it returns only once the provider would: after `wait` the container is healthy, after
`attach` a one-shot container has exited with status 0 (its logs become `containerLogs`). Pulumi orders the
registrations by the program's dependencies, as the engine does, so a dependent container is created only after
what it depends on returned. So the containers are exactly the ones the program declares: there is no second
description of them. `destroy` removes what this realiser made, newest first, and nothing else.

What the real provider does that this does not: pull from a registry (an absent image is an error here), diff
and update in place on a second `pulumi up` (this realises once), owner names (only numeric ids are resolved).
"""

from __future__ import annotations

import io
import re
import tarfile
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import docker
import docker.errors
import pulumi
import requests
from pulumi.runtime import rpc

SECRET_SIG = rpc._special_secret_sig  # how the mocks receive a secret: {SIG_KEY: SECRET_SIG, "value": ...}
SIG_KEY = rpc._special_sig_key
GO_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
NANOSECONDS = {"ns": 1, "us": 10**3, "µs": 10**3, "ms": 10**6, "s": 10**9, "m": 60 * 10**9, "h": 3600 * 10**9}
DEFAULT_WAIT_TIMEOUT_S = 60.0  # the provider's default for `wait_timeout`


class RealiseError(Exception):
    """A resource that could not be made as declared; the message says which and why (with the container's logs)."""


def reveal(value: Any) -> Any:
    """`value` with Pulumi's secret wrappers removed (the mocks receive secrets as `{sig: secret, value: ...}`)."""
    if isinstance(value, dict):
        if value.get(SIG_KEY) == SECRET_SIG:
            return reveal(value["value"])
        return {key: reveal(item) for key, item in value.items()}
    if isinstance(value, list):
        return [reveal(item) for item in value]
    return value


def nanoseconds(duration: str) -> int:
    """A Go duration as the provider takes it (`10s`, `1m30s`, `500ms`) in nanoseconds, as dockerd takes it."""
    parts = GO_DURATION.findall(duration)
    if not parts or "".join(number + unit for number, unit in parts) != duration:
        raise RealiseError(f"{duration!r} is not a duration such as 10s or 1m30s")
    return int(sum(float(number) * NANOSECONDS[unit] for number, unit in parts))


def upload_archive(uploads: list[dict[str, Any]]) -> bytes:
    """A tar of the uploads with the owner, group and mode each asks for (the provider's defaults: root, 0644)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for upload in uploads:
            content = str(upload.get("content") or "").encode()
            info = tarfile.TarInfo(str(upload["file"]).lstrip("/"))
            info.size = len(content)
            default_mode = 0o744 if upload.get("executable") else 0o644
            info.mode = int(upload["permissions"], 8) if upload.get("permissions") else default_mode
            info.uid = int(upload.get("owner") or 0)
            info.gid = int(upload.get("group") or 0)
            info.mtime = int(time.time())
            archive.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


def labels_of(inputs: dict[str, Any]) -> dict[str, str]:
    return {str(item["label"]): str(item["value"]) for item in inputs.get("labels") or []}


@dataclass
class DockerRealiser(pulumi.runtime.Mocks):
    """Pulumi mocks that create what each docker resource describes on the engine of `client`.

    `made` lists (kind, id) of everything created, oldest first; `resources` records each registration's type,
    name and revealed inputs, in order, for tests that look at what was declared.
    """

    client: docker.DockerClient
    made: list[tuple[str, str]] = field(default_factory=list)
    resources: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str | None, dict[Any, Any]]:
        inputs = reveal(args.inputs)
        with self.lock:
            self.resources.append((args.typ, args.name, inputs))
        if args.typ == "docker:index/remoteImage:RemoteImage":
            return self._image(inputs)
        if args.typ == "docker:index/volume:Volume":
            return self._volume(inputs)
        if args.typ == "docker:index/container:Container":
            return self._container(args.name, inputs)
        if not args.custom:
            return None, {}
        raise RealiseError(f"{args.typ} ({args.name}) is not a resource this realiser can make on dockerd")

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict[Any, Any], list[tuple[str, str]] | None]:
        raise RealiseError(f"the program invoked {args.token}, which this realiser does not implement")

    def _record(self, kind: str, ident: str) -> None:
        with self.lock:
            self.made.append((kind, ident))

    def _image(self, inputs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        name = str(inputs["name"])
        try:
            image = self.client.images.get(name)
        except docker.errors.ImageNotFound:
            raise RealiseError(
                f"image {name} is not on the Docker host and no registry is reachable: make images"
            ) from None
        # keep_locally: the image is never removed by destroy, so it is not recorded in `made`.
        return image.id, {**inputs, "imageId": image.id, "repoDigest": (image.attrs.get("RepoDigests") or [""])[0]}

    def _volume(self, inputs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        volume = self.client.volumes.create(name=inputs.get("name"), labels=labels_of(inputs))
        self._record("volume", str(volume.name))
        return str(volume.name), {**inputs, "name": volume.name, "mountpoint": volume.attrs.get("Mountpoint", "")}

    def _container(self, resource: str, inputs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        health = inputs.get("healthcheck")
        container = self.client.containers.create(
            str(inputs["image"]),
            name=inputs.get("name"),
            command=inputs.get("command"),
            entrypoint=inputs.get("entrypoints"),
            environment=list(inputs.get("envs") or []),
            user=inputs.get("user") or "",
            group_add=list(inputs.get("groupAdds") or []) or None,
            network_mode=inputs.get("networkMode") or "default",
            volumes={
                str(mount["volumeName"]): {
                    "bind": str(mount["containerPath"]),
                    "mode": "ro" if mount.get("readOnly") else "rw",
                }
                for mount in inputs.get("volumes") or []
            },
            healthcheck=(
                {
                    "test": list(health["tests"]),
                    "interval": nanoseconds(health.get("interval", "30s")),
                    "timeout": nanoseconds(health.get("timeout", "30s")),
                    "start_period": nanoseconds(health.get("startPeriod", "0s")),
                    "retries": int(health.get("retries", 3)),
                }
                if health
                else None
            ),
            restart_policy={"Name": inputs.get("restart") or "no"},
            labels=labels_of(inputs),
        )
        self._record("container", str(container.id))
        if inputs.get("uploads"):
            container.put_archive("/", upload_archive(inputs["uploads"]))
        container.start()
        timeout_s = float(inputs.get("waitTimeout") or DEFAULT_WAIT_TIMEOUT_S)
        state: dict[str, Any] = {}
        if inputs.get("attach"):
            state = self._await_exit(resource, container, timeout_s)
        elif inputs.get("wait"):
            self._await_healthy(resource, container, timeout_s)
        elif inputs.get("mustRun", True):
            self._await_running(resource, container)
        return str(container.id), {**inputs, **state}

    def _await_exit(self, resource: str, container: Any, timeout_s: float) -> dict[str, Any]:
        try:
            status = container.wait(timeout=timeout_s)
        except requests.exceptions.RequestException:
            logs = container.logs(tail=40).decode(errors="replace")
            raise RealiseError(
                f"{resource}: the one-shot container ran over {timeout_s:.0f} s; logs:\n{logs}"
            ) from None
        logs = container.logs(stdout=True, stderr=True).decode(errors="replace")
        code = int(status.get("StatusCode", -1))
        if code != 0:
            raise RealiseError(f"{resource}: the one-shot container exited with {code}; its logs:\n{logs[-4000:]}")
        return {"containerLogs": logs, "exitCode": code}

    def _await_healthy(self, resource: str, container: Any, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            container.reload()
            state = container.attrs["State"]
            health = (state.get("Health") or {}).get("Status")
            if health == "healthy":
                return
            if not state.get("Running") and state.get("Status") == "exited":
                break
            time.sleep(0.25)
        logs = container.logs(tail=40).decode(errors="replace")
        raise RealiseError(f"{resource}: not healthy within {timeout_s:.0f} s ({state.get('Status')}); logs:\n{logs}")

    def _await_running(self, resource: str, container: Any) -> None:
        container.reload()
        if not container.attrs["State"].get("Running"):
            logs = container.logs(tail=40).decode(errors="replace")
            raise RealiseError(f"{resource}: exited right after starting; logs:\n{logs}")

    def destroy(self) -> None:
        """Remove every container and volume this realiser made, newest first; ones already gone are skipped."""
        for kind, ident in reversed(self.made):
            try:
                if kind == "container":
                    self.client.containers.get(ident).remove(force=True, v=False)
                else:
                    self.client.volumes.get(ident).remove(force=True)
            except docker.errors.NotFound:
                pass
        self.made.clear()
