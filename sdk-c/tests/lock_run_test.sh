#!/usr/bin/env bash
# The lock_run example against the test cluster (TENURE_ENDPOINTS): it runs the command with
# TENURE_LOCK and TENURE_TOKEN set and passes its exit code on; a try (--wait 0) of a lock it
# holds exits 124; a missing command exits 127. Prints "N passed, M failed".
set -uo pipefail
lock_run=$1
name="sdk-c/lock_run/$$-$RANDOM"
passed=0 failed=0
expect() {
    local want=$1 got
    shift
    "$@"
    got=$?
    if ((got == want)); then
        passed=$((passed + 1))
    else
        failed=$((failed + 1))
        echo "FAILED: exit $got, expected $want: $*" >&2
    fi
}
expect 7 "$lock_run" --ttl 10000 --wait 10000 "$name" -- \
    sh -c 'test "$TENURE_LOCK" = "$0" && test "$TENURE_TOKEN" -gt 0 && exit 7' "$name"
# Nested: the inner lock_run tries the lock the outer one holds.
expect 124 "$lock_run" --wait 10000 "$name" -- "$lock_run" --wait 0 "$name" -- true
expect 127 "$lock_run" --wait 10000 "$name" -- /nonexistent/command
expect 125 "$lock_run" --ttl 0 "$name" -- true
expect 125 "$lock_run" "$name"
# The lock is free again after all of that.
expect 0 "$lock_run" --wait 0 "$name" -- true
echo "$passed passed, $failed failed"
((failed == 0))
