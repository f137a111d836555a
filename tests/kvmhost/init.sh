#!/bin/busybox sh
# PID 1 of the nested KVM host (L1). Loads KVM and 9p, mounts the host's
# root read-only with the repository read-write on top, runs the command
# kvmhost left in the control share, and records its exit status there.
bb=/bin/busybox
$bb mkdir -p /proc /sys /dev /ctl /host
$bb mount -t proc proc /proc
$bb mount -t sysfs sysfs /sys
$bb mount -t devtmpfs devtmpfs /dev
for m in $($bb cat /modules.list); do
    $bb insmod "/modules/$m" || echo "kvmhost-init: insmod $m failed" >/dev/ttyS0
done
fail() {
    echo "kvmhost-init: $*" >/dev/ttyS0
    $bb poweroff -f
}
opts=trans=virtio,version=9p2000.L,msize=262144
$bb mount -t 9p -o $opts ctl /ctl || fail "mounting the control share failed"
. /ctl/env.sh # sets KVMHOST_REPO
$bb mount -t 9p -o $opts,ro hostroot /host || fail "mounting the host root failed"
for d in tmp run root var/tmp; do
    [ -d /host/$d ] && $bb mount -t tmpfs -o mode=1777 tmpfs /host/$d
done
$bb mount -t proc proc /host/proc
$bb mount -t sysfs sysfs /host/sys
$bb mount -t devtmpfs devtmpfs /host/dev
$bb mkdir -p /host/dev/pts /host/dev/shm
$bb mount -t devpts devpts /host/dev/pts
$bb mount -t tmpfs tmpfs /host/dev/shm
$bb mount -t cgroup2 cgroup2 /host/sys/fs/cgroup 2>/dev/null
# The repository may sit under a path that is tmpfs in here (a clone in /tmp).
[ -d "/host$KVMHOST_REPO" ] || $bb mkdir -p "/host$KVMHOST_REPO"
$bb mount -t 9p -o $opts repo "/host$KVMHOST_REPO" || fail "mounting the repository failed"
$bb ip link set lo up
[ -c /dev/kvm ] || fail "/dev/kvm did not appear (kvm_amd not loaded?)"
$bb chmod 666 /dev/kvm
# The virtio-serial ports carry the command's stdout and stderr.
out= err=
for p in /sys/class/virtio-ports/*; do
    case $($bb cat "$p/name") in
    stdout) out=/dev/${p##*/} ;;
    stderr) err=/dev/${p##*/} ;;
    esac
done
[ -n "$out" ] && [ -n "$err" ] || fail "virtio-serial ports missing"
# For kvmhost's timeout report (tests/kvmhost/where.py): where a wedged
# kernel's vCPUs are, by name (the kernel's own map; KASLR moves it).
$bb grep ' [tT] ' /proc/kallsyms >/ctl/kallsyms &
$bb mkdir -p /host/tmp/.kvmhost
$bb cp /ctl/cmd.sh /host/tmp/.kvmhost/cmd.sh
# A vCPU held for the VM's life keeps KVM's apic_sw_disabled jump label
# from being rewritten at every guest boot: under TCG that rewrite has
# wedged this VM (see kvm-pin.py).
$bb chroot /host python3 "$KVMHOST_REPO/tests/kvmhost/kvm-pin.py" </dev/null \
    >/dev/null 2>/dev/ttyS0 || echo "kvmhost-init: kvm-pin.py failed" >/dev/ttyS0
$bb chroot /host /bin/bash /tmp/.kvmhost/cmd.sh </dev/null >"$out" 2>"$err"
echo $? >/ctl/status.tmp
$bb mv /ctl/status.tmp /ctl/status
$bb sync
$bb poweroff -f
