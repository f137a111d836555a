#include "arch/x86_64/bzimage.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

/* Offsets in the first sector (boot.rst, "The Real-Mode Kernel Header"). */
#define HDR_OFFSET    0x1f1 /* struct setup_header */
#define HDR_END_BYTE  0x201 /* header length - 0x202 ... jump's 2nd byte */
#define BOOT_FLAG     0xaa55
#define HDR_MAGIC     0x53726448 /* "HdrS" */
#define SECTOR        512
#define DEFAULT_SECTS 4     /* setup_sects 0 means 4 (boot.rst) */
#define HDR_END_206   0x23c /* end of cmdline_size, a 2.06 field */

int bzimage_parse(const uint8_t *head, size_t head_len, uint64_t file_size,
                  uint64_t load_addr, struct bzimage *out, char *err,
                  size_t err_len)
{
    memset(out, 0, sizeof(*out));
    if (head_len > file_size)
        head_len = (size_t)file_size;
    if (head_len < 0x206 + 2) {
        snprintf(err, err_len,
                 "too short to be a bzImage (%llu bytes; need a setup "
                 "header)",
                 (unsigned long long)file_size);
        return -ENOEXEC;
    }
    struct setup_header hdr;
    memset(&hdr, 0, sizeof(hdr));
    /* The header's declared end: 0x202 plus the jump offset at 0x201. */
    size_t hdr_end = 0x202 + head[HDR_END_BYTE];
    size_t copy = hdr_end - HDR_OFFSET;
    if (copy > sizeof(hdr))
        copy = sizeof(hdr);
    if (HDR_OFFSET + copy > head_len)
        copy = head_len - HDR_OFFSET;
    memcpy(&hdr, head + HDR_OFFSET, copy);

    if (hdr.boot_flag != BOOT_FLAG) {
        snprintf(err, err_len, "not a Linux bzImage (no 0xAA55 boot flag)");
        return -ENOEXEC;
    }
    if (hdr.header != HDR_MAGIC) {
        snprintf(err, err_len,
                 "not a Linux bzImage (no \"HdrS\" setup header magic)");
        return -ENOEXEC;
    }
    if (hdr.version < BZIMAGE_MIN_VERSION) {
        snprintf(err, err_len,
                 "Linux boot protocol %u.%02u is too old (runvm needs "
                 "2.06 or newer)",
                 hdr.version >> 8, hdr.version & 0xff);
        return -ENOEXEC;
    }
    if (hdr_end < HDR_END_206 || hdr_end > head_len) {
        /* A 2.06 header reaches past cmdline_size (0x238..0x23b). */
        snprintf(err, err_len,
                 "setup header length %zu is inconsistent "
                 "with protocol %u.%02u",
                 hdr_end - HDR_OFFSET, hdr.version >> 8, hdr.version & 0xff);
        return -EINVAL;
    }
    if (!(hdr.loadflags & LOADED_HIGH)) {
        snprintf(err, err_len,
                 "a zImage (loaded low) is not supported; "
                 "use a bzImage");
        return -ENOEXEC;
    }
    if (hdr.version >= 0x020c && !(hdr.xloadflags & XLF_KERNEL_64)) {
        snprintf(err, err_len,
                 "kernel has no 64-bit entry point (a 32-bit "
                 "kernel?); runvm boots x86-64 kernels");
        return -ENOEXEC;
    }
    uint64_t setup_sects = hdr.setup_sects ? hdr.setup_sects : DEFAULT_SECTS;
    uint64_t setup_size = (setup_sects + 1) * SECTOR;
    if (setup_size >= file_size) {
        snprintf(err, err_len,
                 "truncated: setup code claims %llu bytes, "
                 "the file has %llu",
                 (unsigned long long)setup_size, (unsigned long long)file_size);
        return -EINVAL;
    }
    uint64_t kernel_size = file_size - setup_size;
    /* syssize counts 16-byte paragraphs of protected-mode code. */
    uint64_t declared = (uint64_t)hdr.syssize * 16;
    if (declared == 0 || declared > kernel_size) {
        snprintf(err, err_len,
                 "truncated: header declares %llu bytes of "
                 "kernel, the file has %llu after the setup code",
                 (unsigned long long)declared, (unsigned long long)kernel_size);
        return -EINVAL;
    }
    if (kernel_size > BZIMAGE_MAX_KERNEL) {
        snprintf(err, err_len,
                 "kernel is %llu MiB, larger than the %llu "
                 "MiB runvm accepts",
                 (unsigned long long)(kernel_size >> 20),
                 (unsigned long long)(BZIMAGE_MAX_KERNEL >> 20));
        return -EINVAL;
    }

    /* Where the kernel runs while it boots: a 64-bit kernel decompresses
     * to max(load address, pref_address) and needs init_size bytes there
     * (boot.rst, fields pref_address and init_size, protocol 2.10). Older
     * protocols do not say; assume the compressed image expands 4x. */
    uint64_t run_at = load_addr, need;
    if (hdr.version >= 0x020a) {
        if (hdr.pref_address > run_at)
            run_at = hdr.pref_address;
        need = hdr.init_size;
    } else {
        need = kernel_size * 4;
    }
    if (need < kernel_size)
        need = kernel_size;
    uint64_t mem_end = run_at + need;
    if (load_addr + kernel_size > mem_end)
        mem_end = load_addr + kernel_size;

    out->hdr = hdr;
    out->version = hdr.version;
    out->kernel_offset = setup_size;
    out->kernel_size = kernel_size;
    out->load_addr = load_addr;
    out->entry64 = load_addr + BZIMAGE_ENTRY64_OFFSET;
    out->mem_end = mem_end;
    out->initrd_addr_max = hdr.initrd_addr_max;
    /* cmdline_size excludes the NUL (boot.rst). */
    out->cmdline_max = hdr.cmdline_size;
    return 0;
}
