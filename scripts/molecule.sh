#!/usr/bin/env bash
# Runs the Molecule scenarios of the Ansible roles and playbooks, MOLECULE_JOBS at a time (default 2:
# they spend most of their time waiting on apt and on the services they start), and says how long each
# took. Prerequisites (make molecule-prereqs): the local test images (scripts/build-test-images.sh) and
# the collections (scripts/ansible-collections.sh).
#
#   scripts/molecule.sh                                  every scenario, the longest first
#   scripts/molecule.sh roles/docker_engine:default ...  some of them (<folder>:<scenario>)
#   MOLECULE_JOBS=1 scripts/molecule.sh                  one after the other
#   MOLECULE_VERBOSE=1 scripts/molecule.sh               stream Molecule's output, one at a time (else: logged,
#                                                        the log's end shown on failure)
#
# The scenarios can run side by side: each has its own containers (named by scenario), Molecule folder
# and free ports; none touches this machine's network (host networking, no bridge in any inner dockerd).
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

# Longest first (measured on two cores), so that side by side they end close together.
all=(
  roles/primenet_miner:default
  playbooks:default
  roles/docker_engine:default
  roles/nvidia_driver:gpu
  roles/nvidia_container_toolkit:default
  roles/nvidia_driver:default
)
scenarios=("$@")
[ ${#scenarios[@]} -gt 0 ] || scenarios=("${all[@]}")

# The stand-in repositories are signed with gpg and built with dpkg-deb on this machine.
if ! command -v gpg >/dev/null 2>&1; then
  echo "==> Installing gpg (signs the tests' stand-in apt repositories)"
  if [ "$(id -u)" -eq 0 ]; then apt-get install -y -qq gpg >/dev/null || { apt-get update -qq && apt-get install -y -qq gpg >/dev/null; }
  else sudo apt-get install -y -qq gpg >/dev/null; fi
fi

jobs_max=${MOLECULE_JOBS:-2}
[ "${MOLECULE_VERBOSE:-0}" = 1 ] && jobs_max=1
log_of() { local dir=${1%%:*} scenario=${1#*:}; echo "$logs/${dir//\//-}-$scenario.log"; }

# One scenario; leaves "<exit status> <seconds>" in <log>.result.
run_scenario() {
  local entry=$1 dir=${1%%:*} scenario=${1#*:} log rc start=$SECONDS
  log=$(log_of "$entry")
  printf '\033[1m==> molecule test -s %s in %s\033[0m\n' "$scenario" "$dir"
  if [ "${MOLECULE_VERBOSE:-0}" = 1 ]; then
    (cd "$dir" && molecule test -s "$scenario") 2>&1 | tee "$log"
    rc=${PIPESTATUS[0]}
  else
    (cd "$dir" && molecule test -s "$scenario") >"$log" 2>&1
    rc=$?
  fi
  echo "$rc $((SECONDS - start))" >"$log.result"
  if [ "$rc" -eq 0 ]; then echo "PASS  $((SECONDS - start))s  $entry"; else echo "FAIL  $((SECONDS - start))s  $entry"; fi
}

begin=$SECONDS
for entry in "${scenarios[@]}"; do
  rm -f "$(log_of "$entry").result"
  while [ "$(jobs -rp | wc -l)" -ge "$jobs_max" ]; do wait -n || true; done
  run_scenario "$entry" &
done
wait

passed=0 failed=0 summary=()
for entry in "${scenarios[@]}"; do
  log=$(log_of "$entry")
  read -r rc took <"$log.result" 2>/dev/null || { rc=1 took=0; }
  if [ "$rc" -eq 0 ]; then
    passed=$((passed + 1)); summary+=("PASS  ${took}s  $entry")
  else
    failed=$((failed + 1)); summary+=("FAIL  ${took}s  $entry  (log: ${log#"$repo"/})")
    if [ "${MOLECULE_VERBOSE:-0}" != 1 ]; then
      echo "---- last 60 lines of ${log#"$repo"/}"
      tail -n 60 "$log"
      echo "----"
    fi
  fi
done

echo
echo "Molecule scenarios ($jobs_max at a time, $((SECONDS - begin))s in all):"
printf '  %s\n' "${summary[@]}"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
