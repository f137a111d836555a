#!/usr/bin/env python3
"""Writes the hand-made seed inputs of the fuzz targets that read a program
of operations, an archive or a snapshot (tests/fuzz/corpus/NAME/seed-*):
each seed is a valid session (a driver that sets the device up and moves
data, a request the API takes, a RUN the agent carries out, a tar layer, a
snapshot's state file), so the fuzzer
starts from the paths that matter and mutates from there. Deterministic:
running it again rewrites the same bytes.

    tests/fuzz/gen-seeds.py [CORPUS_DIR]    (default tests/fuzz/corpus)

The formats are those the targets' header comments describe."""

import bz2
import gzip
import hashlib
import io
import lzma
import os
import struct
import sys
import tarfile
import zlib

OUT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "corpus")


def write(target, name, data):
    d = os.path.join(OUT, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "seed-" + name), "wb") as f:
        f.write(data)


def u8(v):
    return struct.pack("<B", v & 0xff)


def u16(v):
    return struct.pack("<H", v & 0xffff)


def u32(v):
    return struct.pack("<I", v & 0xffffffff)


def u64(v):
    return struct.pack("<Q", v & 0xffffffffffffffff)


# ---- virtio driver programs (tests/fuzz/virtio_driver.h) -------------------

(WRITE_REG, READ, NEGOTIATE, QUEUE_SETUP, DRIVER_OK, CHAIN, DESC, PUBLISH,
 NOTIFY, POKE, AVAIL_CTL, CONFIG, INT_ACK, RESET) = range(14)
F_NEXT, F_WRITE, F_INDIRECT = 1, 2, 4


def negotiate(mask=(1 << 64) - 1):
    return u8(NEGOTIATE) + u64(mask)


def setup(q, log2=4):
    return u8(QUEUE_SETUP) + u8(q) + u8(log2)


def chain(q, bufs, indirect=False):
    """bufs: list of bytes (device-readable) or int (writable length)."""
    shape = (len(bufs) - 1) | (4 if indirect else 0)
    body = b""
    for i, b in enumerate(bufs):
        if isinstance(b, int):
            shape |= 8 << i
            body += u16(b)
        else:
            body += u16(len(b)) + b
    return u8(CHAIN) + u8(q) + u8(shape) + body


def notify(q):
    return u8(NOTIFY) + u8(q)


def backend(sub, kind=14):
    return u8(kind | (sub << 4))


def read(offset, lensel=2):
    return u8(READ) + u16(offset) + u8(lensel)


def desc(q, idx, addr, length, flags, nxt):
    return (u8(DESC) + u8(q) + u16(idx) + u16(addr) + u16(length) + u8(flags)
            + u16(nxt))


def publish(q, head):
    return u8(PUBLISH) + u8(q) + u16(head)


