#!/usr/bin/env python3
"""Build a small signed apt repository that stands in for an upstream one in Molecule tests.

Docker's and NVIDIA's apt repositories cannot be reached from the project's machines. The roles'
scenarios point the repository URL at a repository built by this script and served from a
``file://`` URI inside the test container, so that the roles' whole upstream path runs for real:
the keyring is fetched, the deb822 source is written, apt verifies the repository's signature
with that keyring, honours the pin, and installs the package. The packages are stubs described
by a JSON spec; the README of each role says what they stand in for.

    fake_apt_repo.py --spec SPEC.json --out DIR

SPEC.json::

    {"suite": null,                      # null: a flat repository ("Suites: /"); else a suite name
     "component": "stable",              # with a suite: the component
     "architectures": ["amd64", "arm64"],
     "packages": [{"name": "nvidia-open", "version": "580.65.06-1",
                   "depends": "", "description": "...",
                   "files": {"/usr/bin/nvidia-smi": "files/nvidia-smi"}}]}

Paths in "files" are relative to the spec. DIR receives the repository, ``key.asc``, the
armored public key that signs it (a throwaway key made for this repository), and ``key.fingerprint``. Needs gpg and
dpkg-deb on the machine that runs it.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path


def run(*args: str, **kwargs: object) -> None:
    subprocess.run(args, check=True, stdout=subprocess.DEVNULL, **kwargs)  # type: ignore[call-overload]


def build_deb(package: dict[str, object], spec_dir: Path, pool: Path, work: Path) -> Path:
    name, version = str(package["name"]), str(package["version"])
    arch = str(package.get("architecture", "all"))
    root = work / f"{name}_{version}"
    (root / "DEBIAN").mkdir(parents=True)
    files = package.get("files", {})
    assert isinstance(files, dict)
    for dest, src in files.items():
        target = root / str(dest).lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(spec_dir / str(src), target)
        target.chmod(0o755 if "/bin/" in str(dest) else 0o644)
    control = [
        f"Package: {name}",
        f"Version: {version}",
        f"Architecture: {arch}",
        "Maintainer: primenet tests <tests@primenet.invalid>",
        "Section: misc",
        "Priority: optional",
    ]
    if package.get("depends"):
        control.append(f"Depends: {package['depends']}")
    description = str(package.get("description", f"stand-in for {name}"))
    control.append(f"Description: {description}")
    (root / "DEBIAN" / "control").write_text("\n".join(control) + "\n")
    deb = pool / f"{name}_{version.replace(':', '%3a')}_{arch}.deb"
    run("dpkg-deb", "--root-owner-group", "-Zgzip", "--build", str(root), str(deb))
    return deb


def control_of(deb: Path) -> str:
    out = subprocess.run(["dpkg-deb", "--field", str(deb)], check=True, capture_output=True, text=True)
    return out.stdout.strip()


def packages_index(debs: list[Path], base: Path) -> str:
    stanzas = []
    for deb in debs:
        data = deb.read_bytes()
        stanzas.append(
            "\n".join(
                [
                    control_of(deb),
                    f"Filename: {deb.relative_to(base).as_posix()}",
                    f"Size: {len(data)}",
                    f"MD5sum: {hashlib.md5(data).hexdigest()}",  # noqa: S324 (apt's index format)
                    f"SHA256: {hashlib.sha256(data).hexdigest()}",
                ]
            )
        )
    return "\n\n".join(stanzas) + "\n"


def release_file(fields: list[str], indexes: dict[str, bytes]) -> str:
    lines = [*fields, "Date: " + (datetime.now(UTC) - timedelta(hours=1)).strftime("%a, %d %b %Y %H:%M:%S UTC")]
    for algo, attr in (("MD5Sum", "md5"), ("SHA256", "sha256")):
        lines.append(f"{algo}:")
        for path, data in indexes.items():
            lines.append(f" {getattr(hashlib, attr)(data).hexdigest()} {len(data):>8} {path}")
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--spec", required=True, type=Path)
    parser.add_argument("--out", required=True, type=Path)
    args = parser.parse_args()
    for tool in ("gpg", "dpkg-deb"):
        if not shutil.which(tool):
            print(f"fake_apt_repo: {tool} is needed (apt-get install gpg dpkg)", file=sys.stderr)
            return 1

    spec = json.loads(args.spec.read_text())
    spec_dir = args.spec.resolve().parent
    out: Path = args.out
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    suite = spec.get("suite")
    component = spec.get("component", "main")
    architectures = spec.get("architectures", ["amd64", "arm64"])

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        pool = out if suite is None else out / "pool" / component
        pool.mkdir(parents=True, exist_ok=True)
        debs = [build_deb(p, spec_dir, pool, work / "build") for p in spec.get("packages", [])]

        if suite is None:  # flat repository: Packages and Release at the top
            index = packages_index(debs, out).encode()
            (out / "Packages").write_bytes(index)
            release_dir = out
            release = release_file(["Origin: primenet-tests", "Label: primenet-tests"], {"Packages": index})
        else:
            release_dir = out / "dists" / suite
            indexes: dict[str, bytes] = {}
            for arch in architectures:
                index = packages_index(debs, out).encode()
                rel = f"{component}/binary-{arch}/Packages"
                (release_dir / rel).parent.mkdir(parents=True, exist_ok=True)
                (release_dir / rel).write_bytes(index)
                indexes[rel] = index
            release = release_file(
                [
                    "Origin: primenet-tests",
                    "Label: primenet-tests",
                    f"Suite: {suite}",
                    f"Codename: {suite}",
                    f"Architectures: {' '.join(architectures)}",
                    f"Components: {component}",
                ],
                indexes,
            )
        (release_dir / "Release").write_text(release)

        gnupg = work / "gnupg"
        gnupg.mkdir(mode=0o700)
        env = {**os.environ, "GNUPGHOME": str(gnupg)}
        gpg = ("gpg", "--batch", "--quiet", "--pinentry-mode", "loopback", "--passphrase", "")
        run(*gpg, "--quick-gen-key", "primenet test repository <tests@primenet.invalid>", "ed25519", "sign", "1d",
            env=env)
        run(*gpg, "--digest-algo", "SHA512", "--clearsign", "-o", str(release_dir / "InRelease"),
            str(release_dir / "Release"), env=env)
        run(*gpg, "--digest-algo", "SHA512", "--armor", "--detach-sign", "-o", str(release_dir / "Release.gpg"),
            str(release_dir / "Release"), env=env)
        key = subprocess.run([*gpg, "--armor", "--export"], check=True, capture_output=True, env=env).stdout
        (out / "key.asc").write_bytes(key)
        listing = subprocess.run([*gpg, "--with-colons", "--list-keys"], check=True, capture_output=True, text=True,
                                 env=env).stdout
        fingerprint = next(line.split(":")[9] for line in listing.splitlines() if line.startswith("fpr:"))
        (out / "key.fingerprint").write_text(fingerprint + "\n")

    for path in out.rglob("*"):
        path.chmod(0o755 if path.is_dir() else 0o644)
    print(f"repository with {len(debs)} package(s) in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
