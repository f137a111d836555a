#!/usr/bin/env python3
"""A minimal runvm API client doing what a judging backend does: submit a
program once, run it against several stdin cases on the same VM, collect
stdout/stderr/exit and compare stdout with the expected output.

usage: client.py API_SOCK PROGRAM [STDIN EXPECTED]...
  e.g. client.py /tmp/runvm.sock stdin.go "1 2 3" "6" "40 2" "42"
Exit status: 0 if every case passed, 1 if one failed, 2 on errors.
Only the standard library: HTTP/1.1 over a Unix socket by hand.
"""
import base64
import json
import socket
import sys


def request(sock_path, method, path, body=b"", ctype="application/json"):
    s = socket.socket(socket.AF_UNIX)
    s.connect(sock_path)
    head = (f"{method} {path} HTTP/1.1\r\nHost: runvm\r\n"
            f"Content-Type: {ctype}\r\nContent-Length: {len(body)}\r\n\r\n")
    s.sendall(head.encode() + body)
    data = b""
    while chunk := s.recv(65536):
        data += chunk
    s.close()
    head, _, payload = data.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    return status, json.loads(payload or b"{}")


def events(output_socket):
    """Yields the NDJSON events of one run."""
    s = socket.socket(socket.AF_UNIX)
    s.connect(output_socket)
    buf = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        buf += chunk
        while b"\n" in buf:
            line, buf = buf.split(b"\n", 1)
            yield json.loads(line)
    s.close()


def run(sock_path, body):
    status, reply = request(sock_path, "POST", "/start",
                            json.dumps(body).encode())
    if status != 200:
        raise RuntimeError(f"POST /start: {status} {reply}")
    out = {"stdout": b"", "stderr": b"", "build": b""}
    for ev in events(reply["output_socket"]):
        if ev["type"] == "output":
            data = (base64.b64decode(ev["data_base64"]) if "data_base64" in ev
                    else ev["data"].encode())
            key = "build" if ev["phase"] == "build" else ev["stream"]
            out[key] += data
        elif ev["type"] == "exit":
            out["exit"] = ev
    return out


def main():
    if len(sys.argv) < 3 or len(sys.argv) % 2 == 0:
        print(__doc__, file=sys.stderr)
        return 2
    sock_path, program = sys.argv[1], sys.argv[2]
    cases = list(zip(sys.argv[3::2], sys.argv[4::2]))
    with open(program) as f:
        code = f.read()
    failed = 0
    for i, (stdin, expected) in enumerate(cases or [("", None)]):
        # The first case builds; the others reuse the build in the same VM.
        body = {"stdin": stdin + "\n"} if stdin else {}
        body.update({"code": code} if i == 0 else {"reuse": True})
        r = run(sock_path, body)
        ex = r.get("exit", {})
        if ex.get("phase") == "build" or "error" in ex:
            print(f"case {i + 1}: build failed or error (status "
                  f"{ex.get('status')}):\n{r['build'].decode(errors='replace')}"
                  f"{ex.get('error', '')}")
            return 1
        got = r["stdout"].decode(errors="replace").strip()
        ok = expected is None or got == expected.strip()
        failed += not ok
        print(f"case {i + 1}: {'PASS' if ok else 'FAIL'} exit={ex.get('status')}"
              f" wall_ms={ex.get('wall_ms')} stdout={got!r}"
              + ("" if ok else f" expected={expected!r}"))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