def console_seeds():
    t = "fuzz_virtio_console"
    WRITE, READH, PUMP, END_IN, END_OUT, CONNECT = range(6)
    start = negotiate() + setup(0) + setup(1) + u8(DRIVER_OK)
    # Console on a socketpair: output, then input into posted buffers.
    write(t, "console-echo",
          u8(0) + start + chain(1, [b"hello, host\n"]) + notify(1)
          + chain(0, [64]) + chain(0, [16, 16]) + notify(0)
          + backend(WRITE) + u8(11) + b"hello guest" + backend(PUMP)
          + backend(READH) + u16(100) + u8(INT_ACK) + read(0x70)
          + read(0x60) + read(0x100, 0))
    # Pipes, output bigger than the pipe: the chain waits for the host.
    big = bytes(range(256)) * 12
    write(t, "pipes-backpressure",
          u8(2) + start + chain(1, [big]) + chain(1, [big[:1000], big[:2000]])
          + notify(1) + backend(PUMP) + backend(READH) + u16(4096)
          + backend(PUMP) + backend(READH) + u16(0xffff) + backend(PUMP)
          + backend(END_OUT) + chain(1, [b"after"]) + notify(1)
          + backend(END_IN) + chain(0, [32]) + notify(0) + backend(PUMP))
    # No back-end until CONNECT: output is held, then delivered.
    write(t, "connect-later",
          u8(4) + start + chain(1, [b"held until connected"]) + notify(1)
          + chain(0, [64]) + notify(0) + backend(CONNECT)
          + backend(WRITE) + u8(3) + b"abc" + backend(PUMP)
          + backend(READH) + u16(64))
    # Indirect chains and event index.
    write(t, "indirect-event-idx",
          u8(0) + start + u8(AVAIL_CTL) + u8(1) + u16(0) + u16(2)
          + chain(1, [b"in", b"direct"], indirect=True) + notify(1)
          + chain(0, [8, 8, 8], indirect=True) + notify(0)
          + backend(WRITE) + u8(20) + b"x" * 20 + backend(PUMP)
          + u8(RESET) + start + chain(1, [b"again"]) + notify(1))
    # Hostile: a descriptor that chains to itself, then a reset and more.
    write(t, "desc-loop",
          u8(0) + start + desc(1, 0, 0x8000, 16, F_NEXT, 0) + publish(1, 0)
          + notify(1) + read(0x70) + u8(RESET) + start
          + desc(0, 0, 0xfff0, 64, F_WRITE, 0) + publish(0, 0) + notify(0))
    # MULTIPORT: the control handshake of Linux's driver, then data.
    def ctrl(event, value, port=0):
        return struct.pack("<IHH", port, event, value)
    mp = (negotiate() + setup(0) + setup(1) + setup(2) + setup(3)
          + u8(DRIVER_OK))
    write(t, "multiport-handshake",
          u8(1) + mp + chain(2, [64]) + chain(2, [64]) + chain(2, [64])
          + notify(2) + chain(3, [ctrl(0, 1)]) + notify(3)
          + chain(3, [ctrl(3, 1)]) + notify(3) + chain(0, [64]) + notify(0)
          + backend(WRITE) + u8(5) + b"early" + backend(PUMP)
          + chain(3, [ctrl(6, 1)]) + notify(3) + backend(PUMP)
          + chain(1, [b"port data"]) + notify(1) + backend(READH) + u16(64)
          + chain(3, [ctrl(6, 0), ctrl(5, 0)]) + notify(3))


def net_seeds():
    t = "fuzz_virtio_net"
    SEND, RECV, PUMP, FLIP = range(4)
    start = negotiate() + setup(0) + setup(1) + u8(DRIVER_OK)
    # VERSION_1 and the ring features, no offloads.
    plain = (negotiate((1 << 32) | (1 << 28) | (1 << 29)) + setup(0) + setup(1)
             + u8(DRIVER_OK))
    hdr = bytes(12)
    frame = bytes(range(60))

    def hdr_of(flags=0, gso=0, gso_size=0, csum_start=0, csum_off=0):
        return struct.pack("<BBHHHHH", flags, gso, 14 + 20 + 20, gso_size,
                           csum_start, csum_off, 0)

    def send(data):
        return backend(SEND) + u16(len(data)) + data

    # No offloads: a frame each way.
    write(t, "plain",
          u8(0) + plain + chain(1, [hdr, frame]) + notify(1) + backend(RECV)
          + chain(0, [1526]) + chain(0, [12, 2048]) + notify(0)
          + send(hdr + frame) + send(hdr_of(2) + frame) + backend(PUMP)
          + u8(INT_ACK) + read(0x100, 0) + read(0x104, 1))
    # Every offload: checksum and TSO headers both ways.
    write(t, "offloads",
          u8(0) + start + chain(1, [hdr_of(1, 0, 0, 34, 16) + frame])
          + chain(1, [hdr_of(1, 1, 1448, 34, 16), frame, frame])
          + chain(1, [hdr_of(1, 4, 1448, 34, 16) + frame]) + notify(1)
          + backend(RECV) + chain(0, [4000]) + chain(0, [4000]) + chain(0, [4000]) + notify(0)
          + send(hdr_of(2) + frame) + send(hdr_of(1, 1, 1448) + frame)
          + send(hdr_of(0, 3) + frame) + backend(PUMP) + backend(RECV))
    # TUNSETOFFLOAD refused: DRIVER_OK leaves the device needing a reset.
    write(t, "offload-refused",
          u8(1) + start + read(0x70) + u8(RESET) + backend(FLIP) + start
          + chain(1, [hdr, frame]) + notify(1) + backend(RECV))
    # A full tap: frames wait for EPOLLOUT; an indirect receive chain.
    many = b"".join(chain(1, [hdr + bytes(3000)]) for _ in range(6))
    write(t, "tap-full",
          u8(0) + plain + many + notify(1) + backend(PUMP) + backend(RECV)
          + backend(PUMP) + chain(0, [12, 100, 2000], indirect=True)
          + notify(0) + send(hdr + frame) + backend(PUMP))
    # Hostile: a receive buffer too small, a writable transmit buffer.
    write(t, "bad-buffers",
          u8(0) + plain + chain(0, [8]) + notify(0) + read(0x70) + u8(RESET)
          + plain + chain(1, [hdr, 64]) + notify(1) + read(0x70))


