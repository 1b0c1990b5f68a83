#!/usr/bin/env bash
# with_cluster.sh DIR PROGRAM ARGS...: runs PROGRAM with TENURE_ENDPOINTS set to the cluster
# that tests/cluster.sh started in DIR. Always the test cluster's, never an inherited value
# (which could name a developer's own cluster).
set -euo pipefail
dir=$1
shift
[[ -s "$dir/endpoints" ]] || { echo "with_cluster.sh: no test cluster in $dir (did the cluster_start fixture fail?)" >&2; exit 1; }
TENURE_ENDPOINTS=$(<"$dir/endpoints")
export TENURE_ENDPOINTS
exec "$@"
