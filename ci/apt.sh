#!/usr/bin/env bash
# Installs, with apt-get, the Debian packages whose commands are missing:
#
#   ci/apt.sh protoc:protobuf-compiler etcd:etcd-server /usr/include/google/protobuf/empty.proto:libprotobuf-dev
#
# Each argument is COMMAND:PACKAGE, or /PATH:PACKAGE for a package that installs no command (the
# file must exist); nothing is installed when every command and file is found. Needs root
# (or sudo) on Debian/Ubuntu; elsewhere it says what to install and fails.
set -euo pipefail

missing=()
for pair in "$@"; do
    want=${pair%%:*}
    if [[ "$want" == /* ]]; then
        [[ -e "$want" ]] || missing+=("${pair#*:}")
    else
        command -v "$want" >/dev/null 2>&1 || missing+=("${pair#*:}")
    fi
done
((${#missing[@]} == 0)) && exit 0

if ! command -v apt-get >/dev/null 2>&1; then
    echo "ci/apt.sh: install these packages (or their equivalents) first: ${missing[*]}" >&2
    exit 1
fi
SUDO=()
((EUID == 0)) || SUDO=(sudo)
echo "== installing ${missing[*]} with apt-get"
"${SUDO[@]}" apt-get update -qq
DEBIAN_FRONTEND=noninteractive "${SUDO[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
