#!/usr/bin/env bash
# The chaos suite: real tenured clusters under faults, histories checked for L1–L7
# (docs/RELIABILITY.md).
#
#   ci/chaos.sh                the short mode (inside .ci/run): every seeded bug must be caught,
#                              then one 3-node run with every fault once (about 2 minutes)
#   ci/chaos.sh --long         3- and 5-node runs with shuffled faults for 30 minutes
#   ci/chaos.sh ARGS...        any tenure-chaos arguments (see `tenure-chaos --help`)
#
# Builds in the shared target dir (profile ci). The seeded-bug check needs tenured and
# tenure-chaos built with the test-only feature `buggy`; those copies go to ci/seeded/ so the
# normal binaries stay what the campaign runs. Exits non-zero on any violation, uncaught seeded
# bug, inconclusive check or invalid run; a failed run's data directories and logs are kept and
# their path printed.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target}"
LOCKED=()
[[ "${CI:-}" == "true" ]] && LOCKED=(--locked)
BIN="$CARGO_TARGET_DIR/ci"
SEEDED="$BIN/seeded"

build_seeded() {
    local start=$SECONDS
    cargo build "${LOCKED[@]}" --profile ci -p tenure-server --bin tenured -p tenure-chaos --bin tenure-chaos \
        --features tenure-server/buggy,tenure-chaos/buggy
    mkdir -p "$SEEDED"
    cp "$BIN/tenured" "$BIN/tenure-chaos" "$SEEDED/"
    echo "== chaos: seeded build took $((SECONDS - start))s"
}

build_normal() {
    local start=$SECONDS
    cargo build "${LOCKED[@]}" --profile ci -p tenure-server --bin tenured -p tenure-chaos --bin tenure-chaos
    echo "== chaos: build took $((SECONDS - start))s"
}

rc=0
if [[ $# -eq 0 ]]; then
    build_seeded
    start=$SECONDS
    "$SEEDED/tenure-chaos" --seeded --tenured "$SEEDED/tenured" || rc=$?
    echo "== chaos: seeded bugs took $((SECONDS - start))s (exit $rc)"
    [[ $rc -ne 0 ]] && exit "$rc"
    set -- --nodes 3
fi

build_normal
args=("$@")
if [[ "${1:-}" == "--long" ]]; then
    args=(--minutes 30 --nodes 3,5 "${@:2}")
fi
start=$SECONDS
"$BIN/tenure-chaos" "${args[@]}" || rc=$?
echo "== chaos: runs took $((SECONDS - start))s (exit $rc)"
exit "$rc"
