#!/usr/bin/env bash
# The 3-node tenured cluster the C tests run against (a CTest fixture; ci/sdk-c.sh uses it too).
#
#   cluster.sh start DIR TENURED FREE_PORTS CLUSTER_READY
#       stops a cluster left in DIR by an interrupted run, wipes DIR, picks free loopback ports
#       (FREE_PORTS), starts nodes 3, 2, 1 from the TENURED binary, waits until each listens
#       and until the cluster grants locks (CLUSTER_READY), and writes DIR/endpoints
#       (TENURE_ENDPOINTS for the tests). A watchdog stops the nodes if the process that
#       started them (ctest) goes away without running `stop`, or after TENURE_TEST_CLUSTER_MAX_S
#       seconds (default 3600).
#   cluster.sh stop DIR
#       SIGTERM to the nodes started in DIR (and only those), SIGKILL after 10 s.
#
# Traffic stays on 127.0.0.1; every wait has a deadline.
set -euo pipefail

START_TIMEOUT=30 # seconds for every node to listen, and again for the cluster to grant a lock
STOP_TIMEOUT=10  # seconds for the nodes to exit after SIGTERM
NODES=(1 2 3)

die() {
    echo "cluster.sh: $*" >&2
    exit 1
}

listening() {
    timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null
}

# The pid in DIR/nodeN.pid if that process is still a tenured we started, else nothing.
node_pid() {
    local file="$1/node$2.pid" pid
    [[ -f "$file" ]] || return 0
    pid=$(<"$file")
    # /proc rather than ps, which minimal images lack.
    if [[ "$pid" =~ ^[0-9]+$ ]] && [[ "$(cat "/proc/$pid/comm" 2>/dev/null)" == tenured* ]]; then
        echo "$pid"
    fi
}

cmd_stop() {
    local dir=$1 n pid pids=() deadline left
    [[ -d "$dir" ]] || return 0
    if [[ -f "$dir/watchdog.pid" ]]; then
        pid=$(<"$dir/watchdog.pid")
        [[ "$pid" =~ ^[0-9]+$ ]] && kill -TERM "$pid" 2>/dev/null || true
        rm -f "$dir/watchdog.pid"
    fi
    for n in "${NODES[@]}"; do
        pid=$(node_pid "$dir" "$n")
        [[ -n "$pid" ]] && pids+=("$pid")
    done
    if ((${#pids[@]} > 0)); then
        echo "cluster.sh: stopping tenured pid(s) ${pids[*]}"
        kill -TERM "${pids[@]}" 2>/dev/null || true
        deadline=$((SECONDS + STOP_TIMEOUT))
        while :; do
            left=()
            for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && left+=("$pid"); done
            ((${#left[@]} == 0)) && break
            if ((SECONDS >= deadline)); then
                echo "cluster.sh: still running after ${STOP_TIMEOUT}s: ${left[*]}; SIGKILL"
                kill -KILL "${left[@]}" 2>/dev/null || true
                break
            fi
            sleep 0.1
        done
    fi
    for n in "${NODES[@]}"; do rm -f "$dir/node$n.pid"; done
}

show_logs() {
    local dir=$1 n
    for n in "${NODES[@]}"; do
        [[ -f "$dir/node$n.log" ]] || continue
        echo "---- the end of $dir/node$n.log" >&2
        tail -n 15 "$dir/node$n.log" >&2 || true
    done
}

fail_start() {
    echo "cluster.sh: $1" >&2
    show_logs "$2"
    cmd_stop "$2"
    exit 1
}

cmd_start() {
    local dir=$1 tenured=$2 free_ports=$3 ready=$4 n ports peers endpoints deadline pid owner
    [[ -x "$tenured" ]] || die "no tenured binary at $tenured"
    cmd_stop "$dir"
    rm -rf "$dir"
    mkdir -p "$dir"
    mapfile -t ports < <("$free_ports" 6)
    ((${#ports[@]} == 6)) || die "could not pick free ports"
    peers="1=127.0.0.1:${ports[0]},2=127.0.0.1:${ports[1]},3=127.0.0.1:${ports[2]}"
    endpoints="127.0.0.1:${ports[0]},127.0.0.1:${ports[1]},127.0.0.1:${ports[2]}"
    # Highest id first, each listening before the next: the lowest id bootstraps, and must
    # find its peers up and fresh.
    deadline=$((SECONDS + START_TIMEOUT))
    for n in 3 2 1; do
        (
            unset TENURE_CONFIG TENURE_PEER_DIAL
            export NO_COLOR=1 RUST_LOG="${RUST_LOG:-info,openraft=warn}"
            exec "$tenured" --id "$n" \
                --listen "127.0.0.1:${ports[n - 1]}" --advertise "127.0.0.1:${ports[n - 1]}" \
                --http "127.0.0.1:${ports[n + 2]}" --peers "$peers" \
                --data-dir "$dir/node$n/data" --initial-cluster-state new \
                </dev/null >>"$dir/node$n.log" 2>&1
        ) &
        echo $! >"$dir/node$n.pid"
        until listening "${ports[n - 1]}"; do
            kill -0 "$(<"$dir/node$n.pid")" 2>/dev/null || fail_start "node $n exited during start" "$dir"
            ((SECONDS < deadline)) || fail_start "node $n not listening after ${START_TIMEOUT}s" "$dir"
            sleep 0.1
        done
    done
    TENURE_ENDPOINTS="$endpoints" "$ready" "$START_TIMEOUT" >"$dir/ready.log" 2>&1 ||
        fail_start "the cluster did not grant a lock within ${START_TIMEOUT}s (see $dir/ready.log)" "$dir"
    echo "$endpoints" >"$dir/endpoints"

    # The watchdog: its file descriptors go to a log, so ctest does not wait for it.
    owner=$PPID
    (
        limit=$((SECONDS + ${TENURE_TEST_CLUSTER_MAX_S:-3600}))
        while kill -0 "$owner" 2>/dev/null && ((SECONDS < limit)); do sleep 1; done
        echo "watchdog: the starting process $owner is gone or the time is up; stopping"
        rm -f "$dir/watchdog.pid" # so that `stop` does not signal this very process
        exec "$0" stop "$dir"
    ) </dev/null >>"$dir/watchdog.log" 2>&1 &
    echo $! >"$dir/watchdog.pid"
    echo "cluster.sh: 3 nodes up in $dir; TENURE_ENDPOINTS=$endpoints"
}

case "${1:-}" in
    start)
        (($# == 5)) || die "usage: cluster.sh start DIR TENURED FREE_PORTS CLUSTER_READY"
        cmd_start "$2" "$3" "$4" "$5"
        ;;
    stop)
        (($# == 2)) || die "usage: cluster.sh stop DIR"
        cmd_stop "$2"
        ;;
    *) die "usage: cluster.sh start DIR TENURED FREE_PORTS CLUSTER_READY | stop DIR" ;;
esac
