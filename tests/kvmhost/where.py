#!/usr/bin/env python3
"""Where is a stuck outer VM? Asks its QEMU monitor (a Unix socket) for
every vCPU's registers a few times and names the kernel function each RIP
is in, from the outer kernel's /proc/kallsyms (copied out at boot). For kvmhost's timeout report.

usage: where.py MONITOR_SOCKET KALLSYMS [SAMPLES]
       where.py --after SECONDS PID MONITOR_SOCKET KALLSYMS
         (a watchdog: waits, reports, then kills PID with SIGTERM)"""
import bisect
import os
import re
import signal
import socket
import sys
import time


def ask(path, cmd):
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(5)
    s.connect(path)
    buf = b""
    s.sendall(cmd.encode() + b"\n")
    end = time.monotonic() + 5
    while time.monotonic() < end:
        try:
            chunk = s.recv(65536)
        except socket.timeout:
            break
        if not chunk:
            break
        buf += chunk
        if buf.count(b"(qemu)") >= 2:
            break
    s.close()
    return buf.decode(errors="replace")


def load_map(path):
    addrs, names = [], []
    try:
        with open(path) as f:
            for line in f:
                parts = line.split()
                if len(parts) >= 3 and parts[1] in "tTwW":
                    addrs.append(int(parts[0], 16))
                    names.append(parts[2])
    except OSError:
        pass
    order = sorted(range(len(addrs)), key=addrs.__getitem__)
    return [addrs[i] for i in order], [names[i] for i in order]


def main():
    args = sys.argv[1:]
    victim = None
    if args[0] == "--after":
        time.sleep(float(args[1]))
        victim = int(args[2])
        args = args[3:]
        print("kvmhost: timed out", flush=True)
    mon, smap = args[0], args[1]
    samples = int(args[2]) if len(args) > 2 else 3
    try:
        report(mon, smap, samples)
    finally:
        if victim:
            os.kill(victim, signal.SIGTERM)


def report(mon, smap, samples):
    addrs, names = load_map(smap)
    for n in range(samples):
        try:
            out = ask(mon, "info registers -a")
        except OSError as e:
            print(f"kvmhost: monitor: {e}")
            return
        where = []
        for cpu, rip in re.findall(r"CPU#(\d+).*?RIP=([0-9a-f]+)", out, re.S):
            a = int(rip, 16)
            i = bisect.bisect_right(addrs, a) - 1
            sym = f"{names[i]}+0x{a - addrs[i]:x}" if i >= 0 and a >= 0xffffffff00000000 else "user"
            where.append(f"cpu{cpu} {rip} {sym}")
        print(f"kvmhost: outer vCPUs, sample {n + 1}: " + "; ".join(where), flush=True)
        time.sleep(0.5)


main()
