#!/bin/busybox sh
# PID 1 of the nested KVM host (L1). Loads KVM and 9p, makes the command's
# root (x86_64: the host's root read-only over 9p; aarch64: this initramfs,
# busybox and bash) with the repository read-write on top, runs the command
# kvmhost left in the control share, and records its exit status there.
bb=/bin/busybox
$bb mkdir -p /proc /sys /dev /ctl /host
$bb mount -t proc proc /proc
$bb mount -t sysfs sysfs /sys
$bb mount -t devtmpfs devtmpfs /dev
tty=/dev/ttyS0
[ -c /dev/ttyAMA0 ] && tty=/dev/ttyAMA0 # arm64's PL011
for m in $($bb cat /modules.list); do
    $bb insmod "/modules/$m" || echo "kvmhost-init: insmod $m failed" >$tty
done
fail() {
    echo "kvmhost-init: $*" >$tty
    $bb poweroff -f
}
opts=trans=virtio,version=9p2000.L,msize=262144
$bb mount -t 9p -o $opts ctl /ctl || fail "mounting the control share failed"
. /ctl/env.sh # sets KVMHOST_REPO, KVMHOST_ROOT and KVMHOST_PIN
r=$KVMHOST_ROOT
if [ -n "$r" ]; then
    $bb mount -t 9p -o $opts,ro hostroot "$r" || fail "mounting the host root failed"
    $bb mount -t proc proc "$r"/proc
    $bb mount -t sysfs sysfs "$r"/sys
    $bb mount -t devtmpfs devtmpfs "$r"/dev
else
    $bb --install -s # the initramfs is the root: busybox's applets on PATH
fi
for d in tmp run root var/tmp; do
    [ -d "$r"/$d ] && $bb mount -t tmpfs -o mode=1777 tmpfs "$r"/$d
done
$bb mkdir -p "$r"/dev/pts "$r"/dev/shm
$bb mount -t devpts devpts "$r"/dev/pts
$bb mount -t tmpfs tmpfs "$r"/dev/shm
$bb mount -t cgroup2 cgroup2 "$r"/sys/fs/cgroup 2>/dev/null
# The repository may sit under a path that is tmpfs in here (a clone in /tmp).
[ -d "$r$KVMHOST_REPO" ] || $bb mkdir -p "$r$KVMHOST_REPO"
$bb mount -t 9p -o $opts repo "$r$KVMHOST_REPO" || fail "mounting the repository failed"
$bb ip link set lo up
[ -c /dev/kvm ] || fail "/dev/kvm did not appear (KVM not loaded or not initialised?)"
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
$bb mkdir -p "$r"/tmp/.kvmhost
$bb cp /ctl/cmd.sh "$r"/tmp/.kvmhost/cmd.sh
# x86: a vCPU held for the VM's life keeps KVM's apic_sw_disabled jump
# label from being rewritten at every guest boot: under TCG that rewrite
# has wedged this VM (see kvm-pin.py).
if [ "$KVMHOST_PIN" = 1 ]; then
    $bb chroot "$r" python3 "$KVMHOST_REPO/tests/kvmhost/kvm-pin.py" </dev/null \
        >/dev/null 2>$tty || echo "kvmhost-init: kvm-pin.py failed" >$tty
fi
$bb chroot "${r:-/}" /bin/bash /tmp/.kvmhost/cmd.sh </dev/null >"$out" 2>"$err"
echo $? >/ctl/status.tmp
$bb mv /ctl/status.tmp /ctl/status
$bb sync
$bb poweroff -f
