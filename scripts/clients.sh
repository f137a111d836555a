#!/bin/sh
# Installs the real client libraries the integration tests drive runvm
# serve with (tests/clients/package.json, pinned by its package-lock.json)
# into BUILD/clients/node_modules with `npm ci`; npm's cache lives in
# $RUNVM_CACHE/npm (default ~/.cache/runvm/npm), so a repeat costs nothing.
# usage: scripts/clients.sh BUILD_DIR
set -eu
cd "$(dirname "$0")/.."
out=${1:-build}/clients
lock=tests/clients/package-lock.json
if [ -f "$out/.installed" ] && cmp -s "$lock" "$out/.installed"; then
    exit 0
fi
command -v npm >/dev/null 2>&1 || { echo "clients: no npm (make deps)" >&2; exit 1; }
mkdir -p "$out"
cp tests/clients/package.json "$lock" "$out/"
cache=${RUNVM_CACHE:-$HOME/.cache/runvm}/npm
echo "clients: npm ci in $out (cache $cache)"
(cd "$out" && npm ci --ignore-scripts --no-audit --no-fund --cache "$cache")
cp "$lock" "$out/.installed"
