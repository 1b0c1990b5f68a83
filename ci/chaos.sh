#!/usr/bin/env bash
# The chaos suite: real tenured clusters under faults, histories checked for L1–L7
# (docs/RELIABILITY.md).
#
#   ci/chaos.sh                one 3-node run with every fault once (about a minute)
#   ci/chaos.sh --long         3- and 5-node runs with shuffled faults for 30 minutes
#   ci/chaos.sh ARGS...        any tenure-chaos arguments (see `tenure-chaos --help`)
#
# Builds tenured and tenure-chaos in the shared target dir (profile ci) first. Exits non-zero on
# any violation, inconclusive check or invalid run; the nodes' data directories and logs of a
# failed run are kept and their path printed.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target}"
LOCKED=()
[[ "${CI:-}" == "true" ]] && LOCKED=(--locked)

start=$SECONDS
cargo build "${LOCKED[@]}" --profile ci -p tenure-server --bin tenured -p tenure-chaos --bin tenure-chaos
echo "== chaos: build took $((SECONDS - start))s"

args=("$@")
if [[ "${1:-}" == "--long" ]]; then
    args=(--minutes 30 --nodes 3,5 "${@:2}")
fi
start=$SECONDS
rc=0
"$CARGO_TARGET_DIR/ci/tenure-chaos" "${args[@]}" || rc=$?
echo "== chaos: runs took $((SECONDS - start))s (exit $rc)"
exit "$rc"
