#!/usr/bin/env bash
# The test command of tenure: runs every test of the repository, from any directory.
#
#   ci/test.sh              every phase, in order, stopping at the first failure
#   ci/test.sh clippy test  only the phases named
#
# Environment:
#   CARGO_TARGET_DIR   build directory shared by every phase (default: target, at the repo root)
#   TEST_KEEP_GOING=1  run the remaining phases after a failure (exit status still non-zero)
#   TEST_PHASE_TIMEOUT seconds one phase may take before it is killed (default 3600)
#   CI=true            also pass --locked to cargo (Cargo.lock must be current)
#
# A phase is one function `phase_<name>` plus one entry in PHASES; it runs in a child bash with
# `set -euo pipefail`, so any failing command fails the phase. Each phase prints its timing, and a summary
# table ends the run.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-auto}"
export RUST_BACKTRACE="${RUST_BACKTRACE:-1}"
PHASE_TIMEOUT="${TEST_PHASE_TIMEOUT:-3600}"

# One build profile for clippy and tests, so build scripts and proc-macros compile once for both.
CARGO_PROFILE=(--profile ci)
CARGO_LOCKED=()
if [[ "${CI:-}" == "true" ]]; then
    CARGO_LOCKED=(--locked)
fi

# ---- phases ---------------------------------------------------------------------------------

PHASES=(fmt clippy test sdk_python sdk_c sdk_node bench chaos)

phase_fmt() {
    cargo fmt --all -- --check
}

phase_clippy() {
    cargo clippy "${CARGO_LOCKED[@]}" --workspace --all-targets "${CARGO_PROFILE[@]}" -- -D warnings
    # The test-only seeded bugs and fail points are linted too.
    cargo clippy "${CARGO_LOCKED[@]}" --workspace --all-targets "${CARGO_PROFILE[@]}" \
        --features tenure-server/buggy,tenure/buggy,tenure-chaos/buggy -- -D warnings
}

phase_test() {
    cargo test "${CARGO_LOCKED[@]}" --workspace "${CARGO_PROFILE[@]}" 2>&1 | tee -a "$TEST_RESULTS"
    # Storage fail points (write and fsync errors) need the test-only feature; run after the
    # suite above, never beside it: both builds write the same target/ci/tenured. The feature
    # set is the one ci/chaos.sh builds its seeded binaries with, so they share the compile.
    cargo test "${CARGO_LOCKED[@]}" -p tenure-server --features tenure-server/buggy,tenure/buggy --test disk \
        "${CARGO_PROFILE[@]}" 2>&1 | tee -a "$TEST_RESULTS"
}

# The Python SDK: a fresh venv, `pip install ./sdk-python`, stubtest, mypy, ruff, pytest against
# a 3-node cluster.
phase_sdk_python() {
    ci/sdk-python.sh
}

# The C SDK: header freshness, CMake build, ctest (shared and static) against a 3-node cluster,
# C++ compile check, install + pkg-config + find_package, valgrind.
phase_sdk_c() {
    ci/sdk-c.sh
}

# The Node SDK: npm install + napi build, npm pack installed in a temp project (require and
# import), tsc --noEmit, node --test against 3-node clusters.
phase_sdk_node() {
    ci/sdk-node.sh
}

# The quick benchmark against etcd (about 2 minutes), so ci/bench.sh keeps working; its figures
# are printed, never asserted.
phase_bench() {
    ci/bench.sh
}

# The short chaos mode: every seeded bug caught, then one 3-node cluster under every fault once,
# history checked (L1–L7).
phase_chaos() {
    ci/chaos.sh
}

# ---- runner ---------------------------------------------------------------------------------

SELF="$ROOT/ci/test.sh"
# Every phase appends its test runner's output here, so the run can end with one total.
if [[ "${1:-}" != "__phase" ]]; then
    TEST_RESULTS=$(mktemp)
    export TEST_RESULTS
    trap 'rm -f "$TEST_RESULTS"' EXIT
fi
SUMMARY=()
FAILED=()
CHILD=
INTERRUPTED=0
RUN_START=$SECONDS

