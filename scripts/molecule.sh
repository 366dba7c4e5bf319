#!/usr/bin/env bash
# Runs the Molecule scenarios of the Ansible roles and playbooks, one after the other, and says how
# long each took. Prerequisites (make molecule-prereqs): the local test images
# (scripts/build-test-images.sh) and the collections (scripts/ansible-collections.sh).
#
#   scripts/molecule.sh                                  every scenario
#   scripts/molecule.sh roles/docker_engine:default ...  some of them (<folder>:<scenario>)
#   MOLECULE_VERBOSE=1 scripts/molecule.sh               stream Molecule's output (else: logged, shown on failure)
#
# Logs: .cache/molecule/<folder>-<scenario>.log. Exits non-zero when a scenario fails.
set -uo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
logs="$repo/.cache/molecule"
mkdir -p "$logs"

export PATH="$repo/.venv/bin:$PATH"
export ANSIBLE_COLLECTIONS_PATH="$repo/.cache/collections"
export ANSIBLE_FORCE_COLOR=0 PY_COLORS=0 NO_COLOR=1

all=(
  roles/nvidia_driver:default
  roles/nvidia_driver:gpu
  roles/docker_engine:default
  roles/nvidia_container_toolkit:default
  roles/primenet_miner:default
  playbooks:default
)
scenarios=("$@")
[ ${#scenarios[@]} -gt 0 ] || scenarios=("${all[@]}")

# The stand-in repositories are signed with gpg and built with dpkg-deb on this machine.
if ! command -v gpg >/dev/null 2>&1; then
  echo "==> Installing gpg (signs the tests' stand-in apt repositories)"
  if [ "$(id -u)" -eq 0 ]; then apt-get install -y -qq gpg >/dev/null || { apt-get update -qq && apt-get install -y -qq gpg >/dev/null; }
  else sudo apt-get install -y -qq gpg >/dev/null; fi
fi

passed=0 failed=0 summary=()
for entry in "${scenarios[@]}"; do
  dir=${entry%%:*} scenario=${entry#*:}
  log="$logs/${dir//\//-}-$scenario.log"
  printf '\033[1m==> molecule test -s %s in %s\033[0m\n' "$scenario" "$dir"
  start=$SECONDS
  if [ "${MOLECULE_VERBOSE:-0}" = 1 ]; then
    (cd "$dir" && molecule test -s "$scenario") 2>&1 | tee "$log"
    rc=${PIPESTATUS[0]}
  else
    (cd "$dir" && molecule test -s "$scenario") >"$log" 2>&1
    rc=$?
  fi
  took=$((SECONDS - start))
  if [ "$rc" -eq 0 ]; then
    passed=$((passed + 1)); summary+=("PASS  ${took}s  $dir:$scenario")
  else
    failed=$((failed + 1)); summary+=("FAIL  ${took}s  $dir:$scenario  (log: ${log#"$repo"/})")
    if [ "${MOLECULE_VERBOSE:-0}" != 1 ]; then
      echo "---- last 60 lines of $log"
      tail -n 60 "$log"
      echo "----"
    fi
  fi
  echo "${summary[-1]}"
done

echo
echo "Molecule scenarios:"
printf '  %s\n' "${summary[@]}"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
