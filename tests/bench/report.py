#!/usr/bin/env python3
"""Turns the raw samples of tests/bench/run into results.json and
results.md, and prints the markdown.

usage: report.py RAW_DIR OUT_DIR

results.json: one object per figure, keyed by name; each has "runvm" and,
where there is one, "peer" (each {"median","min","max","n","unit"}),
"ratio" (runvm median / peer median; "ratio_means" says which way is
better for runvm), "peer_name", "what", "target" and "where"; "boot" also
has "phases" (runvm's --boot-timer, ms since runvm started, each a stats
object). exits_kernel and exits_init hold KVM exits per boot phase (runvm
only, from --boot-timer): "runvm" is all exits, "detail" io/mmio/halt,
"source" where KVM's counters were read; "unavailable" when they could not
be. "notes" lists what was skipped.
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
            "ratio": ratio(r, q), "ratio_means": "runvm / peer; < 1: runvm faster",
            "target": "<= 0.5", "where": where,
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
            "ratio": ratio(r, q), "ratio_means": "runvm / peer; < 1: runvm smaller",
            "target": "runvm <= 2048 KiB", "where": where,
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
                    "true natively (fork+exec+wait from a C loop, build/tests/bench_spawn) "
                    "in the same host",
            "runvm": r, "peer": q, "peer_name": "native spawn, same host",
            "ratio": ratio(r, q), "ratio_means": "runvm / peer; < 1: runvm faster",
            "target": "<= 1.3 (hello world on a booted VM)",
            "where": where,
        }

    r = stats(load(R("exec_cold.runvm.ms")), "ms")
    if r:
        figs["exec_cold"] = {
            "what": "runvm --exec -- /bin/true from launch to exit: boot, agent HELLO, "
                    "run, power-off (no peer)",
            "runvm": r, "where": where,
        }

    # Rates and throughputs (higher is better) and snippet times, each
    # runvm against its peer.
    for name, unit, what, peer_name, higher in (
            ("create_rate_seq", "VMs/s",
             "VMs booted to testinit's sentinel per second, 2 one after another "
             "(each launched once the one before has exited): 2 / (first launch to "
             "last sentinel); same kernel, initramfs, cmdline as boot; interleaved "
             "samples", "QEMU -M microvm,acpi=off -cpu host", True),
            ("create_rate_par2", "VMs/s",
             "VMs booted to testinit's sentinel per second, 2 launched at once: "
             "2 / (launch to the later sentinel); interleaved samples",
             "QEMU -M microvm,acpi=off -cpu host", True),
            ("console_g2h", "MB/s",
             "guest -> host through /dev/hvc0 (virtio-console), build/tests/hvc_bulk "
             "writing %s, every byte checked on the host; MB/s by the guest's clock; "
             "runvm --vconsole stdio vs QEMU virtio-serial-device + virtconsole to a "
             "file; same kernel and init; interleaved runs" % (
                 "%d MiB" % (int(load(R("console_g2h.bytes"))[0]) >> 20)
                 if load(R("console_g2h.bytes")) else "the pattern"),
             "QEMU -M microvm,acpi=off virtconsole", True)):
        r, q = stats(load(R(name + ".runvm.vms" if unit == "VMs/s" else name + ".runvm.mbs")), unit), \
            stats(load(R(name + ".peer.vms" if unit == "VMs/s" else name + ".peer.mbs")), unit)
        if r:
            figs[name] = {"what": what, "runvm": r, "peer": q, "peer_name": peer_name,
                          "ratio": ratio(r, q),
                          "ratio_means": "runvm / peer; > 1: runvm faster",
                          "where": where}
    # The sandbox's cost: the same runvm with its seccomp filters on and off.
    for name, unit, ext, what, means in (
            ("sandbox_rtt", "ms", "ms",
             "an empty RUN's round trip on a booted VM (median of 50 in one "
             "--exec VM), seccomp filters on (default) against RUNVM_SECCOMP=off; "
             "interleaved runs", "on / off; > 1: the filters cost time"),
            ("sandbox_g2h", "MB/s", "mbs",
             "guest -> host through /dev/hvc0 (hvc_bulk, every byte checked), "
             "seccomp filters on against RUNVM_SECCOMP=off; interleaved runs",
             "on / off; < 1: the filters cost throughput"),
            ("sandbox_write", "ns", "ns",
             "one write(2) to /dev/null, no VM: under the event loop's filter "
             "(a child confined as runvm confines itself) against unfiltered; "
             "median of 9 rounds of 200 000", "on / off; > 1: the filter's cost"),
            ("sandbox_ioctl", "ns", "ns",
             "one ioctl(KVM_RUN) (to /dev/null, which refuses it), no VM: under "
             "the vCPU filter, whose ioctl rule checks the request, against "
             "unfiltered; median of 9 rounds of 200 000",
             "on / off; > 1: the filter's cost")):
        r = stats(load(R(name + ".on." + ext)), unit)
        q = stats(load(R(name + ".off." + ext)), unit)
        if r:
            figs[name] = {"what": what, "runvm": r, "peer": q,
                          "peer_name": "runvm, RUNVM_SECCOMP=off",
                          "ratio": ratio(r, q), "ratio_means": means, "where": where}
    langs = sorted({fn.split("_")[1] for fn in os.listdir(raw)
                    if fn.startswith("snippet_") and fn.endswith(".runvm.s")})
    for lang in langs:
        for kind, what, order in (
                ("booted", "hello world (examples/hello.*), POST /start to the run's exit "
                           "event on a booted VM (runvm --lang %s --api-sock; one untimed "
                           "warm-up request)", "interleaved runs"),
                ("cold", "hello world, `runvm --lang %s FILE` from launch to exit (boot, "
                         "build, run, power-off)",
                 "the cold runs after the booted and native ones")):
            name = "snippet_%s_%s" % (lang, kind)
            r = stats(load(R(name + ".runvm.s")), "s")
            q = stats(load(R(name + ".peer.s")), "s")
            if r:
                figs[name] = {
                    "what": (what % lang) + ", against the same build and run natively "
                            "in the same host (the image's rootfs chrooted, its lang.conf "
                            "ENV, BUILD, RUN; warm caches; the build with the agent's 4 ms "
                            "timer slack); " + order,
                    "runvm": r, "peer": q, "peer_name": "native build+run, same host",
                    "ratio": ratio(r, q), "ratio_means": "runvm / peer; < 1: runvm faster",
                    "target": "<= 1.3" if kind == "booted" else "–", "where": where}
    # A language version beside its language's default, both on a booted
    # VM in the same run: what a newer toolchain costs per submission.
    for lang in langs:
        base = lang.split("@")[0]
        if "@" not in lang or base not in langs:
            continue
        r = stats(load(R("snippet_%s_booted.runvm.s" % lang)), "s")
        q = stats(load(R("snippet_%s_booted.runvm.s" % base)), "s")
        if r and q:
            figs["snippet_%s_vs_default" % lang] = {
                "what": "hello world, POST /start to the exit event on a booted VM "
                        "(runvm --lang %s --api-sock), against the same on the "
                        "language's default version (--lang %s), same run" % (lang, base),
                "runvm": r, "peer": q, "peer_name": "runvm --lang %s" % base,
                "ratio": ratio(r, q), "ratio_means": "version / default; < 1: the version faster",
                "where": where}

    # KVM exits per boot phase, from runvm --boot-timer in the boot runs.
    src = None
    try:
        with open(R("exits.source")) as f:
            src = f.read().strip()
    except FileNotFoundError:
        pass
    if src is not None:
        if src.startswith("unavailable"):
            figs["exits"] = {"unavailable": src, "where": where}
        for phase, what in (
                ("kernel", "KVM exits from the first KVM_RUN (where the guest enters "
                           "the kernel; none happen before it) to testinit's boot-timer "
                           "mark: kernel boot"),
                ("init", "KVM exits from testinit's boot-timer mark to the VM's end: "
                         "init (console output, sentinel, reboot)")):
            r = stats(load(R("exits_%s.exits.n" % phase)), "exits")
            if r and not src.startswith("unavailable"):
                figs["exits_" + phase] = {
                    "what": what + ", all vCPUs, runvm only (source: %s)" % src,
                    "runvm": r, "source": src, "where": where,
                    "detail": {k: v for k, v in (
                        (c, stats(load(R("exits_%s.%s.n" % (phase, c))), "exits"))
                        for c in ("io_exits", "mmio_exits", "halt_exits")) if v}}
    notes = []
    try:
        with open(R("notes")) as f:
            notes = [x for x in f.read().splitlines() if x]
    except FileNotFoundError:
        pass
    if os.path.exists(R("snapshot.txt")):
        with open(R("snapshot.txt")) as f:
            figs["snapshot"] = dict(l.split(None, 1) for l in f.read().splitlines()
                                    if len(l.split(None, 1)) == 2)
    for part in ("serve", "httpd"):
        if os.path.exists(R(part + ".txt")):
            with open(R(part + ".txt")) as f:
                figs[part] = dict(l.split(None, 1) for l in f.read().splitlines()
                                  if len(l.split(None, 1)) == 2)
    if notes:
        figs["notes"] = notes

    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "results.json"), "w") as f:
        json.dump(figs, f, indent=2)
        f.write("\n")

    def cell(s):
        if not s:
            return "–"
        fmt = "%.0f" if s["unit"] in ("KiB", "exits") else "%.1f" if s["median"] >= 10 else "%.3f"
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
        if "runvm" not in fig:
            continue
        peer = cell(fig.get("peer"))
        if fig.get("peer"):
            peer += " " + fig["peer_name"]
        rt = "%.3f" % fig["ratio"] if fig.get("ratio") is not None else "–"
        if fig.get("ratio_means") and fig.get("ratio") is not None:
            rt += " (%s)" % fig["ratio_means"].split("; ")[1]
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
    ex = [k for k in ("exits_kernel", "exits_init") if k in figs]
    if ex:
        md += ["", "runvm KVM exits per boot phase (%s; median (min–max, n)):" %
               figs[ex[0]]["source"], "",
               "| phase | exits | io_exits | mmio_exits | halt_exits |", "|---|---|---|---|---|",
               "| before the kernel (VMM set-up) | 0: the guest's first instruction is "
               "the kernel's, at the first KVM_RUN | | | |"]
        for k in ex:
            d = figs[k]["detail"]
            md.append("| %s | %s | %s | %s | %s |" % (
                k[len("exits_"):], cell(figs[k]["runvm"]), cell(d.get("io_exits")),
                cell(d.get("mmio_exits")), cell(d.get("halt_exits"))))
    elif "exits" in figs:
        md += ["", "runvm KVM exits per boot phase: %s" % figs["exits"]["unavailable"]]
    if figs.get("snapshot"):
        md += ["", "Snapshots (tests/bench/snapshot.sh):", "", "| figure | value |",
               "|---|---|"]
        md += ["| %s | %s |" % (k, v) for k, v in figs["snapshot"].items()]
    if figs.get("serve"):
        md += ["", "runvm serve under load (tests/bench/serve.sh; the latency "
               "distributions: serve-latency.svg):", "", "| figure | value |", "|---|---|"]
        md += ["| %s | %s |" % (k, v) for k, v in figs["serve"].items()]
    if figs.get("httpd"):
        md += ["", "runvm's HTTP server against libmicrohttpd on the same event loop "
               "(tests/bench/httpd.sh):", "", "| figure | value |", "|---|---|"]
        md += ["| %s | %s |" % (k, v) for k, v in figs["httpd"].items()]
    if figs.get("notes"):
        md += ["", "Notes:", ""] + ["- " + n for n in figs["notes"]]
    md += ["", "What each figure measures:", ""]
    for name, fig in figs.items():
        if isinstance(fig, dict) and "what" in fig:
            md.append("- **%s**: %s." % (name, fig["what"]))
    text = "\n".join(md) + "\n"
    with open(os.path.join(out, "results.md"), "w") as f:
        f.write(text)
    sys.stdout.write(text)


if __name__ == "__main__":
    main()
