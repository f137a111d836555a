#!/usr/bin/env python3
"""Hello world in one language, request to exit, three ways (native and
booted runs interleaved, then the cold runs):
  booted  runvm API mode: POST /start on a VM already booted (one untimed
          warm-up request first) to the run's exit event
  cold    `runvm --lang LANG FILE`: launch to exit (boot, build, run)
  native  the same build-and-run in the same host: the image's own root
          filesystem, chrooted, its lang.conf's ENV, BUILD and RUN, warm
          caches (one untimed warm-up run first), the build with the
          agent's timer slack
Each run must print "hello, world" and exit 0, or the benchmark fails.
Writes seconds, one a line, to OUT/snippet_LANG_{booted,cold}.runvm.s, and
the native samples as the peer of both (.peer.s).

usage: snippet.py RUNVM LANG FILE ROOT N OUT
ROOT is the unpacked image, with /proc and /dev mounted (tests/bench/lang.sh).
"""
import base64
import json
import os
import socket
import subprocess
import sys
import tempfile
import time

WANT = b"hello, world"
BUILD_TIMER_SLACK_NS = 4000000
EXT_TIMEOUTS = ["--build-timeout", "600", "--timeout", "120"]
# Seconds any one run may take, cold, native or through the API: a run
# that never ends fails the benchmark with what runvm printed, instead of
# holding it until the nested host's own limit.
RUN_LIMIT = 900


def conf(root):
    c = {"ENV": []}
    with open(os.path.join(root, "etc/runvm/lang.conf")) as f:
        for line in f:
            k, _, v = line.rstrip("\n").partition("=")
            if k == "ENV":
                c["ENV"].append(v)
            elif k:
                c[k] = v
    return c


def http(sock_path, method, path, body=b""):
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(RUN_LIMIT)
    s.connect(sock_path)
    s.sendall((f"{method} {path} HTTP/1.1\r\nHost: runvm\r\nContent-Type: "
               f"application/json\r\nContent-Length: {len(body)}\r\n\r\n")
              .encode() + body)
    data = b""
    while chunk := s.recv(65536):
        data += chunk
    s.close()
    head, _, payload = data.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), json.loads(payload or b"{}")


def booted(sock_path, code):
    """POST /start to the exit event; returns (stdout, exit event)."""
    status, reply = http(sock_path, "POST", "/start",
                         json.dumps({"code": code}).encode())
    if status != 200:
        raise RuntimeError(f"POST /start: {status} {reply}")
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(RUN_LIMIT)
    s.connect(reply["output_socket"])
    buf, out, ex = b"", b"", None
    while chunk := s.recv(65536):
        buf += chunk
        while b"\n" in buf:
            line, buf = buf.split(b"\n", 1)
            ev = json.loads(line)
            if ev["type"] == "output" and ev.get("stream") == "stdout" \
                    and ev.get("phase") != "build":
                out += (ev["data"].encode() if "data" in ev else
                        base64.b64decode(ev.get("data_base64", "")))
            elif ev["type"] == "exit":
                ex = ev
    s.close()
    return out, ex


