#!/usr/bin/env python3
"""QEMU's memory for the same VM as runvm's "VMM overhead": peak RSS
(VmHWM) minus the guest RAM resident in QEMU, read when the guest has
finished (QEMU started with -action reboot=shutdown,shutdown=pause, so the
guest's reset pauses the VM instead of ending QEMU), then QEMU is told to
quit.

usage: qemu-rss.py PID QMP_SOCKET GUEST_RAM_MIB [TIMEOUT_S]
prints: HWM_KIB GUEST_RESIDENT_KIB
The guest RAM is found in /proc/PID/smaps as the anonymous mappings at
least GUEST_RAM_MIB and at most 8 MiB more (QEMU aligns its RAM block);
their Rss is what the guest touched or QEMU loaded there.
"""
import json
import os
import socket
import sys
import time


def qmp(sock_path, deadline):
    while True:
        try:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.connect(sock_path)
            break
        except OSError:
            s.close()
            if time.monotonic() > deadline:
                raise SystemExit("qemu-rss: cannot connect to QMP at %s" % sock_path)
            time.sleep(0.05)
    f = s.makefile("rwb", buffering=0)

    def cmd(name):
        f.write(json.dumps({"execute": name}).encode() + b"\n")
        while True:
            line = f.readline()
            if not line:
                raise SystemExit("qemu-rss: QMP closed")
            msg = json.loads(line)
            if "return" in msg or "error" in msg:
                return msg

    f.readline()  # greeting
    cmd("qmp_capabilities")
    return s, cmd


def main():
    if len(sys.argv) not in (4, 5):
        raise SystemExit(__doc__)
    pid, sock_path, ram_mib = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    timeout = float(sys.argv[4]) if len(sys.argv) == 5 else 120.0
    deadline = time.monotonic() + timeout
    s, cmd = qmp(sock_path, deadline)
    while True:
        st = cmd("query-status").get("return", {}).get("status")
        if st in ("shutdown", "paused", "guest-panicked", "internal-error"):
            break
        if time.monotonic() > deadline:
            raise SystemExit("qemu-rss: guest did not finish in %.0f s (status %s)" % (timeout, st))
        time.sleep(0.05)
    hwm = None
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmHWM:"):
                hwm = int(line.split()[1])
    lo, hi = ram_mib * 1024, (ram_mib + 8) * 1024
    guest = 0
    size = None
    anon = False
    with open("/proc/%d/smaps" % pid) as f:
        for line in f:
            fields = line.split()
            if "-" in fields[0] and not fields[0].endswith(":"):
                anon = len(fields) < 6  # no pathname
                size = None
            elif fields[0] == "Size:":
                size = int(fields[1])
            elif fields[0] == "Rss:" and anon and size is not None and lo <= size <= hi:
                guest += int(fields[1])
    try:
        cmd("quit")
    except SystemExit:
        pass
    s.close()
    if hwm is None:
        raise SystemExit("qemu-rss: no VmHWM for pid %d" % pid)
    print(hwm, guest)


if __name__ == "__main__":
    main()