# ---- device restore (tests/fuzz/fuzz_device_restore.c) ---------------------

def restore_seeds():
    t = "fuzz_device_restore"
    UART, I8042, CONSOLE, PORT, NET = range(5)
    PUMP = u8(14)

    def host_write(data):
        return u8(15) + u8(len(data)) + data

    def host_read(k=4):
        return u8(15) + u8(0x80 | k)

    def trip(kind, program, pokes=b"", edits=(), cut=None):
        """A first device driven by program, saved, edited, restored."""
        mode = 1 | (2 if cut is not None else 0)
        out = u8(kind) + u8(mode) + u16(len(program)) + program
        out += u8(len(edits))
        for at, x in edits:
            out += u16(at) + u8(x)
        if cut is not None:
            out += u16(cut)
        return out + pokes

    def raw(kind, state, pokes=b""):
        return u8(kind) + u8(0) + u16(len(state)) + state + pokes

    # The UART mid-session: divisor latch, FIFOs, both interrupts, input.
    def uw(reg, v):
        return u8(0x08 | reg) + u8(v)

    def ur(reg):
        return u8(reg)

    uart = (uw(3, 0x80) + uw(0, 0x0c) + uw(1, 0) + uw(3, 0x03) + uw(2, 1)
            + uw(4, 0x0b) + uw(7, 0x5a) + uw(1, 3) + u8(0x10) + u8(20)
            + b"typed at the console" + ur(0) + ur(0) + ur(2))
    probe = b"".join(ur(r) for r in range(8)) + ur(0) * 20 + uw(0, 0x41)
    write(t, "uart", trip(UART, uart, probe))
    write(t, "uart-edited", trip(UART, uart, probe, edits=[(14, 1)]))
    write(t, "uart-cut", trip(UART, uart, probe, cut=20))
    uart_state = (u32(1) + bytes([3, 3, 0x0b, 0x61, 0xb0, 0x5a, 1, 0x0c, 0,
                                  1, 1, 3]) + b"abc")
    write(t, "uart-raw", raw(UART, uart_state, probe))
    write(t, "i8042", trip(I8042, b"", u8(4) + u8(0xfe)))
    write(t, "i8042-raw", raw(I8042, u32(1), u8(4) + u8(0xfe)))

    # Virtio devices: the driver's programs of the other device targets.
    start = negotiate() + setup(0) + setup(1) + u8(DRIVER_OK)
    console = (start + chain(1, [b"hello, host\n"]) + notify(1)
               + chain(0, [64]) + chain(0, [16, 16]) + notify(0)
               + host_write(b"hi") + PUMP + u8(AVAIL_CTL) + u8(0) + u16(0)
               + u16(3))
    after = (host_write(b"after the restore") + PUMP + host_read()
             + chain(1, [b"still here"]) + notify(1) + PUMP + host_read()
             + u8(INT_ACK) + read(0x70) + read(0x60))
    write(t, "console", trip(CONSOLE, console, after))
    write(t, "console-edited", trip(CONSOLE, console, after,
                                    edits=[(10, 0x04), (70, 0x10)]))
    write(t, "console-cut", trip(CONSOLE, console, after, cut=60))
    # Before DRIVER_OK: the restored device is activated by the driver.
    write(t, "console-not-live",
          trip(CONSOLE, negotiate() + setup(0) + setup(1)
               + chain(1, [b"queued before DRIVER_OK"]),
               u8(DRIVER_OK) + notify(1) + PUMP + host_read()))
    # Output bigger than the socket takes: the held chain goes on.
    big = bytes(range(250)) * 16  # under the driver's 4096-byte buffers
    write(t, "console-held-chain",
          trip(CONSOLE, start + chain(1, [big, big]) + chain(1, [big])
               + notify(1) + chain(0, [64]) + notify(0),
               host_read(0x7f) + PUMP + host_read(0x7f) + PUMP
               + host_read(0x7f)))

    def ctrl(event, value, port=0):
        return struct.pack("<IHH", port, event, value)

    mp = (negotiate() + setup(0) + setup(1) + setup(2) + setup(3)
          + u8(DRIVER_OK))
    # The agent port's handshake with PORT_OPEN still owed, opened.
    port = (mp + chain(2, [64]) + chain(2, [64]) + notify(2)
            + chain(3, [ctrl(0, 1)]) + notify(3) + chain(3, [ctrl(3, 1)])
            + notify(3) + chain(3, [ctrl(6, 1)]) + notify(3)
            + chain(0, [64]) + chain(0, [64]) + notify(0)
            + host_write(b"RUN") + PUMP + chain(1, [big, big]) + notify(1))
    port_after = (chain(2, [64]) + notify(2) + host_write(b"more") + PUMP
                  + host_read(0x7f) + PUMP + chain(3, [ctrl(6, 0)])
                  + notify(3))
    write(t, "port", trip(PORT, port, port_after))
    write(t, "port-edited", trip(PORT, port, port_after,
                                 edits=[(200, 0x01), (205, 0x03)]))

    # The console's state by hand: live, two queues of 16 where the
    # driver's programs put them, fresh as the zeroed RAM they are in.
    offer = (1 << 28) | (1 << 29) | (1 << 32)
    transport = (u32(1) + u32(3) + u16(2) + u32(0x0f) + u64(offer)
                 + u64(offer) + u32(1) + u32(1) + u32(1) + u32(0) + u32(1)
                 + u32(12) + bytes(12))
    for q in range(2):
        transport += (u8(1) + u16(16) + u64(q * 0x2000)
                      + u64(q * 0x2000 + 0x1000) + u64(q * 0x2000 + 0x1400)
                      + u8(0) + u16(0) + u16(0) + u16(0) + u8(0))
    model = u32(1) + u8(0) + u8(0) + u32(0) + u8(0) + u64(0)
    write(t, "console-raw",
          raw(CONSOLE, transport + u32(len(model)) + model,
              chain(0, [64]) + notify(0) + host_write(b"raw") + PUMP))

    NET_SEND = 15
    hdr = bytes(12)
    plain = (negotiate((1 << 32) | (1 << 28) | (1 << 29)) + setup(0) + setup(1)
             + u8(DRIVER_OK))
    write(t, "net",
          trip(NET, plain + chain(1, [hdr, bytes(60)]) + notify(1)
               + chain(0, [1526]) + chain(0, [1526]) + notify(0),
               u8(NET_SEND) + u8(72) + hdr + bytes(60) + PUMP
               + host_read() + chain(1, [hdr + bytes(60)]) + notify(1)))
    write(t, "net-offloads",
          trip(NET, start + chain(0, [4000]) + notify(0),
               u8(NET_SEND) + u8(72) + bytes([1]) + bytes(71) + PUMP))


