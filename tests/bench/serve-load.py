#!/usr/bin/env python3
"""A bounded load for tests/bench/serve.sh: N hello-world submissions at
concurrency C, each checked, each timed request to result.

usage: serve-load.py serve URL LANG FILE N C OUT   (runvm serve: POST /start
                                                   over TCP, the answer the
                                                   event stream)
       serve-load.py oneshot RUNVM LANG FILE N C OUT  (`runvm --lang LANG
                                                   FILE`, a process each)

Writes OUT.s (seconds per request, one a line, in completion order) and
prints "requests N failures F seconds S throughput R/s". A request is a
failure unless its stdout is the file's expected output (hello, world).
"""
import collections
import concurrent.futures as cf
import http.client
import json
import subprocess
import sys
import time
import urllib.parse

WANT = "hello, world\n"


def serve_one(url, lang, code):
    u = urllib.parse.urlparse(url)
    t0 = time.monotonic()
    c = http.client.HTTPConnection(u.hostname, u.port, timeout=600)
    try:
        c.request("POST", "/start", json.dumps({"lang": lang, "code": code}),
                  {"Content-Type": "application/json"})
        r = c.getresponse()
        body = r.read().decode("utf-8", "replace")
        ok = r.status == 200
    except OSError as e:
        return time.monotonic() - t0, False, repr(e)
    finally:
        c.close()
    out, status = "", None
    for line in body.splitlines():
        try:
            e = json.loads(line)
        except ValueError:
            ok = False
            continue
        if e.get("type") == "output" and e.get("stream") == "stdout" and e.get("phase") == "run":
            out += e.get("data", "")
        if e.get("type") == "exit":
            status = e.get("status")
    ok = ok and out == WANT and status == 0
    return time.monotonic() - t0, ok, body[-300:]


def oneshot_one(runvm, lang, path):
    t0 = time.monotonic()
    p = subprocess.run([runvm, "--lang", lang, path], capture_output=True, timeout=600)
    ok = p.returncode == 0 and p.stdout.decode("utf-8", "replace") == WANT
    return time.monotonic() - t0, ok, p.stderr.decode("utf-8", "replace")[-300:]


def main():
    mode, target, lang, path, n, conc, out = sys.argv[1:8]
    n, conc = int(n), int(conc)
    code = open(path).read()
    if mode == "serve":
        one = lambda _: serve_one(target, lang, code)
    else:
        one = lambda _: oneshot_one(target, lang, path)
    t0 = time.monotonic()
    times, failures, why = [], 0, collections.Counter()
    with cf.ThreadPoolExecutor(conc) as ex:
        for dt, ok, detail in ex.map(one, range(n)):
            times.append(dt)
            if not ok:
                failures += 1
                why[detail.strip().splitlines()[-1][:200] if detail.strip() else "(nothing)"] += 1
    total = time.monotonic() - t0
    with open(out + ".s", "w") as f:
        f.write("".join("%.4f\n" % t for t in times))
    print("requests %d failures %d seconds %.2f throughput %.3f" % (n, failures, total, n / total))
    for detail, count in why.most_common():
        print("failures: %d x %s" % (count, detail), file=sys.stderr)


if __name__ == "__main__":
    main()
