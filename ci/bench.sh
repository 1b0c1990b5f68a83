#!/usr/bin/env bash
# Benchmarks tenure against etcd's lock service on this machine: a 3-node tenure cluster and a
# 3-member etcd cluster (Debian's etcd-server, installed here if missing) on loopback, the same
# workloads against both, every figure printed beside etcd's with the ratio.
#
#   ci/bench.sh                 quick mode (about 2 minutes; what ci/test.sh runs): uncontended
#                               (1, 16, 64 workers), contended, reads, keepalive (1000 leases),
#                               failover (3 kills); `ci` profile builds
#   ci/bench.sh --full          everything, release builds: also 10k kept-alive leases for 60 s,
#                               20 kills, 10k waiters, 1M held locks, a 1-hour soak; about 90 minutes.
#                               Writes docs/bench/ (results.md, results.json, pairs.png, soak.tsv).
#   ci/bench.sh [--full] ARGS   more tenure-bench flags, e.g. --only failover --kills 5, --soak-secs 600
#
# Results go to $CARGO_TARGET_DIR/bench/{quick,full}/; the plot of pairs/s against workers is drawn
# with gnuplot (installed here if missing).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
START=$SECONDS
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target}"
[[ "$CARGO_TARGET_DIR" == /* ]] || CARGO_TARGET_DIR="$ROOT/$CARGO_TARGET_DIR"
CARGO_LOCKED=()
[[ "${CI:-}" == "true" ]] && CARGO_LOCKED=(--locked)

MODE=quick
ARGS=()
for a in "$@"; do
    if [[ "$a" == "--full" ]]; then
        MODE=full
        ARGS+=(--full)
    else
        ARGS+=("$a")
    fi
done

step() {
    echo "== bench: $* ($((SECONDS - START))s)"
}

step "tools"
# protoc: etcd-client compiles etcd's .proto files in its build script.
ci/apt.sh etcd:etcd-server gnuplot:gnuplot-nox protoc:protobuf-compiler /usr/include/google/protobuf/descriptor.proto:libprotobuf-dev
etcd --version | awk 'NR == 1'

if [[ "$MODE" == full ]]; then
    PROFILE=release
    BIN="$CARGO_TARGET_DIR/release"
else
    PROFILE=ci
    BIN="$CARGO_TARGET_DIR/ci"
fi
step "building tenured and tenure-bench ($PROFILE profile)"
cargo build "${CARGO_LOCKED[@]}" --profile "$PROFILE" -p tenure-server -p tenure-bench --bin tenured --bin tenure-bench

OUT="$CARGO_TARGET_DIR/bench/$MODE"
mkdir -p "$OUT"
step "running ($MODE mode)"
"$BIN/tenure-bench" --tenured "$BIN/tenured" --etcd "$(command -v etcd)" --out "$OUT" "${ARGS[@]}"

if [[ -s "$OUT/pairs.dat" ]]; then
    step "plotting $OUT/pairs.png"
    gnuplot <<EOF
set terminal png size 800,500 font ",11"
set output "$OUT/pairs.png"
set title "Uncontended acquire+release pairs/s, 3 nodes on one $(nproc)-core machine"
set xlabel "workers (each with its own lock)"
set ylabel "pairs/s"
set logscale x 2
set key top left
set grid
plot "$OUT/pairs.dat" using 1:2 with linespoints lw 2 pt 7 title "tenure", \
     "$OUT/pairs.dat" using 1:3 with linespoints lw 2 pt 5 title "etcd $(etcd --version | awk 'NR==1 {print $3}')"
EOF
fi

if [[ "$MODE" == full ]]; then
    mkdir -p docs/bench
    for f in results.md results.json pairs.png pairs.dat soak.tsv; do
        [[ -e "$OUT/$f" ]] && cp "$OUT/$f" docs/bench/
    done
    step "copied the results to docs/bench/"
fi
step "done"
