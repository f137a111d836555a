#!/usr/bin/env bash
# Go hello world, request to exit: runvm on a booted VM (API mode, median
# of N), from a cold runvm start (`runvm --lang go`, median of NCOLD), and
# the same build-and-run done natively in the same host (the image's own
# root filesystem, chrooted, same env and warm build cache), as ratios.
# Prints FIGURE lines.
#
# usage: tests/bench/lang.sh [B=BUILD_DIR] [N=10] [NCOLD=3]
# Runs in the nested KVM host when /dev/kvm is missing: absolute times
# there say nothing about real hardware; the ratios measured side by side do.
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
cd "$top"
B=build N=10 NCOLD=3
for a in "$@"; do
    case $a in
    B=*) B=${a#B=} ;; N=*) N=${a#N=} ;; NCOLD=*) NCOLD=${a#NCOLD=} ;;
    *) echo "usage: $0 [B=BUILD_DIR] [N=RUNS] [NCOLD=RUNS]" >&2; exit 2 ;;
    esac
done
case $B in /*) ;; *) B=$top/$B ;; esac
if [ ! -c /dev/kvm ]; then
    exec tests/kvmhost/kvmhost --mem 6144 --smp 2 --timeout 3000 -- \
        "$top/tests/bench/lang.sh" "B=$B" "N=$N" "NCOLD=$NCOLD"
fi
IMG=$(ls "$B"/images/go.cpio* | head -1)
W=$(mktemp -d /tmp/langbench.XXXXXX)
cleanup() {
    umount -l "$W/root/proc" "$W/root/dev" 2>/dev/null || true
    rm -rf --one-file-system "$W"
}
trap cleanup EXIT
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
now() { date +%s.%N; }

# Native: the image's rootfs, the lang.conf's BUILD and RUN and ENV.
mkdir -p "$W/root"
case $IMG in
*.lz4) lz4 -dc "$IMG" ;; *.gz) gzip -dc "$IMG" ;; *) cat "$IMG" ;;
esac | (cd "$W/root" && cpio -idm --quiet 2>/dev/null)
conf=$W/root/etc/runvm/lang.conf
env=(env -i PATH=/usr/local/bin:/usr/bin:/bin HOME=/tmp TMPDIR=/tmp)
grep '^ENV=' "$conf" >"$W/env" || true
while IFS= read -r l; do env+=("${l#ENV=}"); done <"$W/env"
mkdir -p "$W/root/tmp/w" "$W/root/proc" "$W/root/dev"
mount -t proc proc "$W/root/proc"
mount --bind /dev "$W/root/dev"
cp examples/hello.go "$W/root/tmp/w/main.go"
for i in $(seq "$N"); do
    rm -f "$W/root/tmp/w/main"
    s=$(now)
    chroot "$W/root" "${env[@]}" sh -c 'cd /tmp/w && go build -o main main.go && ./main' >/dev/null
    echo "$(now) - $s" | bc
done | median >"$W/native"
umount -l "$W/root/proc" "$W/root/dev"
native=$(cat "$W/native")

# Booted VM: POST /start to the exit event, through the API.
S=$W/api.sock
"$B/bin/runvm" --lang go --api-sock "$S" 2>"$W/api.err" &
pid=$!
for _ in $(seq 600); do [ -S "$S" ] && break; sleep 0.1; done
python3 examples/client.py "$S" examples/hello.go >/dev/null # boot, warm
for i in $(seq "$N"); do
    s=$(now)
    python3 examples/client.py "$S" examples/hello.go >/dev/null
    echo "$(now) - $s" | bc
done | median >"$W/booted"
curl -s --unix-socket "$S" -X PUT http://runvm/shutdown >/dev/null
wait "$pid" || true
booted=$(cat "$W/booted")

for i in $(seq "$NCOLD"); do
    s=$(now)
    "$B/bin/runvm" --lang go examples/hello.go >/dev/null
    echo "$(now) - $s" | bc
done | median >"$W/cold"
cold=$(cat "$W/cold")

echo "FIGURE go hello native build+run (image rootfs, chroot): median of $N = $native s"
echo "FIGURE go hello runvm booted VM, request to exit event: median of $N = $booted s = $(echo "scale=2; $booted / $native" | bc)x native"
echo "FIGURE go hello runvm cold start to exit: median of $NCOLD = $cold s = $(echo "scale=2; $cold / $native" | bc)x native"
