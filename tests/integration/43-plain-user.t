#!/usr/bin/env bash
# runvm with no root at all (issue #17): a plain user (nobody) whose only
# way to KVM is a group that owns /dev/kvm (mode 0660), with no
# capabilities, runs a program (--exec), takes a snapshot and restores it,
# and moves traffic over a tap the administrator made for that user;
# runvm's own process shows the sandbox (uid, no capabilities,
# no_new_privs, seccomp filter). Then --cgroup: the VM's process in a
# cgroup v2 of its own with its limits, removed after, its exit status
# passed through; the same for the plain user in a cgroup delegated to it,
# and for runvm serve's VMs; and the cgroup unit test's checks that need a
# real hierarchy (test_cgroup: memory limit, signals, the supervisor).
# test-timeout: 600
set -euo pipefail
. tests/integration/boot-lib.sh
boot_require
[ "$(id -u)" = 0 ] && command -v unshare >/dev/null && command -v setpriv >/dev/null ||
    { echo "skip: needs root, unshare and setpriv to set up the plain user"; exit 77; }
agent_initrd "$T/agent.cpio.gz" "" sh echo cat sleep nc
KVM_GID=4242 NOBODY=65534
chmod 755 "$T"
CG=/sys/fs/cgroup P=$CG/rvtest.$$ Q=$CG/rvuser.$$
cleanup() {
    ip link del rvuser0 2>/dev/null || true
    rmdir "$P"/runvm.* "$P" "$Q"/runvm.* "$Q/start" "$Q" 2>/dev/null || true
}
trap cleanup EXIT
U=$T/u # the plain user's own directory
mkdir -p "$U" && chown "$NOBODY:$NOBODY" "$U"
cp "$RUNVM" "$U/runvm" && cp "$KERNEL" "$U/bzImage" && cp "$T/agent.cpio.gz" "$U/agent.cpio.gz"
chmod 755 "$U/runvm" && chmod 644 "$U/bzImage" "$U/agent.cpio.gz"

# as_user CMD...: CMD as nobody with the kvm group alone and no
# capabilities, in a private /dev whose kvm is root:KVM_GID 0660.
cat >"$T/as-user" <<EOF
#!/bin/sh
mount -t tmpfs -o mode=755 none /dev || exit 90
mknod -m 660 /dev/kvm c 10 232 && chgrp $KVM_GID /dev/kvm
mknod -m 666 /dev/null c 1 3 && mknod -m 666 /dev/urandom c 1 9
mkdir /dev/net && mknod -m 666 /dev/net/tun c 10 200
cd "$U"
exec setpriv --reuid=$NOBODY --regid=$NOBODY --groups=$KVM_GID \\
    --inh-caps=-all --bounding-set=-all --no-new-privs "\$@"
EOF
chmod 755 "$T/as-user"
as_user=(unshare -m "$T/as-user")

run() { # NAME CMD... : stdout in $T/NAME.out, stderr .err, rc .rc
    local name=$1 rc=0; shift
    timeout 300 "$@" >"$T/$name.out" 2>"$T/$name.err" </dev/null || rc=$?
    echo "$rc" >"$T/$name.rc"
}
want() { # NAME RC
    local got; got=$(cat "$T/$1.rc")
    [ "$got" = "$2" ] || { echo "--- stdout"; head -c 2000 "$T/$1.out"; echo "--- stderr"; tail -20 "$T/$1.err"; fail "$1: status $got, want $2"; }
}

# --exec, while its process is looked at from outside.
"${as_user[@]}" ./runvm --kernel bzImage --initrd agent.cpio.gz --mem 128 --cpus 2 \
    --exec -- sh -c 'echo plain user; sleep 4; exit 3' >"$T/exec.out" 2>"$T/exec.err" </dev/null &
upid=$!
vmm=
for _ in $(seq 300); do
    vmm=$(pgrep -u "$NOBODY" -x runvm | head -1) || true
    [ -n "$vmm" ] && grep -q 'plain user' "$T/exec.out" && break
    sleep 0.2
