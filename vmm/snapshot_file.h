/* The on-disk format of a VM snapshot (DESIGN.md §11). A snapshot is a
 * directory of two files:
 *
 *   state   a header and tagged sections of saved vCPU, VM and device
 *           state (core/state.h bytes), a few KiB to a few MiB;
 *   memory  the guest RAM regions back to back, raw, with all-zero pages
 *           left as holes; a restore maps it MAP_PRIVATE.
 *
 * The state file, every integer little-endian (format version 1):
 *
 *   offset   bytes  field
 *   0        8      magic "RUNVMSNP"
 *   8        4      format version
 *   12       4      header length H: the bytes from offset 16 up to the
 *                   section count (484 in version 1, and only that)
 *   16       4      arch (enum snap_arch)
 *   20       8      ram_size
 *   28       4      nr_vcpus
 *   32       4      nr_regions
 *   36       96     SNAP_MAX_REGIONS x {gpa, size, offset: 8 each};
 *                   slots past nr_regions all zero
 *   132      32     kernel_digest
 *   164      32     image_digest
 *   196      8      mem_file_size
 *   204      32     mem_digest
 *   236      8      created_unix_ns
 *   244      256    machine: printable ASCII, NUL-terminated, zero-padded
 *   16+H     4      section count N
 *            N x    kind 4, index 4, length 4, then length bytes
 *   end-32   32     SHA-256 of every byte before it
 *
 * One encoding per snapshot: what snap_decode accepts, snap_encode writes
 * again byte for byte. The files are opened by the caller (once
 * sandboxed runvm opens nothing); these functions use only read, write,
 * pread, lseek, ftruncate and fstat on the descriptors they are given.
 * Every byte of either file is hostile until checked. */
#ifndef RUNVM_SNAPSHOT_FILE_H
#define RUNVM_SNAPSHOT_FILE_H

#include <stddef.h>
#include <stdint.h>

#include "core/state.h"

#define SNAP_FORMAT_VERSION 1
#define SNAP_DIGEST_LEN     32 /* SHA-256 */
#define SNAP_MAX_REGIONS    4
#define SNAP_MAX_SECTIONS   256
#define SNAP_STATE_MAX      (64u << 20) /* refuse bigger state files */
/* Regions' addresses, sizes and file offsets are multiples of this, so a
 * restore can map each one from the memory file. */
#define SNAP_PAGE_SIZE   4096u
#define SNAP_MACHINE_LEN 256

enum snap_arch { SNAP_ARCH_X86_64 = 1, SNAP_ARCH_AARCH64 = 2 };

/* Section kinds; the producer decides what is inside (core/state.h
 * bytes). A state file holds at most one section per (kind, index); a
 * VCPU section's index is the vCPU's, below nr_vcpus. */
enum snap_kind { SNAP_SEC_VM = 1, SNAP_SEC_VCPU = 2, SNAP_SEC_DEVICE = 3 };

/* A guest RAM region and where its bytes lie in the memory file. */
struct snap_region {
    uint64_t gpa, size, offset;
};

/* What a snapshot is of. Consistent when: arch is known; nr_vcpus >= 1;
 * 1 <= nr_regions <= SNAP_MAX_REGIONS; each region non-empty,
 * page-aligned (gpa, size, offset), above the previous one in guest
 * addresses and in the file, and inside mem_file_size; the sizes add up to
 * ram_size; machine is printable ASCII with a NUL in it. */
struct snap_header {
    uint32_t arch; /* enum snap_arch */
    uint64_t ram_size;
    uint32_t nr_vcpus;
    uint32_t nr_regions;
    struct snap_region regions[SNAP_MAX_REGIONS];
    uint8_t kernel_digest[SNAP_DIGEST_LEN]; /* of the kernel file booted */
    uint8_t image_digest[SNAP_DIGEST_LEN];  /* of the initramfs */
    uint64_t mem_file_size;                 /* bytes of the memory file */
    uint8_t mem_digest[SNAP_DIGEST_LEN];    /* SHA-256 of the memory file */
    uint64_t created_unix_ns;
    /* NUL-terminated free text describing the devices, e.g. "uart,agent";
     * checked for the restore to compare with its own, not parsed here. */
    char machine[SNAP_MACHINE_LEN];
};

/* One section: kind (enum snap_kind), index (which vCPU or device), and
 * len bytes at data (data may be NULL when len is 0). */
