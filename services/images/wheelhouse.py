"""Which requirements a wheelhouse lacks for another interpreter than the one that filled it.

The host's pip resolves the runtime dependencies with the host's Python, so environment markers are evaluated for
it: redis needs async-timeout only on Python < 3.11.3, which the host (3.11.7) skips and Debian bookworm (3.11.2)
needs. `pip download --python-version` does not change how markers are evaluated. So build-images.sh asks the base
image's interpreter for its marker environment and this module walks the wheels' metadata with it:

    python3 - --environment < wheelhouse.py        (in the image) its marker environment as JSON; stdlib only
    python wheelhouse.py WHEEL_DIR TARGET_ENV_JSON REQUIREMENT...

The second form prints one requirement per line that applies to the target and that no wheel in WHEEL_DIR
satisfies (nothing when the wheelhouse is complete); the caller `pip wheel`s those and asks again. Exit 2 on bad
input. `packaging` is imported only by the second form, so the first runs on a bare interpreter.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import zipfile
from collections.abc import Iterable
from email.parser import HeaderParser
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from packaging.requirements import Requirement
    from packaging.utils import NormalizedName
    from packaging.version import Version

    Wheels = dict[NormalizedName, tuple[Version, list[Requirement]]]


def marker_environment() -> dict[str, str]:
    """The running interpreter's values of the PEP 508 marker variables."""
    version = sys.implementation.version
    return {
        "implementation_name": sys.implementation.name,
        "implementation_version": f"{version.major}.{version.minor}.{version.micro}",
        "os_name": os.name,
        "platform_machine": platform.machine(),
        "platform_python_implementation": platform.python_implementation(),
        "platform_release": platform.release(),
        "platform_system": platform.system(),
        "platform_version": platform.version(),
        "python_full_version": platform.python_version(),
        "python_version": ".".join(platform.python_version_tuple()[:2]),
        "sys_platform": sys.platform,
    }


def read_wheels(folder: Path) -> Wheels:
    """Each wheel's project name -> (version, its Requires-Dist) from the wheel's METADATA."""
    from packaging.requirements import Requirement
    from packaging.utils import parse_wheel_filename

    found: Wheels = {}
    for path in sorted(folder.glob("*.whl")):
        name, version, _, _ = parse_wheel_filename(path.name)
        with zipfile.ZipFile(path) as wheel:
            metadata = next(n for n in wheel.namelist() if n.endswith(".dist-info/METADATA") and n.count("/") == 1)
            headers = HeaderParser().parsestr(wheel.read(metadata).decode())
        found[name] = (version, [Requirement(line) for line in headers.get_all("Requires-Dist") or []])
    return found


def missing(wheels: Wheels, roots: Iterable[Requirement], environment: dict[str, str]) -> list[Requirement]:
    """Requirements reachable from `roots` under `environment` (with the extras asked for) that no wheel meets."""
    from packaging.utils import canonicalize_name

    lacking: list[Requirement] = []
    seen: set[tuple[NormalizedName, str]] = set()
    pending = [(requirement, "") for requirement in roots]
    while pending:
        requirement, extra = pending.pop()
        if requirement.marker is not None and not requirement.marker.evaluate({**environment, "extra": extra}):
            continue
        name = canonicalize_name(requirement.name)
        have = wheels.get(name)
        if have is None or not requirement.specifier.contains(have[0], prereleases=True):
            lacking.append(requirement)
            continue
        for wanted in ["", *sorted(requirement.extras)]:
            if (name, wanted) in seen:
                continue
            seen.add((name, wanted))
            pending.extend((child, wanted) for child in have[1])
    return lacking


def without_marker(requirement: Requirement) -> str:
    extras = f"[{','.join(sorted(requirement.extras))}]" if requirement.extras else ""
    return f"{requirement.name}{extras}{requirement.specifier}"


def main(argv: list[str]) -> int:
    if argv == ["--environment"]:
        print(json.dumps(marker_environment()))
        return 0
    if len(argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    from packaging.requirements import InvalidRequirement, Requirement
    from packaging.utils import InvalidWheelFilename

    try:
        wheels = read_wheels(Path(argv[0]))
        environment = json.loads(argv[1])
        roots = [Requirement(text) for text in argv[2:]]
    except (InvalidRequirement, InvalidWheelFilename, ValueError, OSError, StopIteration) as error:
        print(f"wheelhouse: {error}", file=sys.stderr)
        return 2
    # Without the marker: it holds for the target, and the host's pip would evaluate it for the host.
    for requirement in dict.fromkeys(without_marker(r) for r in missing(wheels, roots, environment)):
        print(requirement)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