# ---- API requests (tests/fuzz/fuzz_api_request.c) --------------------------

def http(body, ctype="application/json", extra=b""):
    head = (b"POST /start HTTP/1.1\r\nHost: localhost\r\n"
            + (b"Content-Type: " + ctype.encode() + b"\r\n" if ctype else b"")
            + extra + b"Content-Length: " + str(len(body)).encode()
            + b"\r\n\r\n")
    return u8(0) + head + body


def api_seeds():
    t = "fuzz_api_request"
    full = (b'{"code": "package main\\nfunc main() {}\\n", '
            b'"files": {"util.go": "package main\\n", "data.txt": "x\\u0000y"},'
            b' "stdin": "input\\n", "args": ["./main", "-v", "\\u00e9"], '
            b'"limits": {"timeout_ms": 5000, "build_timeout_ms": 60000, '
            b'"memory_bytes": 268435456, "max_procs": 64, '
            b'"max_output_bytes": 65536}, "lang": "go@1.24"}')
    write(t, "http-text", http(b'print("hi")\n', "text/plain"))
    write(t, "http-json", http(full))
    write(t, "http-json-charset",
          http(b'{"code": "x"}', "application/json; charset=utf-8"))
    write(t, "http-reuse",
          http(b'{"reuse": true, "args": ["./main"], "stdin": ""}'))
    write(t, "http-no-type", http(b"int main(void) { return 0; }\n", ""))
    write(t, "http-urlencoded",
          http(b"fn main() {}\n", "application/x-www-form-urlencoded"))
    write(t, "json-files-only",
          u8(1) + u8(0) + b'{"files": {"main.c": "int main;", "a.h": ""}}')
    write(t, "json-bad-name", u8(1) + u8(0) + b'{"files": {"../x": "y"}}')
    write(t, "json-limits-bad",
          u8(1) + u8(0) + b'{"code": "x", "limits": {"timeout_ms": 0}}')
    write(t, "json-many-args",
          u8(1) + u8(0) + b'{"code": "x", "args": ['
          + b",".join(b'"a%d"' % i for i in range(64)) + b"]}")
    write(t, "json-duplicate", u8(1) + u8(0) + b'{"code": "x", "code": "y"}')
    write(t, "plain", u8(1) + u8(1) + b"echo hello\n")
    write(t, "html-refused", u8(1) + u8(5) + b"<p>hi</p>")