struct snap_section {
    uint32_t kind, index;
    const uint8_t *data;
    uint32_t len;
};

/* Loads OpenSSL's configuration and SHA-256 now: its first digest
 * otherwise opens openssl.cnf, which kills a sandboxed runvm (no open
 * after sandbox_seccomp). Call once before the sandbox, in any process
 * that will take or check a snapshot. 0, or -EIO. */
int snap_digest_init(void) __attribute__((warn_unused_result));

/* Appends the state file of header h and sections s[0..n) to out (the
 * checksum covers only what it appends; normally out is empty). 0;
 * -EINVAL for a header that is not consistent (above) or sections that
 * are not (more than SNAP_MAX_SECTIONS, an unknown kind, a (kind, index)
 * twice, a vCPU index not below nr_vcpus, NULL data with a length);
 * -EFBIG when the file would pass SNAP_STATE_MAX (these append
 * nothing); -ENOMEM, with out->err set as after any failed append. */
int snap_encode(const struct snap_header *h, const struct snap_section *s,
                unsigned int n, struct state_w *out)
    __attribute__((warn_unused_result));

/* Decodes and checks the state file in buf[0..len): magic, version,
 * lengths, checksum, arch, the header's consistency, the sections (count
 * at most max and SNAP_MAX_SECTIONS, each inside the file, as snap_encode
 * requires them) and nothing after them. Fills *h, s[0..*n) with
 * sections whose data points into buf. 0; else *n is 0, err holds one
 * line saying what is wrong ("truncated", "checksum mismatch", ...) and
 * the result is -EPROTO for another format version (err names the file's
 * and this runvm's), -ENOEXEC for a snapshot of another architecture
 * than the host's, -EBADMSG for anything else. Reads nothing outside
 * buf[0..len), whatever it holds. */
int snap_decode(const uint8_t *buf, size_t len, struct snap_header *h,
                struct snap_section *s, unsigned int max, unsigned int *n,
                char *err, size_t err_len) __attribute__((warn_unused_result));

/* Writes nr regions of guest RAM (host addresses hva[i], sizes[i], each a
 * multiple of SNAP_PAGE_SIZE) back to back into fd from offset 0 as the
 * memory file, replacing what the file held: all-zero pages become holes
 * (lseek, and ftruncate for trailing ones), so the file is sparse. Puts
 * the SHA-256 of the file's whole contents, holes read as zeros, in
 * digest. The RAM must not change meanwhile (the vCPUs are stopped). 0,
 * -EINVAL for a size not page-aligned, or -errno of the write. */
int snap_write_memory(int fd, const void *const *hva, const uint64_t *sizes,
                      unsigned int nr, uint8_t digest[SNAP_DIGEST_LEN])
    __attribute__((warn_unused_result));

/* Reads the memory file through fd (pread from offset 0) and checks that
 * it is size bytes long and that their SHA-256 is digest, for `runvm
 * snapshot --verify`. 0, -EBADMSG when the length or the digest differs,
 * or -errno of the read. */
int snap_verify_memory(int fd, uint64_t size,
                       const uint8_t digest[SNAP_DIGEST_LEN])
    __attribute__((warn_unused_result));

/* Writes all of buf[0..n) to fd (the state file). 0 or -errno (-EIO for
 * a write that wrote nothing). */
int snap_write_all(int fd, const void *buf, size_t n)
    __attribute__((warn_unused_result));

/* SHA-256 of p[0..n). 0 or -EIO. */
int snap_digest_bytes(const void *p, size_t n, uint8_t digest[SNAP_DIGEST_LEN])
    __attribute__((warn_unused_result));

/* SHA-256 of the whole file behind fd (pread from offset 0 to its end),
 * for the kernel's and the initramfs's digests. 0 or -errno. */
int snap_digest_fd(int fd, uint8_t digest[SNAP_DIGEST_LEN])
    __attribute__((warn_unused_result));

/* Reads the whole state file behind fd (pread from offset 0 to its end)
 * into a malloc'ed *buf of *len bytes, which the caller frees (non-NULL
 * even when empty). 0, -EFBIG past SNAP_STATE_MAX, -ENOMEM, or -errno of
 * the read. */
int snap_read_file(int fd, uint8_t **buf, size_t *len)
    __attribute__((warn_unused_result));

/* The host's architecture, as a snapshot records it (SNAP_ARCH_X86_64 on
 * x86-64). */
uint32_t snap_host_arch(void);

#endif
