#!/usr/bin/env bash
# A local 3-node tenure cluster, in the background, on 127.0.0.1.
#
#   ci/cluster.sh start    build tenured if needed, start nodes 1..3, wait until they listen
#   ci/cluster.sh status   which nodes run (exit 0 only if all three do)
#   ci/cluster.sh stop     SIGTERM every node, SIGKILL what is left after a bounded wait
#   ci/cluster.sh wipe     stop, then delete .tenure-cluster (all data and logs)
#
# Node N: gRPC 127.0.0.1:(BASE+N), HTTP 127.0.0.1:(BASE+10+N), files under
# .tenure-cluster/nodeN/ at the repo root: data/, tenured.log, pid. BASE is
# TENURE_CLUSTER_BASE_PORT (default 7070). A stopped cluster restarts from its data directories.
# Other TENURE_* settings (TENURE_LOG, TENURE_HEARTBEAT_MS, caps, ...) reach the nodes; the
# topology ones are set here. TENURE_BIN runs another tenured binary instead of building one.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

NODES=(1 2 3)
DIR="$ROOT/.tenure-cluster"
BASE="${TENURE_CLUSTER_BASE_PORT:-7070}"
START_TIMEOUT=20 # seconds for every node to accept connections
SETTLE=1         # seconds the new nodes must stay up after they listen
STOP_TIMEOUT=10  # seconds for every node to exit after SIGTERM

die() {
    echo "ci/cluster.sh: $*" >&2
    exit 1
}

if ! [[ "$BASE" =~ ^[0-9]+$ ]] || ((BASE < 1024 || BASE > 65500)); then
    die "TENURE_CLUSTER_BASE_PORT must be a number in 1024..65500, got '$BASE'"
fi

grpc_port() { echo $((BASE + $1)); }
http_port() { echo $((BASE + 10 + $1)); }
node_dir() { echo "$DIR/node$1"; }

endpoints() {
    local n out=()
    for n in "${NODES[@]}"; do out+=("127.0.0.1:$(grpc_port "$n")"); done
    (
        IFS=,
        echo "${out[*]}"
    )
}

peers() {
    local n out=()
    for n in "${NODES[@]}"; do out+=("$n=127.0.0.1:$(grpc_port "$n")"); done
    (
        IFS=,
        echo "${out[*]}"
    )
}