# ---- agent client (tests/fuzz/fuzz_agent_client.c) -------------------------

def field(b):
    return u8(len(b)) + b


def client_seeds():
    t = "fuzz_agent_client"
    RAW, FRAME, TYPED, RUN, STDIN, ANNOUNCE, SHUTDOWN, DRAIN, EOF, PUMP = \
        range(10)
    ID0, IDRUN, IDNEXT, IDANN = range(4)

    def hello(idsel=ID0, ver=b"0.2.0", lang=b"go"):
        return (u8(TYPED) + u8(0) + u8(idsel) + field(ver) + field(lang)
                + field(b"go1.19.8") + field(b"main.go"))

    def output(data, stream=1, phase=1, idsel=IDRUN):
        return (u8(TYPED) + u8(1) + u8(idsel) + u8(phase) + u8(stream)
                + field(data))

    def exit_(code=0, final=True, phase=1, idsel=IDRUN):
        bits = phase | 2 | ((8 if final else 0) << 4)
        return (u8(TYPED) + u8(2) + u8(idsel) + u8(bits) + u8(code) + u8(0)
                + u32(12))

    def error(code, msg, idsel=IDRUN):
        return u8(TYPED) + u8(3) + u8(idsel) + u8(code) + field(msg)

    write(t, "run-exit",
          hello() + u8(RUN) + u8(0) + output(b"building\n", 2, 0)
          + exit_(0, False, 0) + output(b"hello\n") + exit_(0) + u8(DRAIN))
    write(t, "stdin-error",
          hello() + u8(RUN) + u8(1) + u8(STDIN) + u8(0) + field(b"abc")
          + u8(STDIN) + u8(1) + field(b"") + u8(DRAIN)
          + error(7, b"step failed") + u8(RUN) + u8(6)
          + hello(ID0) + u8(DRAIN))
    write(t, "announce-shutdown",
          u8(RUN) + u8(0) + u8(ANNOUNCE) + hello(IDANN, lang=b"\x01\x7fodd")
          + u8(RUN) + u8(0) + u8(ANNOUNCE) + hello(IDANN)
          + output(b"x", idsel=IDNEXT) + exit_(1, idsel=ID0) + exit_(1)
          + u8(SHUTDOWN) + u8(DRAIN) + u8(EOF) + u8(RUN) + u8(0)
          + u8(STDIN) + u8(0) + field(b"late"))
    # A HELLO the harness frames from raw TLVs (tag 1: AGENT_VERSION), an
    # ERROR with id 0 (a frame the agent dropped), and SLIP garbage.
    tlv = u16(1) + u32(5) + b"0.2.0"
    write(t, "frames",
          u8(FRAME) + u8(1) + u16(0) + u8(ID0) + field(tlv) + u8(RUN) + u8(0)
          + u8(FRAME) + u8(6) + u16(0) + u8(ID0)
          + field(u16(0x50) + u32(4) + u32(1)) + u8(RAW)
          + field(b"\xc0\xdb\xdc\xdb\xdd\xdb\x00RV\x01\x04\xc0\xc0")
          + u8(FRAME) + u8(9) + u16(0xffff) + u8(200) + field(b"")
          + u8(PUMP))