def main():
    runvm, lang, src, root, n, out = sys.argv[1:7]
    n = int(n)
    c = conf(root)
    with open(src) as f:
        code = f.read()
    work = os.path.join(root, "tmp/w")
    os.makedirs(work, exist_ok=True)
    with open(os.path.join(work, c["SOURCE"]), "w") as f:
        f.write(code)
    # The build with the timer slack the agent gives it (BUILD_TIMER_SLACK_NS
    # in guest-agent/agent.c), the program with the default, as in the VM.
    build = c.get("BUILD") and (f"(echo {BUILD_TIMER_SLACK_NS} > "
                                f"/proc/self/timerslack_ns && exec {c['BUILD']})")
    steps = " && ".join(x for x in (build, c["RUN"]) if x)
    native_cmd = ["chroot", root, "env", "-i", "HOME=/tmp", "TMPDIR=/tmp",
                  *c["ENV"], "sh", "-c", f"cd /tmp/w && {steps}"]

    def native():
        for fn in os.listdir(work):
            if fn != c["SOURCE"]:
                os.unlink(os.path.join(work, fn))
        t = time.perf_counter()
        p = subprocess.run(native_cmd, capture_output=True, timeout=RUN_LIMIT)
        dt = time.perf_counter() - t
        if p.returncode != 0 or p.stdout.strip() != WANT:
            sys.exit(f"snippet {lang}: native run: status {p.returncode}, "
                     f"stdout {p.stdout[:200]!r}, stderr {p.stderr[-500:]!r}")
        return dt

    def cold():
        t = time.perf_counter()
        p = subprocess.run([runvm, "--lang", lang, *EXT_TIMEOUTS, src],
                           stdin=subprocess.DEVNULL, capture_output=True,
                           timeout=RUN_LIMIT)
        dt = time.perf_counter() - t
        if p.returncode != 0 or p.stdout.strip() != WANT:
            sys.exit(f"snippet {lang}: runvm --lang cold run: status "
                     f"{p.returncode}, stdout {p.stdout[:200]!r}, stderr "
                     f"{p.stderr[-800:].decode(errors='replace')}")
        return dt

    tmp = tempfile.mkdtemp(prefix="runvm-snippet.")
    sock = os.path.join(tmp, "api.sock")
    err = open(os.path.join(tmp, "api.err"), "w+")
    api = subprocess.Popen([runvm, "--lang", lang, *EXT_TIMEOUTS,
                            "--api-sock", sock], stdin=subprocess.DEVNULL,
                           stdout=err, stderr=err)

    def api_fail(what):
        err.seek(0)
        api.kill()
        sys.exit(f"snippet {lang}: API mode: {what}\n{err.read()[-1500:]}")

    def api_run():
        t = time.perf_counter()
        try:
            got, ex = booted(sock, code)
        except (OSError, RuntimeError, ValueError) as e:
            api_fail(str(e))
        dt = time.perf_counter() - t
        if not ex or ex.get("status") != 0 or "error" in ex \
                or got.strip() != WANT:
            api_fail(f"exit {ex}, stdout {got[:200]!r}")
        return dt

    for _ in range(3000):
        if os.path.exists(sock) or api.poll() is not None:
            break
        time.sleep(0.1)
    if not os.path.exists(sock):
        api_fail("no API socket")
    api_run()  # waits for the boot; warms the guest's caches
    native()   # warms the host's
    res = {"booted": [], "cold": [], "native": []}
    # The cold runs come last: in the nested host a VM's exit leaves QEMU's
    # translations of its code on the pages it freed, and whatever writes
    # them next (a native build, the booted VM's guest) pays for dropping
    # them (tests/kvmhost/README.md, "Speed").
    for i in range(n):
        res["native"].append(native())
        res["booted"].append(api_run())
        print(f"snippet {lang}: run {i + 1}: native {res['native'][-1]:.2f} s,"
              f" booted {res['booted'][-1]:.2f} s", file=sys.stderr)
    for i in range(n):
        res["cold"].append(cold())
        print(f"snippet {lang}: cold run {i + 1}: {res['cold'][-1]:.2f} s",
              file=sys.stderr)
    try:
        http(sock, "PUT", "/shutdown")
    except OSError:
        pass
    try:
        api.wait(timeout=120)
    except subprocess.TimeoutExpired:
        api.kill()
        api.wait()
    for kind in ("booted", "cold"):
        for side, xs in (("runvm", res[kind]), ("peer", res["native"])):
            with open(os.path.join(out, f"snippet_{lang}_{kind}.{side}.s"),
                      "w") as f:
                f.write("".join("%.4f\n" % x for x in xs))
    subprocess.run(["rm", "-rf", tmp])


if __name__ == "__main__":
    main()