# The pid of node N if it is running (a tenured process), else nothing. Drops a stale pid file.
node_pid() {
    local file pid
    file="$(node_dir "$1")/pid"
    [[ -f "$file" ]] || return 0
    pid=$(<"$file")
    # The command check keeps a stale pid file from naming someone else's process. Right after
    # start the process may still be nohup, which execs tenured.
    if [[ "$pid" =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null; then
        case "$(ps -o comm= -p "$pid" 2>/dev/null)" in
            tenured* | nohup)
                echo "$pid"
                return 0
                ;;
        esac
    fi
    rm -f "$file"
}

# True if something accepts TCP connections on 127.0.0.1:PORT.
listening() {
    if command -v timeout >/dev/null 2>&1; then
        timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null
    else
        bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null
    fi
}

tenured_bin() {
    if [[ -n "${TENURE_BIN:-}" ]]; then
        [[ -x "$TENURE_BIN" ]] || die "TENURE_BIN=$TENURE_BIN is not an executable"
        echo "$TENURE_BIN"
        return
    fi
    local target="${CARGO_TARGET_DIR:-target}"
    [[ "$target" == /* ]] || target="$ROOT/$target"
    echo "== building tenured (cargo build -p tenure-server --bin tenured)" >&2
    cargo build -p tenure-server --bin tenured >&2
    echo "$target/debug/tenured"
}

# The base port the data directories were created with: their membership holds those addresses,
# so a cluster that exists keeps its ports.
BASE_FILE="$DIR/base-port"
use_recorded_base_port() {
    local recorded
    [[ -f "$BASE_FILE" ]] || return 0
    recorded=$(<"$BASE_FILE")
    [[ "$recorded" =~ ^[0-9]+$ ]] || die "$BASE_FILE is damaged; 'ci/cluster.sh wipe' starts afresh"
    if [[ -n "${TENURE_CLUSTER_BASE_PORT:-}" && "$recorded" != "$BASE" && "${1:-}" == start ]]; then
        die "the cluster in ${DIR#"$ROOT"/} was created with TENURE_CLUSTER_BASE_PORT=$recorded and its members know those addresses; use that base port, or 'ci/cluster.sh wipe' to start afresh on $BASE"
    fi
    BASE=$recorded
}

record_base_port() {
    mkdir -p "$DIR"
    [[ -f "$BASE_FILE" ]] || echo "$BASE" >"$BASE_FILE"
}

start_node() {
    local n=$1 bin=$2 dir port
    dir=$(node_dir "$n")
    port=$(grpc_port "$n")
    mkdir -p "$dir/data"
    # Settings that must not come from the caller's environment: topology and identity are ours.
    (
        unset TENURE_CONFIG TENURE_PEER_DIAL
        export NO_COLOR=1 # plain log files
        exec nohup "$bin" \
            --id "$n" \
            --listen "127.0.0.1:$port" \
            --advertise "127.0.0.1:$port" \
            --http "127.0.0.1:$(http_port "$n")" \
            --peers "$(peers)" \
            --data-dir "$dir/data" \
            --initial-cluster-state new \
            </dev/null >>"$dir/tenured.log" 2>&1
    ) &
    echo $! >"$dir/pid"
    echo "   node $n: started, pid $!, grpc 127.0.0.1:$port, log ${dir#"$ROOT"/}/tenured.log"
}

# abort_start N...: stop the nodes this start launched, and fail.
abort_start() {
    local n pids=()
    for n in "$@"; do pids+=("$(<"$(node_dir "$n")/pid")"); done
    echo "ci/cluster.sh: stopping the node(s) just started: $*" >&2
    terminate "${pids[@]}" >&2
    for n in "$@"; do rm -f "$(node_dir "$n")/pid"; done
    exit 1
}

# check_alive N...: fail the start, with the end of its log, if one of these nodes has exited.
check_alive() {
    local n
    for n in "$@"; do
        if ! kill -0 "$(<"$(node_dir "$n")/pid")" 2>/dev/null; then
            echo "ci/cluster.sh: node $n exited during start; the end of ${DIR#"$ROOT"/}/node$n/tenured.log:" >&2
            tail -n 5 "$(node_dir "$n")/tenured.log" | sed 's/\x1b\[[0-9;]*m//g' >&2 || true
            abort_start "$@"
        fi
    done
}

cmd_start() {
    local n i pid to_start=() started=() bin deadline settle
    for n in "${NODES[@]}"; do
        pid=$(node_pid "$n")
        if [[ -n "$pid" ]]; then
            echo "   node $n: already running, pid $pid"
        else
            to_start+=("$n")
        fi
    done
    if ((${#to_start[@]} == 0)); then
        echo "== the cluster is already running"
        echo "TENURE_ENDPOINTS=$(endpoints)"
        return 0
    fi
    for n in "${to_start[@]}"; do
        if listening "$(grpc_port "$n")"; then
            die "port $(grpc_port "$n") (node $n) is in use by another process; set TENURE_CLUSTER_BASE_PORT to move the cluster"
        fi
    done
    record_base_port
    bin=$(tenured_bin)

    # Highest id first, each one listening before the next starts: on a fresh cluster the lowest
    # id bootstraps, and it must find its peers answering (and fresh) when it probes them.
    echo "== starting node(s) ${to_start[*]} from $bin; waiting up to ${START_TIMEOUT}s for them to listen"
    deadline=$((SECONDS + START_TIMEOUT))
    for ((i = ${#to_start[@]} - 1; i >= 0; i--)); do
        n=${to_start[i]}
        start_node "$n" "$bin"
        started+=("$n")
        until listening "$(grpc_port "$n")"; do
            check_alive "${started[@]}"
            if ((SECONDS >= deadline)); then
                echo "ci/cluster.sh: node $n is not listening after ${START_TIMEOUT}s; see ${DIR#"$ROOT"/}/node$n/tenured.log" >&2
                abort_start "${started[@]}"
            fi
            sleep 0.2
        done
    done
    # A node refuses to start (wrong or wiped data directory, foreign cluster) only once it has
    # asked its peers, after it listens: watch the new nodes for a moment longer.
    settle=$((SECONDS + SETTLE))
    while ((SECONDS < settle)); do
        check_alive "${started[@]}"
        sleep 0.2
    done
    check_alive "${started[@]}"
    echo "== cluster up (stop it with: ci/cluster.sh stop)"
    for n in "${NODES[@]}"; do
        echo "   node $n: grpc 127.0.0.1:$(grpc_port "$n")  http 127.0.0.1:$(http_port "$n")  data ${DIR#"$ROOT"/}/node$n/data"
    done
    echo "TENURE_ENDPOINTS=$(endpoints)"
}

# terminate PID...: SIGTERM, wait up to STOP_TIMEOUT, then SIGKILL whatever is left.
terminate() {
    local pid deadline left
    kill -TERM "$@" 2>/dev/null || true
    deadline=$((SECONDS + STOP_TIMEOUT))
    while :; do
        left=()
        for pid in "$@"; do
            kill -0 "$pid" 2>/dev/null && left+=("$pid")
        done
        ((${#left[@]} == 0)) && return 0
        if ((SECONDS >= deadline)); then
            echo "   still running after ${STOP_TIMEOUT}s: pid(s) ${left[*]}; sending SIGKILL"
            kill -KILL "${left[@]}" 2>/dev/null || true
            return 0
        fi
        sleep 0.2
    done
}

cmd_stop() {
    local n pid pids=() nodes=()
    for n in "${NODES[@]}"; do
        pid=$(node_pid "$n")
        if [[ -n "$pid" ]]; then
            pids+=("$pid")
            nodes+=("$n")
        fi
    done
    if ((${#pids[@]} == 0)); then
        echo "== no node is running"
        return 0
    fi
    echo "== stopping node(s) ${nodes[*]} (SIGTERM, SIGKILL after ${STOP_TIMEOUT}s)"
    terminate "${pids[@]}"
    for n in "${nodes[@]}"; do
        rm -f "$(node_dir "$n")/pid"
    done
    [[ "${1:-}" == quiet ]] || echo "== stopped (data kept in ${DIR#"$ROOT"/}; 'ci/cluster.sh start' resumes, 'ci/cluster.sh wipe' deletes it)"
}

cmd_status() {
    local n pid port state running=0
    for n in "${NODES[@]}"; do
        pid=$(node_pid "$n")
        port=$(grpc_port "$n")
        if [[ -z "$pid" ]]; then
            state="stopped"
        elif listening "$port"; then
            state="running, pid $pid"
            running=$((running + 1))
        else
            state="pid $pid, not listening (starting or stopping)"
        fi
        echo "   node $n: grpc 127.0.0.1:$port  $state"
    done
    echo "== $running of ${#NODES[@]} nodes running"
    if ((running == ${#NODES[@]})); then
        echo "TENURE_ENDPOINTS=$(endpoints)"
        return 0
    fi
    return 1
}

cmd_wipe() {
    cmd_stop quiet
    rm -rf "$DIR"
    echo "== deleted ${DIR#"$ROOT"/}"
}

usage() {
    sed -n '2,13p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
}

use_recorded_base_port "${1:-}"

case "${1:-}" in
    start) cmd_start ;;
    stop) cmd_stop ;;
    status) cmd_status ;;
    wipe) cmd_wipe ;;
    -h | --help | help) usage ;;
    *)
        usage >&2
        exit 2
        ;;
esac
