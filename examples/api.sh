#!/usr/bin/env bash
# Drives runvm's API with curl --unix-socket: boots a Go VM, runs
# examples/hello.go (text/plain), then examples/stdin.go with stdin (JSON),
# reads each run's NDJSON events from its output socket, and shuts down.
#
# usage: examples/api.sh [RUNVM]   (default: build/bin/runvm)
set -euo pipefail
cd "$(dirname "$0")/.."
RUNVM=${1:-build/bin/runvm}
SOCK=$(mktemp -u /tmp/runvm-api.XXXXXX.sock)
# Under the nested host (no /dev/kvm) use scripts/with-kvm examples/api.sh.
"$RUNVM" --lang go --api-sock "$SOCK" &
pid=$!
trap 'kill $pid 2>/dev/null || true' EXIT
for _ in $(seq 300); do [ -S "$SOCK" ] && break; sleep 0.1; done

# Reads a run's events (curl cannot read a raw stream socket).
read_events() {
    python3 -c 'import socket,sys
s=socket.socket(socket.AF_UNIX); s.connect(sys.argv[1])
while (b := s.recv(65536)): sys.stdout.buffer.write(b)' "$1"
}

echo "== GET /status"
curl -s --unix-socket "$SOCK" http://runvm/status; echo

echo "== POST /start (text/plain: examples/hello.go)"
reply=$(curl -s --unix-socket "$SOCK" -H 'Content-Type: text/plain' \
    --data-binary @examples/hello.go http://runvm/start)
echo "$reply"
read_events "$(jq -r .output_socket <<<"$reply")"

echo "== POST /start (JSON: examples/stdin.go with stdin)"
body=$(jq -n --rawfile code examples/stdin.go '{code: $code, stdin: "20 22\n",
    limits: {timeout_ms: 5000}}')
reply=$(curl -s --unix-socket "$SOCK" -H 'Content-Type: application/json' \
    --data-binary "$body" http://runvm/start)
echo "$reply"
read_events "$(jq -r .output_socket <<<"$reply")"

echo "== PUT /shutdown"
curl -s --unix-socket "$SOCK" -X PUT http://runvm/shutdown; echo
wait $pid
echo "runvm exited $?"
