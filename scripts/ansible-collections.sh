#!/usr/bin/env bash
# Puts the Ansible collections that Molecule and the playbooks' tests need under .cache/collections,
# taken from the PyPI `ansible` wheel (Ansible Galaxy is not reachable here). Quick when present.
#
#   scripts/ansible-collections.sh          extract what is missing
#   ANSIBLE_WHEEL_VERSION=12.* ...          which `ansible` release to take them from
#
# Collections: community.docker (Molecule's docker driver), its dependency
# community.library_inventory_filtering_v1, and ansible.posix. Point ANSIBLE_COLLECTIONS_PATH at
# .cache/collections to use them. The wheel is downloaded into .cache/ and never committed.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
dest="$repo/.cache/collections"
wheels="$repo/.cache/ansible-wheel"
python="${PYTHON:-$repo/.venv/bin/python}"
version="${ANSIBLE_WHEEL_VERSION:-12.*}"
wanted=(community/docker community/library_inventory_filtering_v1 ansible/posix)

missing=()
for c in "${wanted[@]}"; do
  [ -f "$dest/ansible_collections/$c/MANIFEST.json" ] || missing+=("$c")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "collections present in $dest"
  exit 0
fi

printf '\033[1m==> %s\033[0m\n' "Extracting Ansible collections (${missing[*]}) from the ansible==$version wheel"
mkdir -p "$dest" "$wheels"
wheel=$(ls "$wheels"/ansible-*.whl 2>/dev/null | head -n 1 || true)
if [ -z "$wheel" ]; then
  "$python" -m pip download -q --no-deps --only-binary=:all: --dest "$wheels" "ansible==$version"
  wheel=$(ls "$wheels"/ansible-*.whl | head -n 1)
fi
"$python" - "$wheel" "$dest" "${missing[@]}" <<'PY'
import sys
import zipfile

wheel, dest, *collections = sys.argv[1:]
prefixes = tuple(f"ansible_collections/{c}/" for c in collections)
with zipfile.ZipFile(wheel) as archive:
    members = [m for m in archive.namelist() if m.startswith(prefixes)]
    for c in collections:
        if not any(m.startswith(f"ansible_collections/{c}/") for m in members):
            sys.exit(f"{c} is not in {wheel}")
    archive.extractall(dest, members)
print(f"extracted {len(members)} files into {dest}")
PY