# ---- agent RUN handling (tests/fuzz/fuzz_agent_run.c) ----------------------

def run_op(files=(), flags=0, build=None, run=None, env=None, stdin=b"",
           limits=None, build_limits=None):
    """files: (name, mode, data); argv lists as lists of bytes."""
    b = u8(2) + u8(flags) + u8(len(files))
    for name, mode, data in files:
        b += field(name) + u16(mode) + field(data)
    lists = [build, run, env]
    b += u8(sum(1 << i for i, l in enumerate(lists) if l is not None))
    for l in lists:
        if l is not None:
            b += field(b"".join(w + b"\0" for w in l))
    b += field(stdin)
    b += u8((1 if limits else 0) | (2 if build_limits else 0))
    for lim in (limits, build_limits):
        if lim:
            b += b"".join(u16(v) for v in lim)
    return b


def agent_seeds():
    t = "fuzz_agent_run"
    RAW, FRAME, RUN, STDOUT, STDERR, EXIT, STDIN, TIMEOUT, CLOSE = range(9)
    REUSE, SKIP_BUILD, STDIN_OPEN = 1, 2, 4

    def frame(type_, payload, flags=0, idsel=1):
        return (u8(FRAME) + u8(type_) + u16(flags) + u8(idsel)
                + u16(len(payload)) + payload)

    def tlv(tag, value):
        return u16(tag) + u32(len(value)) + value

    src = b"int main(void) { return 0; }\n"
    write(t, "build-then-run",
          u8(0) + run_op([(b"", 0, src)]) + u8(STDOUT) + field(b"cc: ok\n")
          + u8(EXIT) + u8(0) + u8(STDOUT) + field(b"hello\n") + u8(STDERR)
          + field(b"warning\n") + u8(STDIN) + u8(EXIT) + u8(3))
    write(t, "stdin-open-truncated",
          u8(1) + run_op([(b"main.py", 0o644, b"print(input())\n"),
                          (b"data.txt", 0o600, b"1 2 3\n")],
                         flags=STDIN_OPEN, run=[b"python3", b"main.py"],
                         env=[b"X=1", b"PATH=/bin"], stdin=b"abc",
                         limits=(100, 0, 0, 0, 10))
          + frame(3, tlv(0x20, b"more\n")) + u8(STDIN)
          + frame(3, tlv(0x20, b""), flags=1) + u8(STDIN)
          + u8(STDOUT) + field(b"x" * 200) + u8(EXIT) + u8(0x89))
    write(t, "refusals",
          u8(0) + run_op([(b"../x", 0, b"")]) + run_op([(b"a/b", 0, b"")])
          + run_op([(b"", 0, b"a"), (b"", 0, b"b")])
          + run_op([(b"x", 0, b"")], env=[b"=bad"])
          + run_op([(b"x", 0, b"")], run=[b"sh", b"-c"])
          + run_op([(b"y", 0o755, b"")], run=[b"sh"])
          + frame(3, tlv(0x20, b"no run"), idsel=9) + frame(9, b"")
          + frame(8, b"") + frame(6, b"") + u8(EXIT) + u8(0) + frame(7, b""))
    write(t, "no-lang-conf",
          u8(3) + run_op([(b"", 0, b"x")]) + run_op([(b"m", 0, b"x")])
          + run_op([(b"m", 0, b"x")], build=[], run=[b"./m"]))
    write(t, "reuse-workdir",
          u8(0) + run_op([(b"main.c", 0, src)], build=[b"cc", b"main.c"],
                         run=[b"./a.out"], build_limits=(1, 1, 1, 1, 1))
          + u8(EXIT) + u8(0) + u8(EXIT) + u8(0)
          + run_op([], flags=REUSE | SKIP_BUILD, run=[b"./a.out", b"again"])
          + u8(CLOSE) + u8(TIMEOUT) + u8(EXIT) + u8(0x89))
    write(t, "spawn-fails", u8(4) + run_op([(b"", 0, src)]) + u8(EXIT) + u8(0))
    slip_run = os.path.join(OUT, "fuzz_slip", "run")
    if os.path.exists(slip_run):
        raw = open(slip_run, "rb").read()[1:]
        write(t, "raw-slip", u8(0) + u8(RAW) + field(raw[:255]))


