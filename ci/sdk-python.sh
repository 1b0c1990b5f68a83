#!/usr/bin/env bash
# The Python SDK's checks, from a fresh clone: builds tenured, makes a fresh venv, runs
# `pip install ./sdk-python` (maturin builds the native module), imports it, checks the stubs
# against the built module (mypy stubtest), type-checks (mypy --strict) and lints (ruff), then
# runs the pytest suite against real 3-node clusters it starts on free loopback ports. The suite
# includes sdk-python/README.md's examples, run as written, and examples/worker.py.
#
#   ci/sdk-python.sh            everything above
#
# Environment:
#   CARGO_TARGET_DIR   build directory (default: target, at the repo root); the venv goes in it
#   PYTHON             the interpreter to make the venv with (default: python3, >= 3.10)
#   TEST_RESULTS       if set, a file to append "test result: ok. N passed; M failed" to
#   CI=true            build with --locked (Cargo.lock must be current)
#   PYTEST_ARGS        extra arguments for pytest (e.g. "-k faults -x")
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

TARGET="${CARGO_TARGET_DIR:-target}"
[[ "$TARGET" == /* ]] || TARGET="$ROOT/$TARGET"
export CARGO_TARGET_DIR="$TARGET" # absolute: maturin runs cargo from another directory
PYTHON="${PYTHON:-python3}"
WORK="$TARGET/sdk-python"
VENV="$WORK/venv"
CARGO_LOCKED=()
[[ "${CI:-}" == "true" ]] && CARGO_LOCKED=(--locked)

die() {
    echo "ci/sdk-python.sh: $*" >&2
    exit 1
}

STEP_START=$SECONDS
step() {
    echo "== sdk-python: $* (at ${SECONDS}s)"
}

command -v "$PYTHON" >/dev/null 2>&1 || die "$PYTHON not found; set PYTHON to a Python >= 3.10"
"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 10))' ||
    die "$PYTHON is $("$PYTHON" --version 2>&1); the SDK needs Python >= 3.10"

step "build tenured (cargo build --profile ci -p tenure-server --bin tenured)"
cargo build "${CARGO_LOCKED[@]}" --profile ci -p tenure-server --bin tenured
export TENURE_BIN="$TARGET/ci/tenured"

# Debian's python3 makes venvs only with python3-venv (ensurepip) installed.
if ! "$PYTHON" -c 'import ensurepip' >/dev/null 2>&1; then
    ci/apt.sh "python3-venv-missing:python3-venv"
fi
step "fresh venv in ${VENV#"$ROOT"/} ($("$PYTHON" --version 2>&1))"
rm -rf "$VENV"
mkdir -p "$WORK"
"$PYTHON" -m venv "$VENV"
PY="$VENV/bin/python"
"$PY" -m pip install --quiet --disable-pip-version-check --upgrade pip

# The CI build uses the workspace's lean `ci` profile (shared with the Rust tests' build); a plain
# `pip install ./sdk-python` builds with the release profile set in pyproject.toml.
step "pip install ./sdk-python (maturin, --profile ci)"
MATURIN_PEP517_ARGS="--profile ci ${CARGO_LOCKED[*]}" \
    "$PY" -m pip install --disable-pip-version-check ./sdk-python

# Outside the source tree, so the installed package is what gets imported.
step "import tenure"
(cd "$WORK" && "$PY" -c 'import tenure, tenure._native; print("tenure", tenure.__version__, "from", tenure.__file__)')

step "test tools (pytest, pytest-asyncio, pytest-timeout, mypy, ruff)"
"$PY" -m pip install --quiet --disable-pip-version-check \
    "pytest>=8,<10" "pytest-asyncio>=0.24,<2" "pytest-timeout>=2.3,<3" "mypy>=1.10,<2" "ruff>=0.6,<1"

step "stubs against the built module (mypy.stubtest tenure)"
(cd "$WORK" && "$PY" -m mypy.stubtest tenure)

step "types (mypy --strict) and lint (ruff check, ruff format --check)"
(cd sdk-python && "$PY" -m mypy && "$PY" -m ruff check . && "$PY" -m ruff format --check .)

step "pytest against real 3-node clusters (tenured: ${TENURE_BIN#"$ROOT"/})"
JUNIT="$WORK/junit.xml"
rm -f "$JUNIT"
rc=0
# shellcheck disable=SC2086 # PYTEST_ARGS is a list of words on purpose
(cd sdk-python && "$PY" -m pytest -p no:cacheprovider --junitxml="$JUNIT" ${PYTEST_ARGS:-}) || rc=$?

# One line in the format the test runner sums: "test result: ok. N passed; M failed".
counts=$("$PY" - "$JUNIT" <<'EOF'
import sys
import xml.etree.ElementTree as ET

try:
    root = ET.parse(sys.argv[1]).getroot()
except (OSError, ET.ParseError):
    print("0 0")
    sys.exit()
suites = [root] if root.tag == "testsuite" else root.findall("testsuite")
total = failed = skipped = 0
for s in suites:
    total += int(s.get("tests", 0))
    failed += int(s.get("failures", 0)) + int(s.get("errors", 0))
    skipped += int(s.get("skipped", 0))
print(total - failed - skipped, failed)
EOF
)
passed=${counts% *}
failed=${counts#* }
if ((rc != 0 && failed == 0)); then
    failed=1 # pytest failed outside any test (collection, no tests at all: exit 5)
fi
if ((rc == 0 && passed == 0)); then
    rc=5
    failed=1
fi
verdict=ok.
((failed > 0)) && verdict=FAILED.
line="test result: $verdict $passed passed; $failed failed"
echo "$line"
if [[ -n "${TEST_RESULTS:-}" ]]; then
    echo "$line" >>"$TEST_RESULTS"
fi

echo "== sdk-python: took $((SECONDS - STEP_START))s"
if ((rc != 0)); then
    die "pytest failed (exit $rc)"
fi
echo "== sdk-python: all checks passed"