# run_phase NAME: runs phase_NAME in a child bash (so `set -e` holds inside it) under a time
# limit, and records its duration and outcome.
run_phase() {
    local name=$1 start rc=0 took
    echo
    echo "== phase: $name"
    start=$SECONDS
    if command -v timeout >/dev/null 2>&1; then
        # timeout puts the phase in its own process group and kills the whole group when time
        # runs out, so no test process outlives the phase. That group does not see a terminal's
        # Ctrl-C, hence the trap that passes INT/TERM on.
        timeout --kill-after=30 "$PHASE_TIMEOUT" "$BASH" "$SELF" __phase "$name" &
        CHILD=$!
        trap 'INTERRUPTED=1; kill -TERM "$CHILD" 2>/dev/null || true' INT TERM
        wait "$CHILD" || rc=$?
        # A signal ends `wait` early; wait again for the child (timeout bounds how long).
        while kill -0 "$CHILD" 2>/dev/null; do
            rc=0
            wait "$CHILD" || rc=$?
        done
        trap - INT TERM
        CHILD=
    else
        "$BASH" "$SELF" __phase "$name" || rc=$?
    fi
    took=$((SECONDS - start))
    local outcome=ok
    if ((INTERRUPTED)); then
        outcome="interrupted"
    elif ((rc == 124 || rc == 137)); then
        outcome="timed out after ${PHASE_TIMEOUT}s (exit $rc)"
    elif ((rc != 0)); then
        outcome="failed (exit $rc)"
    fi
    echo "== phase: $name took ${took}s: $outcome"
    SUMMARY+=("$(printf '%-10s %6ss  %s' "$name" "$took" "$outcome")")
    [[ "$outcome" == ok ]] || FAILED+=("$name")
    return 0
}

# Sums every runner's "test result: ok. N passed; M failed" line.
test_totals() {
    awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
         END { printf "%d %d\n", p, f }' "$TEST_RESULTS"
}

print_summary() {
    echo
    echo "== summary (target dir: $CARGO_TARGET_DIR, profile: ci)"
    local line
    for line in "${SUMMARY[@]}"; do
        echo "   $line"
    done
    echo "   total      $(printf '%6ss' $((SECONDS - RUN_START)))"
}

main() {
    local selected=("$@") name known k
    if ((${#selected[@]} == 0)); then
        selected=("${PHASES[@]}")
    fi
    for name in "${selected[@]}"; do
        known=0
        for k in "${PHASES[@]}"; do [[ "$k" == "$name" ]] && known=1; done
        if ((known == 0)); then
            echo "ci/test.sh: unknown phase '$name' (phases: ${PHASES[*]})" >&2
            exit 2
        fi
    done

    echo "== tenure tests in $ROOT: phases ${selected[*]}"
    # etcd-client (the benchmark's etcd driver) compiles etcd's .proto files with a system protoc.
    ci/apt.sh protoc:protobuf-compiler /usr/include/google/protobuf/descriptor.proto:libprotobuf-dev
    for name in "${selected[@]}"; do
        run_phase "$name"
        ((INTERRUPTED)) && break
        if ((${#FAILED[@]} > 0)) && [[ "${TEST_KEEP_GOING:-0}" != "1" ]]; then
            break
        fi
    done
    print_summary
    if ((INTERRUPTED)); then
        echo "== INTERRUPTED"
        exit 130
    fi
    if ((${#FAILED[@]} > 0)); then
        echo "== FAILED: ${FAILED[*]}"
        exit 1
    fi
    local totals passed failed
    totals=$(test_totals)
    passed=${totals% *}
    failed=${totals#* }
    if [[ " ${selected[*]} " == *" test "* ]] && ((passed == 0)); then
        echo "== FAILED: the test phase ran no test"
        exit 1
    fi
    echo "== all phases passed"
    echo "tests: $passed passed, $failed failed"
}

# Internal: `ci/test.sh __phase NAME` runs one phase in this process (used by run_phase).
if [[ "${1:-}" == "__phase" ]]; then
    "phase_$2"
    exit 0
fi

main "$@"