done
[ -n "$vmm" ] || fail "no runvm process of uid $NOBODY"
st=$(cat "/proc/$vmm/status")
for want_line in "Uid:	$NOBODY	$NOBODY	$NOBODY	$NOBODY" "CapEff:	0000000000000000" \
    "CapPrm:	0000000000000000" "NoNewPrivs:	1" "Seccomp:	2"; do
    grep -qx "$want_line" <<<"$st" || fail "runvm's status lacks '$want_line': $(grep -E 'Uid|Cap|NoNew|Seccomp' <<<"$st")"
done
nthreads=0
for t in /proc/"$vmm"/task/*; do
    grep -qx "Seccomp:	2" "$t/status" || fail "thread $t has no seccomp filter"
    nthreads=$((nthreads + 1))
done
rc=0; wait $upid || rc=$?
[ $rc = 3 ] && [ "$(cat "$T/exec.out")" = "plain user" ] ||
    { cat "$T/exec.err"; fail "--exec as a plain user: status $rc, stdout $(cat "$T/exec.out")"; }
echo "ok: --exec as uid $NOBODY in group $KVM_GID only: status 3; no capabilities, no_new_privs, seccomp on all $nthreads threads"

# A snapshot taken and restored by the plain user.
run snap "${as_user[@]}" ./runvm --kernel bzImage --initrd agent.cpio.gz --mem 128 --snapshot-out snap
want snap 0
[ "$(stat -c %u "$U/snap/memory")" = "$NOBODY" ] || fail "snapshot not the user's: $(ls -ln "$U/snap")"
run restore "${as_user[@]}" ./runvm --restore snap --exec -- sh -c 'echo restored'
want restore 0
[ "$(cat "$T/restore.out")" = restored ] || fail "restore: stdout $(cat "$T/restore.out")"
echo "ok: the plain user takes a snapshot and restores it"

# virtio-net on a tap the administrator made for the user: traffic from
# the guest reaches the host.
ip tuntap add dev rvuser0 mode tap user "$NOBODY" || { echo "skip: cannot create a tap"; exit 77; }
ip addr add 10.0.5.1/24 dev rvuser0 && ip link set rvuser0 up
python3 -c '
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("10.0.5.1", 5055)); s.listen(1); s.settimeout(200)
c, _ = s.accept(); c.settimeout(60)
data = b""
while (d := c.recv(4096)): data += d
sys.stdout.write(data.decode())' >"$T/net-host.out" &
lpid=$!
run net "${as_user[@]}" ./runvm --kernel bzImage --initrd agent.cpio.gz --mem 128 \
    --net rvuser0,mac=52:54:00:00:05:0f \
    --cmdline "reboot=k panic=-1 quiet ip=10.0.5.15::10.0.5.1:255.255.255.0::eth0:off" \
    --exec -- sh -c 'cat /sys/class/net/eth0/address; echo hello over the tap | nc 10.0.5.1 5055'
want net 0
wait $lpid || fail "the host's listener got nothing: $(cat "$T/net.err")"
grep -qx 52:54:00:00:05:0f "$T/net.out" || fail "guest's MAC: $(cat "$T/net.out")"
[ "$(cat "$T/net-host.out")" = "hello over the tap" ] || fail "host received: $(cat "$T/net-host.out")"
echo "ok: virtio-net for the plain user on its own tap: the guest's bytes reached the host"

# --cgroup, as root: the VM's process in PARENT/runvm.PID with its limits;
# the supervisor outside; nothing left after; the status passed through.
if ! grep -qw cgroup2 /proc/mounts || [ "$(stat -fc %T $CG)" != cgroup2fs ]; then
    echo "skip: no cgroup2 hierarchy at $CG"; exit 77
fi
for c in memory pids cpu; do echo "+$c" >$CG/cgroup.subtree_control; done
mkdir "$P"
"$RUNVM" --kernel "$KERNEL" --initrd "$T/agent.cpio.gz" --mem 128 --cpus 2 --cgroup "$P" \
    --exec -- sh -c 'echo in a cgroup; sleep 4; exit 5' >"$T/cg.out" 2>"$T/cg.err" </dev/null &
super=$!
for _ in $(seq 300); do grep -q 'in a cgroup' "$T/cg.out" && break; sleep 0.2; done
D=$P/runvm.$super
[ -d "$D" ] || fail "--cgroup: no $D: $(ls "$P"); $(cat "$T/cg.err")"
# The VMM, and beside it only KVM's kernel threads for its VM (the NX huge
# page recovery worker joins its creator's cgroup).
vmm=
for p in $(cat "$D/cgroup.procs"); do
    pp=$(ps -o ppid= -p "$p" | tr -d ' ')
    if [ "$pp" = "$super" ] && [ -z "$vmm" ]; then vmm=$p
    elif [ "$pp" != 2 ]; then fail "--cgroup: $D holds $p ($(ps -o args= -p "$p")), child of $pp"
    fi
done
[ -n "$vmm" ] || fail "--cgroup: the supervisor $super's child is not in $D: $(cat "$D/cgroup.procs")"
grep -q "^0::/rvtest\.$$/" /proc/$super/cgroup && fail "the supervisor is inside the VM's cgroup"
[ "$(cat "$D/memory.max")" = $(((128 + 4 + 128) << 20)) ] || fail "memory.max $(cat "$D/memory.max")"
[ "$(cat "$D/pids.max")" = 34 ] && [ "$(cat "$D/cpu.max")" = "300000 100000" ] ||
    fail "pids.max $(cat "$D/pids.max"), cpu.max $(cat "$D/cpu.max")"
threads=$(cat "$D/pids.current")
mem=$(($(cat "$D/memory.current") >> 20))
rc=0; wait $super || rc=$?
[ $rc = 5 ] && [ "$(cat "$T/cg.out")" = "in a cgroup" ] || fail "--cgroup: status $rc, $(cat "$T/cg.err")"
[ ! -e "$D" ] || fail "--cgroup: $D left behind"
echo "ok: --cgroup: the VM's process in $D, beside KVM's worker thread for its VM only: $threads tasks, $mem MiB charged; limits set, status 5 passed on, the cgroup removed"

# SIGTERM to the supervisor reaches the VMM: the guest is stopped, the
# cgroup removed.
"$RUNVM" --kernel "$KERNEL" --initrd "$T/agent.cpio.gz" --mem 128 --cgroup "$P" \
    --exec -- sh -c 'echo waiting; sleep 600' >"$T/cgterm.out" 2>"$T/cgterm.err" </dev/null &
super=$!
for _ in $(seq 300); do grep -q waiting "$T/cgterm.out" && break; sleep 0.2; done
kill -TERM $super
rc=0; wait $super || rc=$?
[ $rc != 0 ] && [ ! -e "$P/runvm.$super" ] || fail "SIGTERM: status $rc, $(ls "$P")"
echo "ok: --cgroup: SIGTERM to runvm stops the VM (status $rc) and removes its cgroup"

# A cgroup delegated to the plain user: runvm, started inside it as that
# user, makes the VM's cgroup there itself.
mkdir "$Q" "$Q/start"
chown "$NOBODY" "$Q" "$Q/cgroup.procs" "$Q/cgroup.subtree_control" "$Q/cgroup.threads" \
    "$Q/start" "$Q/start/cgroup.procs"
run cguser sh -c "echo \$\$ >$Q/start/cgroup.procs && exec unshare -m '$T/as-user' ./runvm \
    --kernel bzImage --initrd agent.cpio.gz --mem 128 --cgroup '$Q' \
    --exec -- sh -c 'cat /proc/self/status >/dev/null; echo delegated'"
want cguser 0
[ "$(cat "$T/cguser.out")" = delegated ] || fail "delegated: $(cat "$T/cguser.out")"
[ -z "$(find "$Q" -mindepth 1 -maxdepth 1 -type d -name 'runvm.*')" ] || fail "delegated: left $(ls "$Q")"
echo "ok: --cgroup in a cgroup delegated to the plain user"

# runvm serve --cgroup: each VM's runvm in PARENT/runvm.PID; the daemon
# takes the run's output socket from the VMM (the supervisor's child),
# counts the VMs' memory from their cgroups, and leaves no cgroup behind.
mkdir -p "$T/images" "$T/xdg"
agent_initrd "$T/images/sh.cpio.gz" $'LANG=sh\nTOOLCHAIN=busybox sh\nSOURCE=main.sh\nRUN=sh main.sh\nENV=PATH=/bin\n' sh echo cat
SV=$T/serve.sock
RUNVM_IMAGES=$T/images RUNVM_KERNEL=$KERNEL RUNVM_SNAPSHOTS=$T/snapshots XDG_RUNTIME_DIR=$T/xdg \
    "$RUNVM" serve --api-sock "$SV" --langs sh --max-vms 1 --warm 1 --mem 128 --timeout 30 \
    --cgroup "$P" >"$T/serve.out" 2>"$T/serve.err" &
spid=$!
watch_runvm $spid "$T/serve.err"
for _ in $(seq 300); do [ -S "$SV" ] && break; sleep 0.1; done
python3 - "$SV" "$P" >"$T/serve-run.out" <<'PY' || fail "serve --cgroup: $(cat "$T/serve-run.out")"
import json, os, socket, sys
def http(method, path, body=b""):
    s = socket.socket(socket.AF_UNIX); s.settimeout(300); s.connect(sys.argv[1])
    s.sendall(f"{method} {path} HTTP/1.1\r\nContent-Type: application/json\r\n"
              f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
    data = b""
    while (b := s.recv(65536)): data += b
    head, _, rest = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), rest
st, body = http("POST", "/start", json.dumps({"lang": "sh", "code": "sleep 1; echo in serve"}).encode())
assert st == 200, (st, body)
# While it runs: its VM's runvm.N, holding the VMM.
cgs = [d for d in os.listdir(sys.argv[2]) if d.startswith("runvm.")]
assert cgs and any(open(f"{sys.argv[2]}/{d}/cgroup.procs").read().strip() for d in cgs), cgs
o = socket.socket(socket.AF_UNIX); o.settimeout(300); o.connect(json.loads(body)["output_socket"])
ev = b""
while (b := o.recv(65536)): ev += b
evs = [json.loads(l) for l in ev.decode().splitlines()]
out = "".join(e.get("data", "") for e in evs if e["type"] == "output")
assert out == "in serve\n" and evs[-1]["type"] == "exit" and evs[-1]["status"] == 0, evs
st, m = http("GET", "/metrics")
vms = [l for l in m.decode().splitlines() if l.startswith('runvm_serve_resident_bytes{process="vms"}')]
assert st == 200 and vms and float(vms[0].split()[-1]) > 0, vms
print("ran; vms memory", vms[0].split()[-1])
PY
kill -TERM $spid
rc=0; wait $spid || rc=$?
unwatch_runvm
[ $rc = 0 ] || { tail -5 "$T/serve.err"; fail "serve --cgroup: exit status $rc after SIGTERM"; }
left=$(find "$P" -mindepth 1 -maxdepth 1 -type d -name 'runvm.*')
[ -z "$left" ] || fail "serve --cgroup: left $left"
echo "ok: serve --cgroup: a submission ran in a VM of its own cgroup ($(cat "$T/serve-run.out")); after SIGTERM no cgroup is left"

# The unit test's checks that need this hierarchy.
if [ -x "$B/unit/test_cgroup" ]; then
    "$B/unit/test_cgroup" >"$T/unit.out" 2>&1 || { cat "$T/unit.out"; fail "test_cgroup"; }
    for t in make_join_remove supervisor_ends_as_the_vmm; do
        grep -q "OK \] $t" "$T/unit.out" || { cat "$T/unit.out"; fail "test_cgroup: $t did not run"; }
    done
    echo "ok: test_cgroup in a real hierarchy: make, join, remove; the supervisor's status, signals and memory limit"
fi
