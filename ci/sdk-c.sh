#!/usr/bin/env bash
# Everything CI checks for the C SDK (sdk-c/, crate bindings/c), from a fresh clone:
#
#   1. sdk-c/include/tenure.h is what cbindgen generates from bindings/c (else: stale, fail);
#   2. cmake configure + build (the build drives cargo: libtenure.so/.a and tenured), then ctest:
#      C tests linked shared and static against a real 3-node cluster (a CTest fixture on free
#      loopback ports), the lock_run example, a C++ program, and valgrind memcheck of one short
#      test program;
#   3. tenure.h compiles as C99 and as C++ with -Wall -Wextra -Werror -pedantic (gcc, g++);
#   4. cmake --install to a temporary prefix, moved elsewhere (relocatable), then found by
#      pkg-config (tenure, tenure-static) and by find_package(tenure) from a separate project,
#      whose programs (shared and static) take a lock on a cluster of their own.
#
# It installs what it lacks (cmake, pkg-config, valgrind, g++) with apt-get on Debian/Ubuntu.
# Environment: CARGO_TARGET_DIR (default: target/ at the repo root), CI=true (cargo --locked),
# TEST_RESULTS (a file: one "test result:" line with ctest's counts is appended),
# SDKC_BUILD_DIR (keep the CMake build there instead of a temporary directory).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
START=$SECONDS
PROFILE=ci # the profile ci/test.sh builds, so the compile is shared
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target}"
[[ "$CARGO_TARGET_DIR" == /* ]] || CARGO_TARGET_DIR="$ROOT/$CARGO_TARGET_DIR"
CARGO_LOCKED=()
[[ "${CI:-}" == "true" ]] && CARGO_LOCKED=(--locked)

step() {
    echo
    echo "== sdk-c: $* ($((SECONDS - START))s)"
}

# ---- tools ----------------------------------------------------------------------------------
step "tools"
# make: Debian's cmake only recommends it, and apt.sh installs no recommends.
ci/apt.sh cmake:cmake make:make pkg-config:pkg-config valgrind:valgrind g++:g++
command -v cargo >/dev/null 2>&1 || [[ ! -x "$HOME/.cargo/bin/cargo" ]] || export PATH="$HOME/.cargo/bin:$PATH"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/tenure-sdk-c.XXXXXX")
BUILD="${SDKC_BUILD_DIR:-$WORK/build}"
CLUSTER="$WORK/cluster"
cleanup() {
    bash "$ROOT/sdk-c/tests/cluster.sh" stop "$CLUSTER" || true
    # A cluster ctest left behind (interrupted run) is stopped too; cluster.sh only signals
    # the tenured processes whose pid files it wrote.
    bash "$ROOT/sdk-c/tests/cluster.sh" stop "$BUILD/tests/cluster" || true
    rm -rf "$WORK"
}
trap cleanup EXIT

# ---- 1. the header is current ---------------------------------------------------------------
step "checking that sdk-c/include/tenure.h is current"
cargo test "${CARGO_LOCKED[@]}" --profile "$PROFILE" -p tenure-c --test header

# ---- 2. build and ctest ---------------------------------------------------------------------
step "cmake configure and build in $BUILD (cargo profile $PROFILE, target $CARGO_TARGET_DIR)"
cmake -S sdk-c -B "$BUILD" -DTENURE_CARGO_PROFILE="$PROFILE" -DTENURE_CARGO_TARGET_DIR="$CARGO_TARGET_DIR" \
    -DTENURE_CARGO_FLAGS="${CARGO_LOCKED[*]}"
cmake --build "$BUILD" -j "$(getconf _NPROCESSORS_ONLN 2>/dev/null || echo 2)"

step "ctest (3-node cluster, shared and static, C++, lock_run, valgrind memcheck)"
ctest_rc=0
ctest --test-dir "$BUILD" --output-on-failure 2>&1 | tee "$WORK/ctest.log" || ctest_rc=$?
# "100% tests passed, 0 tests failed out of 19"
summary=$(grep -E '^[0-9]+% tests passed, [0-9]+ tests? failed out of [0-9]+' "$WORK/ctest.log" | tail -n 1 || true)
if [[ -n "$summary" ]]; then
    failed=$(sed -E 's/.* ([0-9]+) tests? failed out of ([0-9]+).*/\1/' <<<"$summary")
    total=$(sed -E 's/.* failed out of ([0-9]+).*/\1/' <<<"$summary")
    passed=$((total - failed))
else
    passed=0
    failed=1 # ctest did not get as far as a summary
fi
if ! grep -q 'memcheck\.valgrind .*Passed' "$WORK/ctest.log"; then
    echo "sdk-c: the valgrind memcheck test did not run and pass" >&2
    failed=$((failed + 1))
fi
if [[ -n "${TEST_RESULTS:-}" ]]; then
    if ((failed == 0)); then
        echo "test result: ok. $passed passed; $failed failed" >>"$TEST_RESULTS"
    else
        echo "test result: FAILED. $passed passed; $failed failed" >>"$TEST_RESULTS"
    fi
fi
if ((ctest_rc != 0 || failed != 0)); then
    echo "== sdk-c: FAILED: ctest: $passed passed, $failed failed" >&2
    exit 1
fi

# ---- 3. the header from C99 and C++ ----------------------------------------------------------
step "tenure.h with gcc -std=c99 and g++ -std=c++11/17, -Wall -Wextra -Werror -pedantic"
gcc -std=c99 -Wall -Wextra -Werror -pedantic -fsyntax-only -x c sdk-c/include/tenure.h
for std in c++11 c++17; do
    g++ -std="$std" -Wall -Wextra -Werror -pedantic -Isdk-c/include -c sdk-c/tests/cxx_check.cpp \
        -o "$WORK/cxx_check_$std.o"
done
g++ "$WORK/cxx_check_c++17.o" -o "$WORK/cxx_check" -L"$BUILD/lib" -ltenure -Wl,-rpath,"$BUILD/lib"
"$WORK/cxx_check"

# ---- 4. install, relocate, and use from outside ---------------------------------------------
step "install to a temporary prefix, then move it"
cmake --install "$BUILD" --prefix "$WORK/staging"
mv "$WORK/staging" "$WORK/prefix"
PREFIX="$WORK/prefix"
find "$PREFIX" | sort | sed "s|^$PREFIX|   prefix|"
[[ "$(readlink "$(find "$PREFIX" -name libtenure.so)")" == libtenure.so.0 ]] ||
    { echo "sdk-c: libtenure.so should link to libtenure.so.0" >&2; exit 1; }
readelf -d "$(find "$PREFIX" -name 'libtenure.so.0.*')" | grep -q 'SONAME.*\[libtenure\.so\.0\]' ||
    { echo "sdk-c: the installed library has no SONAME libtenure.so.0" >&2; exit 1; }

step "a cluster for the installed programs"
bash sdk-c/tests/cluster.sh start "$CLUSTER" "$CARGO_TARGET_DIR/$PROFILE/tenured" \
    "$BUILD/tests/free_ports" "$BUILD/tests/cluster_ready"
TENURE_ENDPOINTS=$(<"$CLUSTER/endpoints")
export TENURE_ENDPOINTS

step "pkg-config tenure / tenure-static"
PKG_CONFIG_PATH="$(dirname "$(find "$PREFIX" -name tenure.pc)")"
export PKG_CONFIG_PATH
echo "   tenure $(pkg-config --modversion tenure): $(pkg-config --cflags --libs tenure)"
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)
[[ "$(pkg-config --modversion tenure)" == "$version" ]] ||
    { echo "sdk-c: pkg-config says tenure $(pkg-config --modversion tenure), the workspace is $version" >&2; exit 1; }
# shellcheck disable=SC2046 # word splitting of pkg-config's flags is intended
gcc -Wall -Wextra -Werror sdk-c/tests/consumer/main.c -o "$WORK/pc_shared" $(pkg-config --cflags --libs tenure) \
    -Wl,-rpath,"$(pkg-config --variable=libdir tenure)"
# shellcheck disable=SC2046
gcc -Wall -Wextra -Werror sdk-c/tests/consumer/main.c -o "$WORK/pc_static" $(pkg-config --cflags --libs tenure-static)
"$WORK/pc_shared"
"$WORK/pc_static"
! readelf -d "$WORK/pc_static" | grep -q libtenure || { echo "sdk-c: pc_static links libtenure.so" >&2; exit 1; }

step "find_package(tenure) from a separate project"
cmake -S sdk-c/tests/consumer -B "$WORK/consumer" -DCMAKE_PREFIX_PATH="$PREFIX"
cmake --build "$WORK/consumer"
"$WORK/consumer/consumer_shared"
"$WORK/consumer/consumer_static"

echo
echo "== sdk-c: all passed in $((SECONDS - START))s (ctest: $passed passed, $failed failed)"
