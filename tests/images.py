"""The primenet images for tests: built, or found in Docker's cache, by scripts/build-images.sh (`make images`)."""

from __future__ import annotations

import functools
import subprocess
import tomllib
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
BUILD_SCRIPT = REPO_ROOT / "scripts" / "build-images.sh"
SERVICES = ("discovery", "orchestrator", "validator", "miner")
IMAGES = (*SERVICES, "chain", "redis")
# A first build (debootstrap base, wheelhouse, six images) takes a few minutes on two cores; a cached one seconds.
BUILD_TIMEOUT_S = 1200


def image_version() -> str:
    """pyproject's project.version: the tag the script gives each image besides `dev`."""
    with (REPO_ROOT / "pyproject.toml").open("rb") as file:
        version: str = tomllib.load(file)["project"]["version"]
    return version


@functools.cache
def _build() -> tuple[tuple[str, str], ...]:
    result = subprocess.run([str(BUILD_SCRIPT)], capture_output=True, text=True, timeout=BUILD_TIMEOUT_S, check=False)
    if result.returncode != 0:
        tail = "\n".join((result.stdout + result.stderr).splitlines()[-30:])
        raise RuntimeError(f"{BUILD_SCRIPT.name} failed (exit {result.returncode}):\n{tail}")
    version = image_version()
    return tuple((name, f"primenet/{name}:{version}") for name in IMAGES)


def ensure_images() -> dict[str, str]:
    """Image name -> tag (`primenet/<name>:<version>`) of every image, built once per test process.

    Runs the build script, which is quick when nothing changed; raises RuntimeError with the script's last lines
    when it fails."""
    return dict(_build())
