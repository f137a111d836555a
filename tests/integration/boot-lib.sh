# Shared by runvm's boot tests (sourced). Needs $B (build dir) and $T.
# shellcheck shell=bash

RUNVM=$B/bin/runvm
case $(uname -m) in
aarch64) KERNEL=$B/kernel/Image ;;
*) KERNEL=$B/kernel/bzImage ;;
esac

# Skips (exit 77) unless runvm, the kernel and testinit are built.
boot_require() {
    for f in "$RUNVM" "$KERNEL" "$B/tests/testinit"; do
        [ -e "$f" ] || { echo "skip: $f missing (make all test-progs kernel)"; exit 77; }
    done
    scripts/kvm-usable -q || { echo "skip: $(scripts/kvm-usable 2>&1)"; exit 77; }
}

# image_built LANG[@VERSION]: whether runvm has a built image for it
# (LANG alone: its default version), as `runvm --list-langs` says.
image_built() {
    local l=${1%%@*} v=
    [[ $1 == *@* ]] && v=${1#*@}
    "$RUNVM" --list-langs 2>/dev/null | awk -v l="$l" -v v="$v" '
        NR > 1 && $1 == l && (v == "" ? $3 == "yes" : $2 == v) && $NF !~ /\)$/ { f = 1 }
        END { exit !f }'
}

# Skips (exit 77) unless runvm has a built image for LANG[@VERSION].
image_require() {
    image_built "$1" || { echo "skip: no $1 image (make images IMAGE_LANGS=$1)"; exit 77; }
}

# Packs testinit as /init into $T/initrd.cpio.gz (or the name given).
make_test_initrd() {
    local out=${1:-$T/initrd.cpio.gz}
    rm -rf "$T/root" && mkdir -p "$T/root"
    cp "$B/tests/testinit" "$T/root/init"
    scripts/mkcpio.sh "$T/root" "$out"
}

# agent_initrd OUT LANGCONF APPLET... : packs runvm-agent as /init and the
# static busybox with APPLET... linked in /bin into OUT, and LANGCONF (text;
# "" for none) as /etc/runvm/lang.conf. Skips (exit 77) without them.
agent_initrd() {
    local out=$1 conf=$2 agent=$B/bin/runvm-agent busybox c; shift 2
    busybox=$(command -v busybox || true)
    [ -x "$agent" ] || { echo "skip: $agent missing (make)"; exit 77; }
    # (The nested aarch64 host has no file(1); its busybox is static.)
    if command -v file >/dev/null; then
        case $(file -L "$busybox" 2>/dev/null) in
        *statically*) ;;
        *) echo "skip: no static busybox (apt-get install busybox-static)"; exit 77 ;;
        esac
    fi
    rm -rf "$T/root" && mkdir -p "$T/root/bin"
    cp "$agent" "$T/root/init"
    cp "$busybox" "$T/root/bin/busybox"
    for c in "$@"; do ln -s busybox "$T/root/bin/$c"; done
    if [ -n "$conf" ]; then
        mkdir -p "$T/root/etc/runvm"
        printf '%s' "$conf" >"$T/root/etc/runvm/lang.conf"
    fi
    scripts/mkcpio.sh "$T/root" "$out"
}

# boot NAME ARGS... : runs runvm with ARGS under a safety timeout, output
# in $T/NAME.out, status in $T/NAME.rc. Returns 0.
boot() {
    local name=$1; shift
    local rc=0
    timeout 300 "$RUNVM" --kernel "$KERNEL" "$@" >"$T/$name.out" 2>&1 </dev/null || rc=$?
    echo "$rc" >"$T/$name.rc"
    return 0
}

# watch_runvm PID ERRFILE: a runvm the test started in the background
# (API mode). Should the test fail, fail stops it (if it still runs) and
# shows how it ended and the end of what it printed: with --boot-timer that
# holds its KVM counters, where run-inside finds the nested host's marks
# (a page-fault storm); a runvm that died says why there.
watch_runvm() {
    WATCH_PID=$1 WATCH_ERR=$2
}

# The test waited for that runvm itself: its PID is no longer runvm's.
unwatch_runvm() {
    WATCH_PID= WATCH_ERR=
}

fail() {
    echo "FAIL: $*"
    if [ -n "${WATCH_PID:-}" ]; then
        local rc=0
        kill "$WATCH_PID" 2>/dev/null || true
        for _ in $(seq 100); do
            kill -0 "$WATCH_PID" 2>/dev/null || break
            sleep 0.1
        done
        if kill -9 "$WATCH_PID" 2>/dev/null; then
            echo "runvm did not end within 10 s of SIGTERM: killed"
        fi
        wait "$WATCH_PID" 2>/dev/null || rc=$?
        echo "runvm ended with status $rc; the end of its stderr:"
        tail -n 15 "$WATCH_ERR"
    fi
    exit 1
}

# expect_rc NAME RC
expect_rc() {
    local got
    got=$(cat "$T/$1.rc")
    [ "$got" = "$2" ] || { sed 's/^/    /' "$T/$1.out" | tail -30; fail "$1: runvm exited $got, want $2"; }
}

# expect_sentinel NAME NPROC MEM_MIN_KB MEM_MAX_KB
expect_sentinel() {
    local line nproc mem
    line=$(grep -a -m1 'RUNVM-TESTINIT-OK' "$T/$1.out" | tr -d '\r') ||
        { sed 's/^/    /' "$T/$1.out" | tail -30; fail "$1: no sentinel"; }
    nproc=$(sed -n 's/.*nproc=\([0-9]*\).*/\1/p' <<<"$line")
    mem=$(sed -n 's/.*memtotal_kb=\([0-9]*\).*/\1/p' <<<"$line")
    [ "$nproc" = "$2" ] || fail "$1: nproc=$nproc, want $2 ($line)"
    [ "$mem" -ge "$3" ] && [ "$mem" -le "$4" ] ||
        fail "$1: memtotal_kb=$mem not in [$3, $4] ($line)"
    echo "ok: $1: $line"
}
