#!/usr/bin/env python3
"""Where is a stuck outer VM? Asks its QEMU monitor (a Unix socket) for
every vCPU's registers a few times and names the kernel function each RIP
(x86_64) or PC (aarch64) is in, from the outer kernel's /proc/kallsyms (copied out at boot). For kvmhost's timeout report.

usage: where.py MONITOR_SOCKET KALLSYMS [SAMPLES]
       where.py --after SECONDS PID MONITOR_SOCKET KALLSYMS [FILE STALE_S]
         (a watchdog: after SECONDS, or once FILE has not been touched
         for STALE_S seconds, or not made within STALE_S seconds of the
         start, reports and kills PID with SIGTERM;
         its first line says which: "timed out" or "wedged")"""
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
    samples = 3
    if args[0] == "--after":
        victim = int(args[2])
        beat, stale = (args[5], float(args[6])) if len(args) > 6 else (None, 0)
        print(watch(float(args[1]), beat, stale), flush=True)
        args = args[3:5]
    elif len(args) > 2:
        samples = int(args[2])
    mon, smap = args[0], args[1]
    try:
        report(mon, smap, samples)
    finally:
        if victim:
            os.kill(victim, signal.SIGTERM)


def watch(limit, beat, stale):
    """Waits for the time limit or a stale heartbeat; says which."""
    end = time.monotonic() + limit
    start = time.time()
    while time.monotonic() < end:
        time.sleep(min(5.0, max(0.0, end - time.monotonic())))
        if not beat:
            continue
        try:
            age = time.time() - os.stat(beat).st_mtime
        except OSError:
            # Not made yet: the host has as long to start its command (an
            # outer VM that wedged while booting never makes it).
            age = time.time() - start
            if age > stale:
                return f"kvmhost: wedged: {beat} not made in {age:.0f} s"
            continue
        if age > stale:
            return f"kvmhost: wedged: {beat} not touched for {age:.0f} s"
    return "kvmhost: timed out"


def report(mon, smap, samples):
    addrs, names = load_map(smap)
    for n in range(samples):
        try:
            out = ask(mon, "info registers -a")
        except OSError as e:
            print(f"kvmhost: monitor: {e}")
            return
        where = []
        for cpu, reg, rip in re.findall(r"CPU#(\d+).*?(?<![A-Z])(RIP|PC)=([0-9a-f]+)", out, re.S):
            a = int(rip, 16)
            i = bisect.bisect_right(addrs, a) - 1
            # Kernel text: x86-64's top 4 GiB, arm64's upper half.
            kernel = a >= (0xffffffff00000000 if reg == "RIP" else 0xffff000000000000)
            sym = f"{names[i]}+0x{a - addrs[i]:x}" if i >= 0 and kernel else "user"
            where.append(f"cpu{cpu} {rip} {sym}")
        print(f"kvmhost: outer vCPUs, sample {n + 1}: " + "; ".join(where), flush=True)
        time.sleep(0.5)


main()
