#!/usr/bin/env python3
"""Extracts the uncompressed vmlinux from a bzImage (xz or gzip payload)
when it carries a PVH entry note, so that QEMU can start it directly:
under TCG, decompressing the kernel in the guest costs seconds of every
kvmhost boot. Exits 1, writing nothing, when it cannot.

usage: pvh-vmlinux.py BZIMAGE OUT"""
import gzip
import io
import lzma
import struct
import sys

XEN_ELFNOTE_PHYS32_ENTRY = 18


def payload(data):
    for magic, open_ in ((b"\xfd7zXZ\x00", "xz"), (b"\x1f\x8b\x08", "gz")):
        at = data.find(magic)
        if at < 0:
            continue
        try:
            if open_ == "xz":
                return lzma.LZMADecompressor().decompress(data[at:])
            return gzip.GzipFile(fileobj=io.BytesIO(data[at:])).read()
        except (lzma.LZMAError, OSError, EOFError):
            continue
    return None


def has_pvh_note(elf):
    if elf[:4] != b"\x7fELF" or elf[4] != 2:  # 64-bit
        return False
    phoff, = struct.unpack_from("<Q", elf, 0x20)
    phentsize, phnum = struct.unpack_from("<HH", elf, 0x36)
    for i in range(phnum):
        p_type, _, p_offset, _, _, p_filesz = struct.unpack_from(
            "<IIQQQQ", elf, phoff + i * phentsize)
        if p_type != 4:  # PT_NOTE
            continue
        off, end = p_offset, p_offset + p_filesz
        while off + 12 <= end:
            namesz, descsz, ntype = struct.unpack_from("<III", elf, off)
            name = elf[off + 12:off + 12 + namesz].rstrip(b"\0")
            if name == b"Xen" and ntype == XEN_ELFNOTE_PHYS32_ENTRY:
                return True
            off += 12 + (namesz + 3) // 4 * 4 + (descsz + 3) // 4 * 4
    return False


def main():
    src, out = sys.argv[1], sys.argv[2]
    with open(src, "rb") as f:
        elf = payload(f.read())
    if not elf or not has_pvh_note(elf):
        sys.exit(1)
    with open(out, "wb") as f:
        f.write(elf)


main()
