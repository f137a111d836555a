#!/usr/bin/env python3
"""Turns the raw samples of tests/bench/run into results.json and
results.md, and prints the markdown.

usage: report.py RAW_DIR OUT_DIR

results.json: one object per figure, keyed by name; each has "runvm" and,
where there is one, "peer" (each {"median","min","max","n","unit"}),
"ratio" (runvm median / peer median), "peer_name", "what", "target" and
"where"; "boot" also has "phases" (runvm's --boot-timer, ms since runvm
started, each a stats object).
"""
import json
import os
import statistics
import sys


def load(path):
    try:
        with open(path) as f:
            return [float(x) for x in f.read().split()]
    except FileNotFoundError:
        return []


def stats(xs, unit):
    if not xs:
        return None
    return {"median": round(statistics.median(xs), 3), "min": round(min(xs), 3),
            "max": round(max(xs), 3), "n": len(xs), "unit": unit}


def ratio(a, b):
    if not a or not b or not b["median"]:
        return None
    return round(a["median"] / b["median"], 3)


def main():
    raw, out = sys.argv[1], sys.argv[2]
    meta = {}
    try:
        with open(os.path.join(raw, "meta")) as f:
            for line in f:
                k, _, v = line.rstrip("\n").partition("=")
                meta[k] = v
    except FileNotFoundError:
        pass
    where = meta.get("where", "unknown")
    R = lambda name: os.path.join(raw, name)
    figs = {}

    r, q = stats(load(R("boot.runvm.ms")), "ms"), stats(load(R("boot.qemu.ms")), "ms")
    if r:
        phases = {}
        for name in ("kvm_ready", "first_kvm_run"):
            s = stats(load(R("phase.%s.ms" % name)), "ms")
            if s:
                phases[name] = s
        for fn in sorted(os.listdir(raw)):
            if fn.startswith("phase.guest_marker_") and fn.endswith(".ms"):
                phases[fn[len("phase."):-len(".ms")]] = stats(load(R(fn)), "ms")
        figs["boot"] = {
            "what": "launch to testinit's sentinel line on the serial console "
                    "(same bzImage, initramfs, cmdline; 256 MiB, 1 vCPU), interleaved runs",
            "runvm": r, "peer": q, "peer_name": "QEMU -M microvm,acpi=off -cpu host",
            "ratio": ratio(r, q), "target": "<= 0.5", "where": where,
            "phases": phases,
        }

    r, q = stats(load(R("rss.runvm.kib")), "KiB"), stats(load(R("rss.qemu.kib")), "KiB")
    if r:
        figs["rss"] = {
            "what": "peak RSS (VmHWM) minus the guest RAM resident in the VMM, at the "
                    "guest's end: runvm's own report (mincore over guest RAM); QEMU's from "
                    "/proc/PID/status and the guest-RAM mapping's Rss in smaps, read with "
                    "the VM paused on the guest's reset (separate untimed boots)",
            "runvm": r, "peer": q, "peer_name": "QEMU -M microvm,acpi=off (same VM)",
            "ratio": ratio(r, q), "target": "runvm <= 2048 KiB", "where": where,
            "peak_rss": {k: v for k, v in (
                ("runvm", stats(load(R("rss.runvm_hwm.kib")), "KiB")),
                ("peer", stats(load(R("rss.qemu_hwm.kib")), "KiB"))) if v},
        }

    try:
        with open(R("exec_roundtrip.runvm.summary")) as f:
            med, lo, hi, n = f.read().split()
        r = {"median": float(med), "min": float(lo), "max": float(hi), "n": int(n), "unit": "ms"}
    except FileNotFoundError:
        r = None
    if r:
        q = stats(load(R("exec_roundtrip.native.ms")), "ms")
        figs["exec_roundtrip"] = {
            "what": "empty RUN (busybox true) on a booted VM, RUN sent to EXIT received "
                    "(runvm --exec, RUNVM_EXEC_REPEAT), against spawning the same busybox "
                    "true natively (fork+exec+wait from python3) in the same host",
            "runvm": r, "peer": q, "peer_name": "native spawn, same host",
            "ratio": ratio(r, q), "target": "<= 1.3 (hello world on a booted VM)",
            "where": where,
        }

    r = stats(load(R("exec_cold.runvm.ms")), "ms")
    if r:
        figs["exec_cold"] = {
            "what": "runvm --exec -- /bin/true from launch to exit: boot, agent HELLO, "
                    "run, power-off (no peer)",
            "runvm": r, "where": where,
        }

    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "results.json"), "w") as f:
        json.dump(figs, f, indent=2)
        f.write("\n")

    def cell(s):
        if not s:
            return "–"
        fmt = "%.0f" if s["unit"] == "KiB" else "%.1f" if s["median"] >= 10 else "%.3f"
        return ("%s %s (%s–%s, n=%d)" % (fmt, s["unit"], fmt, fmt, s["n"])) % (
            s["median"], s["min"], s["max"])

    md = ["# runvm benchmarks", ""]
    for k in ("where", "date", "commit", "cpu", "qemu", "kernel"):
        if k in meta:
            md.append("- %s: %s" % (k, meta[k]))
    md += ["", "median (min–max, n)", "",
           "| figure | runvm | peer | runvm / peer | target |",
           "|---|---|---|---|---|"]
    for name, fig in figs.items():
        peer = cell(fig.get("peer"))
        if fig.get("peer"):
            peer += " " + fig["peer_name"]
        rt = "%.3f" % fig["ratio"] if fig.get("ratio") is not None else "–"
        md.append("| %s | %s | %s | %s | %s |" % (name, cell(fig["runvm"]), peer, rt,
                                                 fig.get("target", "–")))
    if "boot" in figs:
        md += ["", "runvm boot phases (ms since runvm started; sentinel = launch to the "
               "sentinel line read by the harness):", "",
               "| phase | median (min–max, n) |", "|---|---|",
               "| vmm-start | 0 |"]
        for k, s in figs["boot"]["phases"].items():
            md.append("| %s | %s |" % (k.replace("_", "-"), cell(s)))
        if not any(k.startswith("guest_marker") for k in figs["boot"]["phases"]):
            md.append("| guest marker | none (guest kernel without CONFIG_X86_IOPL_IOPERM) |")
        md.append("| sentinel | %s |" % cell(figs["boot"]["runvm"]))
    if "rss" in figs and figs["rss"].get("peak_rss"):
        p = figs["rss"]["peak_rss"]
        md += ["", "peak RSS including guest RAM: runvm %s; QEMU %s" % (
            cell(p.get("runvm")), cell(p.get("peer")))]
    md += ["", "What each figure measures:", ""]
    for name, fig in figs.items():
        md.append("- **%s**: %s." % (name, fig["what"]))
    text = "\n".join(md) + "\n"
    with open(os.path.join(out, "results.md"), "w") as f:
        f.write(text)
    sys.stdout.write(text)


if __name__ == "__main__":
    main()