# ---- tar layers (tests/fuzz/fuzz_layer.c) ----------------------------------

def tar(entries, fmt=tarfile.GNU_FORMAT):
    """entries: (name, kind, arg): kind 'd', 'f' (arg: bytes), 'l' (arg:
    target), 'h' (arg: target), 'c' (character device)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as t:
        for name, kind, arg in entries:
            ti = tarfile.TarInfo(name)
            ti.mtime = 0
            ti.uid = ti.gid = 0
            ti.uname = ti.gname = "root"
            ti.mode = 0o755
            data = None
            if kind == "d":
                ti.type = tarfile.DIRTYPE
            elif kind == "f":
                ti.mode = 0o644
                ti.size = len(arg)
                data = io.BytesIO(arg)
            elif kind == "l":
                ti.type = tarfile.SYMTYPE
                ti.linkname = arg
            elif kind == "h":
                ti.type = tarfile.LNKTYPE
                ti.linkname = arg
            elif kind == "c":
                ti.type = tarfile.CHRTYPE
                ti.devmajor, ti.devminor = 1, 3
            t.addfile(ti, data)
    return buf.getvalue()


def layers(mode, *blobs):
    """Byte 0, then each layer but the last with its u16 length."""
    b = u8(mode | (len(blobs) - 1))
    for blob in blobs[:-1]:
        b += u16(len(blob)) + blob
    return b + blobs[-1]


def zstd(data):
    import shutil
    import subprocess
    if not shutil.which("zstd"):
        return None
    return subprocess.run(["zstd", "-q", "-c", "-19"], input=data,
                          stdout=subprocess.PIPE, check=True).stdout


def layer_seeds():
    t = "fuzz_layer"
    FILE, TIGHT = 4, 8
    base = tar([("usr/", "d", None), ("usr/bin/", "d", None),
                ("usr/bin/tool", "f", b"#!/bin/sh\necho tool\n"),
                ("usr/bin/alias", "l", "tool"),
                ("usr/bin/hard", "h", "usr/bin/tool"),
                ("etc/", "d", None), ("etc/conf", "f", b"k=v\n"),
                ("dev/null", "c", None)])
    write(t, "plain", layers(0, base))
    write(t, "gzip", layers(0, gzip.compress(base, mtime=0)))
    write(t, "xz", layers(0, lzma.compress(base)))
    write(t, "bzip2", layers(0, bz2.compress(base)))
    z = zstd(base)
    if z:
        write(t, "zstd", layers(0, z))
    write(t, "file-gzip", layers(FILE, gzip.compress(base, mtime=0)))
    # Refused by magic: lz4 and lzop are named in the error.
    write(t, "file-lz4", layers(FILE, b"\x04\x22\x4d\x18" + bytes(60)))
    write(t, "file-lzop",
          layers(FILE, b"\x89LZO\x00\r\n\x1a\n" + bytes(60)))
    # OCI whiteouts over a lower layer.
    upper = tar([("usr/bin/.wh.tool", "f", b""),
                 ("etc/.wh..wh..opq", "f", b""),
                 ("etc/new", "f", b"new\n")])
    write(t, "whiteouts", layers(0, base, upper))
    # A hostile layer: escapes, links out of the tree, a directory turned
    # into a symlink under files, long (pax) names.
    hostile = tar([("../../escape", "f", b"x"), ("/abs/file", "f", b"y"),
                   ("a/", "d", None), ("a/b", "f", b"z"),
                   ("link", "l", "/"), ("link/etc/passwd", "f", b"root"),
                   ("up", "l", "../../.."), ("up/x", "f", b"x"),
                   ("hl", "h", "nowhere"), ("a", "l", "usr"),
                   ("a/c", "f", b"through a symlink"),
                   ("d" * 120 + "/" + "e" * 120, "f", b"long")],
                  fmt=tarfile.PAX_FORMAT)
    write(t, "hostile", layers(0, base, hostile))
    many = tar([("f%03d" % i, "f", b"x" * 2000) for i in range(80)])
    write(t, "tight-caps", layers(TIGHT, gzip.compress(many, mtime=0)))
    write(t, "three-layers",
          layers(FILE, base, tar([("usr/", "d", None),
                                  ("usr/.wh..wh..opq", "f", b"")]),
                 bz2.compress(base)))


# ---- snapshot state files (tests/fuzz/fuzz_snapshot_file.c) -----------------
# The format is vmm/snapshot_file.h's, written here from its layout table
# alone: a seed that decodes shows the C encoder and this one agree.

SNAP_X86_64, SNAP_AARCH64 = 1, 2
SEC_VM, SEC_VCPU, SEC_DEVICE = 1, 2, 3
RESEAL = 1  # control byte: the harness recomputes the checksum


def snap_state(arch=SNAP_X86_64, version=1, regions=None, ram_size=None,
               nr_vcpus=2, mem_file_size=None, machine=b"uart,agent",
               sections=None, count=None):
    if regions is None:
        regions = [(0, 0x10000, 0), (0x100000, 0x20000, 0x10000)]
    if ram_size is None:
        ram_size = sum(r[1] for r in regions)
    if mem_file_size is None:
        mem_file_size = max(r[2] + r[1] for r in regions)
    if sections is None:
        sections = [(SEC_VM, 0, bytes(range(8))),
                    (SEC_VCPU, 0, b"\x10" * 16), (SEC_VCPU, 1, b"\x11" * 16),
                    (SEC_DEVICE, 0, b""), (SEC_DEVICE, 1, b"uart\0")]
    h = u32(arch) + u64(ram_size) + u32(nr_vcpus) + u32(len(regions))
    for i in range(4):
        gpa, size, off = regions[i] if i < len(regions) else (0, 0, 0)
        h += u64(gpa) + u64(size) + u64(off)
    h += b"K" * 32 + b"I" * 32 + u64(mem_file_size) + b"M" * 32
    h += u64(1765000000123456789) + machine.ljust(256, b"\0")[:256]
    body = b"RUNVMSNP" + u32(version) + u32(len(h)) + h
    body += u32(len(sections) if count is None else count)
    for kind, index, data in sections:
        body += u32(kind) + u32(index) + u32(len(data)) + data
    return body + hashlib.sha256(body).digest()


def snapshot_seeds():
    t = "fuzz_snapshot_file"
    write(t, "valid", u8(0) + snap_state())
    write(t, "valid-resealed", u8(RESEAL) + snap_state())
    write(t, "four-regions-one-vcpu",
          u8(RESEAL) + snap_state(
              regions=[(0, 0x1000, 0), (0x2000, 0x1000, 0x1000),
                       (0x100000, 0x4000, 0x3000),
                       (0xfffff000, 0x1000, 0x8000)],
              nr_vcpus=1, machine=b"",
              sections=[(SEC_VCPU, 0, b"r" * 40)]))
    write(t, "version-2", u8(RESEAL) + snap_state(version=2))
    write(t, "aarch64", u8(RESEAL) + snap_state(arch=SNAP_AARCH64))
    write(t, "regions-overlap",
          u8(RESEAL) + snap_state(regions=[(0, 0x10000, 0),
                                           (0x8000, 0x10000, 0x10000)]))
    write(t, "machine-no-nul", u8(RESEAL) + snap_state(machine=b"a" * 256))
    write(t, "section-past-end",
          u8(RESEAL) + snap_state(count=6))
    write(t, "few-sections-room", u8(RESEAL | 3 << 1) + snap_state())


def main():
    console_seeds()
    net_seeds()
    restore_seeds()
    api_seeds()
    client_seeds()
    agent_seeds()
    layer_seeds()
    snapshot_seeds()


if __name__ == "__main__":
    main()
