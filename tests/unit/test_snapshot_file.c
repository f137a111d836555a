/* vmm/snapshot_file.c: a state file round-trips; every damaged, truncated
 * or hostile one is refused with the reason (decoded from a buffer of
 * exactly its length, so ASan sees any read past it); the memory file is
 * sparse, reads back as the RAM written and its digest catches a flipped
 * byte; OpenSSL is ready before a filter that forbids open. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <seccomp.h>

#include "vmm/snapshot_file.h"

/* The layout of version 1 as snapshot_file.h gives it, written out here
 * again so that a change to the encoding fails these tests (and needs a
 * new format version). */
#define OFF_VERSION    8
#define OFF_HEADER_LEN 12
#define OFF_ARCH       16
#define OFF_RAM_SIZE   20
#define OFF_NR_VCPUS   28
#define OFF_NR_REGIONS 32
#define OFF_REGIONS    36 /* 4 x {gpa, size, offset} */
#define OFF_MEM_SIZE   196
#define OFF_MACHINE    244
#define OFF_NR_SECS    500
#define OFF_SECTIONS   504
#define CHECKSUM_LEN   32

#define OFF_REGION(i, field) (OFF_REGIONS + 24 * (i) + 8 * (field))
enum { GPA, SIZE, OFFSET };

static const uint8_t vm_bytes[8] = {1, 2, 3, 4, 5, 6, 7, 8};
static const uint8_t vcpu0_bytes[16] = {0x10, 0x11, 0x12};
static const uint8_t vcpu1_bytes[16] = {0x20, 0x21, 0x22, 0x23};
static const uint8_t dev1_bytes[5] = {'u', 'a', 'r', 't', 0};

/* Two regions (64 KiB at 0, 128 KiB at 1 MiB), two vCPUs, five sections
 * (one empty). */
static void sample(struct snap_header *h, struct snap_section s[5])
{
    memset(h, 0, sizeof(*h));
    h->arch = snap_host_arch();
    h->ram_size = 0x30000;
    h->nr_vcpus = 2;
    h->nr_regions = 2;
    h->regions[0] = (struct snap_region){0, 0x10000, 0};
    h->regions[1] = (struct snap_region){0x100000, 0x20000, 0x10000};
    memset(h->kernel_digest, 0x4b, SNAP_DIGEST_LEN);
    memset(h->image_digest, 0x49, SNAP_DIGEST_LEN);
    h->mem_file_size = 0x30000;
    memset(h->mem_digest, 0x4d, SNAP_DIGEST_LEN);
    h->created_unix_ns = 1765000000123456789ULL;
    strcpy(h->machine, "uart,agent");
    s[0] = (struct snap_section){SNAP_SEC_VM, 0, vm_bytes, sizeof(vm_bytes)};
    s[1] = (struct snap_section){SNAP_SEC_VCPU, 0, vcpu0_bytes,
                                 sizeof(vcpu0_bytes)};
    s[2] = (struct snap_section){SNAP_SEC_VCPU, 1, vcpu1_bytes,
                                 sizeof(vcpu1_bytes)};
    s[3] = (struct snap_section){SNAP_SEC_DEVICE, 0, NULL, 0};
    s[4] = (struct snap_section){SNAP_SEC_DEVICE, 1, dev1_bytes,
                                 sizeof(dev1_bytes)};
}

static void encode_sample(struct state_w *w)
{
    struct snap_header h;
    struct snap_section s[5];
    sample(&h, s);
    state_w_init(w);
    assert_int_equal(snap_encode(&h, s, 5, w), 0);
}

/* Decodes a copy of buf[0..len) in a buffer of exactly len bytes. */
static int decode_exact(const uint8_t *buf, size_t len, unsigned int max,
                        struct snap_header *h, unsigned int *n, char *err,
                        size_t err_len)
{
    struct snap_section s[SNAP_MAX_SECTIONS];
    uint8_t *copy = malloc(len ? len : 1);
    assert_non_null(copy);
    if (len)
        memcpy(copy, buf, len);
    *n = 12345;
    int ret = snap_decode(copy, len, h, s, max, n, err, err_len);
    for (unsigned int i = 0; !ret && i < *n; i++) {
        /* Every section inside the copy. */
        assert_true(s[i].data >= copy);
        assert_true(s[i].len <= len - (size_t)(s[i].data - copy));
    }
    free(copy);
    return ret;
}

static void put32(uint8_t *b, size_t off, uint32_t v)
{
    for (unsigned int i = 0; i < 4; i++)
        b[off + i] = (uint8_t)(v >> (8 * i));
}

static void put64(uint8_t *b, size_t off, uint64_t v)
{
    for (unsigned int i = 0; i < 8; i++)
        b[off + i] = (uint8_t)(v >> (8 * i));
}

static uint32_t get32(const uint8_t *b, size_t off)
{
    return (uint32_t)b[off] | (uint32_t)b[off + 1] << 8 |
           (uint32_t)b[off + 2] << 16 | (uint32_t)b[off + 3] << 24;
}

/* Recomputes the trailing checksum, as a hostile writer would. */
static void reseal(uint8_t *b, size_t len)
{
    unsigned int mdlen;
    assert_true(len >= CHECKSUM_LEN);
    assert_int_equal(EVP_Digest(b, len - CHECKSUM_LEN, b + len - CHECKSUM_LEN,
                                &mdlen, EVP_sha256(), NULL),
                     1);
}

/* Offset of section i's kind in an encoding of sample(). */
static size_t section_off(const uint8_t *b, unsigned int i)
{
    size_t off = OFF_SECTIONS;
    while (i--)
        off += 12 + get32(b, off + 8);
    return off;
}

static uint32_t other_arch(void)
{
    return snap_host_arch() == SNAP_ARCH_X86_64 ? SNAP_ARCH_AARCH64
                                                : SNAP_ARCH_X86_64;
}

/* ---- OpenSSL before the sandbox ------------------------------------------ */

/* Status of a child that digests a memfd under a filter that kills it on
 * open (runvm's sandbox opens nothing), having called snap_digest_init
 * first or not. */
static int digest_under_filter(int init_first)
{
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int fd = memfd_create("kernel", MFD_CLOEXEC);
        if (fd < 0 || write(fd, "abc", 3) != 3)
            _exit(2);
        if (init_first && snap_digest_init())
            _exit(3);
        scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
        if (!ctx ||
            seccomp_rule_add(ctx, SCMP_ACT_KILL_PROCESS, SCMP_SYS(openat), 0) ||
            seccomp_rule_add(ctx, SCMP_ACT_KILL_PROCESS, SCMP_SYS(open), 0) ||
            seccomp_load(ctx))
            _exit(4);
        uint8_t md[SNAP_DIGEST_LEN];
        _exit(snap_digest_fd(fd, md) ? 5 : 0);
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    return status;
}

/* Runs first: the control needs a process whose OpenSSL has not started
 * (the children inherit it). */
static void digest_init_before_sandbox(void **unused)
{
    (void)unused;
    /* Without it the first digest opens openssl.cnf and dies. */
    int status = digest_under_filter(0);
    assert_true(WIFSIGNALED(status));
    assert_int_equal(WTERMSIG(status), SIGSYS);
    status = digest_under_filter(1);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
}

/* ---- the state file ------------------------------------------------------ */

static void round_trip(void **unused)
{
    (void)unused;
    struct snap_header h, d;
    struct snap_section s[5], got[8];
    sample(&h, s);
    /* What the caller leaves past the NUL and in unused slots is not
     * written: the encoding is canonical. */
    struct snap_header dirty = h;
    dirty.machine[200] = 'x';
    dirty.regions[3] = (struct snap_region){1, 2, 3};
    struct state_w w, w2;
    state_w_init(&w);
    state_w_init(&w2);
    assert_int_equal(snap_encode(&dirty, s, 5, &w), 0);
    assert_int_equal(snap_encode(&h, s, 5, &w2), 0);
    assert_int_equal(w.len, w2.len);
    assert_memory_equal(w.buf, w2.buf, w.len);

    assert_memory_equal(w.buf, "RUNVMSNP", 8);
    assert_int_equal(get32(w.buf, OFF_VERSION), SNAP_FORMAT_VERSION);
    assert_int_equal(get32(w.buf, OFF_HEADER_LEN), 484);
    assert_int_equal(get32(w.buf, OFF_NR_SECS), 5);
    assert_int_equal(w.len, OFF_SECTIONS + 5 * 12 + 8 + 16 + 16 + 0 + 5 +
                                CHECKSUM_LEN);

    unsigned int n;
    char err[256] = "unchanged";
    assert_int_equal(
        snap_decode(w.buf, w.len, &d, got, 8, &n, err, sizeof(err)), 0);
    assert_string_equal(err, "");
    assert_int_equal(d.arch, h.arch);
    assert_true(d.ram_size == h.ram_size);
    assert_int_equal(d.nr_vcpus, 2);
    assert_int_equal(d.nr_regions, 2);
    assert_memory_equal(d.regions, h.regions, sizeof(h.regions));
    assert_memory_equal(d.kernel_digest, h.kernel_digest, SNAP_DIGEST_LEN);
    assert_memory_equal(d.image_digest, h.image_digest, SNAP_DIGEST_LEN);
    assert_true(d.mem_file_size == h.mem_file_size);
    assert_memory_equal(d.mem_digest, h.mem_digest, SNAP_DIGEST_LEN);
    assert_true(d.created_unix_ns == h.created_unix_ns);
    assert_memory_equal(d.machine, h.machine, sizeof(h.machine));
    assert_int_equal(n, 5);
    for (unsigned int i = 0; i < n; i++) {
        assert_int_equal(got[i].kind, s[i].kind);
        assert_int_equal(got[i].index, s[i].index);
        assert_int_equal(got[i].len, s[i].len);
        /* In place, inside the buffer. */
        assert_true(got[i].data >= w.buf &&
                    got[i].data + got[i].len <= w.buf + w.len);
        if (s[i].len)
            assert_memory_equal(got[i].data, s[i].data, s[i].len);
    }

    /* And what was decoded encodes to the same bytes. */
    state_w_free(&w2);
    state_w_init(&w2);
    assert_int_equal(snap_encode(&d, got, n, &w2), 0);
    assert_int_equal(w2.len, w.len);
    assert_memory_equal(w2.buf, w.buf, w.len);

    /* A caller's array too small for the sections: refused, not
     * overrun. */
    assert_int_equal(decode_exact(w.buf, w.len, 4, &d, &n, err, sizeof(err)),
                     -EBADMSG);
    assert_non_null(strstr(err, "5 sections (at most 4)"));
    assert_int_equal(n, 0);
    state_w_free(&w);
    state_w_free(&w2);
}

static void every_byte_flip_refused(void **unused)
{
    (void)unused;
    struct state_w w;
    encode_sample(&w);
    uint8_t *b = malloc(w.len);
    assert_non_null(b);
    for (size_t i = 0; i < w.len; i++) {
        for (unsigned int f = 0; f < 2; f++) {
            memcpy(b, w.buf, w.len);
            b[i] ^= f ? 0xff : 0x01;
            struct snap_header h;
            unsigned int n;
            char err[256];
            int ret = decode_exact(b, w.len, SNAP_MAX_SECTIONS, &h, &n, err,
                                   sizeof(err));
            assert_int_equal(n, 0);
            if (i < OFF_VERSION) {
                assert_int_equal(ret, -EBADMSG);
                assert_non_null(strstr(err, "magic"));
            } else if (i < OFF_HEADER_LEN) {
                assert_int_equal(ret, -EPROTO);
            } else if (i < OFF_ARCH) {
                assert_int_equal(ret, -EBADMSG);
                assert_non_null(strstr(err, "header length"));
            } else {
                assert_int_equal(ret, -EBADMSG);
                assert_string_equal(err,
                                    "checksum mismatch (the file is damaged)");
            }
        }
    }
    free(b);
    state_w_free(&w);
}

static void truncation_refused(void **unused)
{
    (void)unused;
    struct state_w w;
    encode_sample(&w);
    for (size_t len = 0; len < w.len; len++) {
        struct snap_header h;
        unsigned int n;
        char err[256];
        assert_int_equal(decode_exact(w.buf, len, SNAP_MAX_SECTIONS, &h, &n,
                                      err, sizeof(err)),
                         -EBADMSG);
        assert_int_equal(n, 0);
        assert_true(strstr(err, "truncated") ||
                    strstr(err, "checksum mismatch"));
    }
    /* A file of nothing at all, from no buffer. */
    struct snap_header h;
    struct snap_section s[1];
    unsigned int n;
    char err[256];
    assert_int_equal(snap_decode(NULL, 0, &h, s, 1, &n, err, sizeof(err)),
                     -EBADMSG);
    assert_string_equal(err, "truncated (0 bytes)");
    state_w_free(&w);
}

/* A file runvm would not write, resealed. */
struct hostile {
    const char *name;
    void (*patch)(uint8_t *b, size_t *len);
    int ret;
    const char *says; /* in the message */
};

static void p_gpa_overlap(uint8_t *b, size_t *len)
{
    (void)len;
    put64(b, OFF_REGION(1, GPA), 0x8000); /* inside region 0 */
}
static void p_gpa_descending(uint8_t *b, size_t *len)
{
    (void)len;
    put64(b, OFF_REGION(0, GPA), 0x200000); /* region 1 is at 1 MiB */
}
static void p_file_overlap(uint8_t *b, size_t *len)
{
    (void)len;
    put64(b, OFF_REGION(1, OFFSET), 0x8000);
}
static void p_gpa_unaligned(uint8_t *b, size_t *len)
{
    (void)len;
    put64(b, OFF_REGION(1, GPA), 0x100800);
}
static void p_size_unaligned(uint8_t *b, size_t *len)
{
    (void)len;
    put64(b, OFF_REGION(1, SIZE), 0x1ffff);
    put64(b, OFF_RAM_SIZE, 0x2ffff);
}
static void p_offset_unaligned(uint8_t *b, size_t *len)
{
    (void)len;
    put64(b, OFF_REGION(1, OFFSET), 0x10010);
}
static void p_past_file(uint8_t *b, size_t *len)
{
    (void)len;
    put64(b, OFF_MEM_SIZE, 0x2f000);
}
static void p_offset_past_file(uint8_t *b, size_t *len)
{
    (void)len;
    put64(b, OFF_REGION(1, OFFSET), 0x20000); /* ends at 0x40000 */
}
static void p_sum(uint8_t *b, size_t *len)
{
    (void)len;
    put64(b, OFF_RAM_SIZE, 0x31000);
}
static void p_empty_region(uint8_t *b, size_t *len)
{
    (void)len;
    put64(b, OFF_REGION(1, SIZE), 0);
    put64(b, OFF_RAM_SIZE, 0x10000);
}
static void p_wraps(uint8_t *b, size_t *len)
{
    (void)len;
    put64(b, OFF_REGION(1, GPA), 0xfffffffffffff000ULL);
}
static void p_no_regions(uint8_t *b, size_t *len)
{
    (void)len;
    put32(b, OFF_NR_REGIONS, 0);
}
static void p_five_regions(uint8_t *b, size_t *len)
{
    (void)len;
    put32(b, OFF_NR_REGIONS, 5);
}
static void p_unused_slot(uint8_t *b, size_t *len)
{
    (void)len;
    put64(b, OFF_REGION(3, GPA), 0x1000);
}
static void p_no_vcpus(uint8_t *b, size_t *len)
{
    (void)len;
    put32(b, OFF_NR_VCPUS, 0);
}
static void p_section_huge(uint8_t *b, size_t *len)
{
    (void)len;
    put32(b, section_off(b, 0) + 8, 0xffffffff);
}
static void p_section_one_past(uint8_t *b, size_t *len)
{
    (void)len;
    size_t off = section_off(b, 4) + 8;
    put32(b, off, get32(b, off) + 1);
}
static void p_too_many_sections(uint8_t *b, size_t *len)
{
    (void)len;
    put32(b, OFF_NR_SECS, SNAP_MAX_SECTIONS + 1);
}
static void p_count_high(uint8_t *b, size_t *len)
{
    (void)len;
    put32(b, OFF_NR_SECS, 6);
}
static void p_count_low(uint8_t *b, size_t *len)
{
    (void)len;
    put32(b, OFF_NR_SECS, 4);
}
static void p_trailing_byte(uint8_t *b, size_t *len)
{
    /* One byte between the last section and the checksum. */
    b[*len] = 0;
    *len += 1;
}
static void p_machine_no_nul(uint8_t *b, size_t *len)
{
    (void)len;
    memset(b + OFF_MACHINE, 'a', SNAP_MACHINE_LEN);
}
static void p_machine_after_nul(uint8_t *b, size_t *len)
{
    (void)len;
    b[OFF_MACHINE + 200] = 'x';
}
static void p_machine_escape(uint8_t *b, size_t *len)
{
    (void)len;
    b[OFF_MACHINE] = 0x1b;
}
static void p_magic(uint8_t *b, size_t *len)
{
    (void)len;
    memcpy(b, "RUNVMSNQ", 8);
}
static void p_version(uint8_t *b, size_t *len)
{
    (void)len;
    put32(b, OFF_VERSION, 2);
}
static void p_other_arch(uint8_t *b, size_t *len)
{
    (void)len;
    put32(b, OFF_ARCH, other_arch());
}
static void p_unknown_arch(uint8_t *b, size_t *len)
{
    (void)len;
    put32(b, OFF_ARCH, 7);
}
static void p_header_len(uint8_t *b, size_t *len)
{
    (void)len;
    put32(b, OFF_HEADER_LEN, 485);
}
static void p_unknown_kind(uint8_t *b, size_t *len)
{
    (void)len;
    put32(b, section_off(b, 0), 9);
}
static void p_duplicate(uint8_t *b, size_t *len)
{
    (void)len;
    put32(b, section_off(b, 2) + 4, 0); /* vCPU 1 becomes a second 0 */
}
static void p_vcpu_index(uint8_t *b, size_t *len)
{
    (void)len;
    put32(b, section_off(b, 2) + 4, 2); /* of 2 vCPUs */
}

static const struct hostile hostile[] = {
    {"regions overlap", p_gpa_overlap, -EBADMSG,
     "RAM region 1 is not above region 0 in guest addresses"},
    {"regions out of order", p_gpa_descending, -EBADMSG,
     "RAM region 1 is not above region 0"},
    {"regions overlap in the file", p_file_overlap, -EBADMSG,
     "RAM region 1 is not after region 0 in the memory file"},
    {"gpa unaligned", p_gpa_unaligned, -EBADMSG, "not page-aligned"},
    {"size unaligned", p_size_unaligned, -EBADMSG, "not page-aligned"},
    {"offset unaligned", p_offset_unaligned, -EBADMSG, "not page-aligned"},
    {"region past the file", p_past_file, -EBADMSG,
     "RAM region 1 ends at byte 196608, past the memory file's 192512"},
    {"offset past the file", p_offset_past_file, -EBADMSG,
     "past the memory file"},
    {"sum != ram_size", p_sum, -EBADMSG,
     "RAM regions add up to 196608 bytes but ram_size is 200704"},
    {"empty region", p_empty_region, -EBADMSG, "RAM region 1 is empty"},
    {"region wraps", p_wraps, -EBADMSG, "RAM region 1 wraps around"},
    {"no regions", p_no_regions, -EBADMSG, "0 RAM regions (1 to 4)"},
    {"five regions", p_five_regions, -EBADMSG, "5 RAM regions (1 to 4)"},
    {"unused slot", p_unused_slot, -EBADMSG,
     "unused RAM region slot 3 is not zero"},
    {"no vCPUs", p_no_vcpus, -EBADMSG, "no vCPUs"},
    {"section length 4 GiB", p_section_huge, -EBADMSG,
     "truncated: section 0 of 5 (4294967295 bytes) runs past the end"},
    {"section length one past", p_section_one_past, -EBADMSG,
     "truncated: section 4 of 5 (6 bytes) runs past the end"},
    {"too many sections", p_too_many_sections, -EBADMSG,
     "257 sections (at most 256)"},
    {"count past the sections", p_count_high, -EBADMSG,
     "truncated: section 5 of 6"},
    {"count short of the sections", p_count_low, -EBADMSG,
     "17 bytes after the last section"},
    {"byte after the sections", p_trailing_byte, -EBADMSG,
     "1 bytes after the last section"},
    {"machine without NUL", p_machine_no_nul, -EBADMSG,
     "machine description is not NUL-terminated"},
    {"machine bytes after NUL", p_machine_after_nul, -EBADMSG,
     "machine description has bytes after its NUL"},
    {"machine escape", p_machine_escape, -EBADMSG,
     "machine description has byte 0x1b, not printable ASCII"},
    {"wrong magic", p_magic, -EBADMSG,
     "not a runvm snapshot state file (no RUNVMSNP magic)"},
    {"other version", p_version, -EPROTO,
     "snapshot format version 2; this runvm reads version 1"},
    {"other arch", p_other_arch, -ENOEXEC, "a snapshot of an "},
    {"unknown arch", p_unknown_arch, -EBADMSG, "unknown architecture 7"},
    {"header length", p_header_len, -EBADMSG,
     "header length 485 (version 1's is 484)"},
    {"unknown section kind", p_unknown_kind, -EBADMSG,
     "section 0 has unknown kind 9"},
    {"section twice", p_duplicate, -EBADMSG, "section 2 repeats vCPU 0's"},
    {"vCPU index past nr_vcpus", p_vcpu_index, -EBADMSG,
     "section 2 is vCPU 2's but the snapshot has 2 vCPUs"},
};

static void hostile_headers_refused(void **unused)
{
    (void)unused;
    struct state_w w;
    encode_sample(&w);
    uint8_t *b = malloc(w.len + 64);
    assert_non_null(b);
    struct snap_header h;
    unsigned int n;
    char err[256];

    /* Resealing alone breaks nothing: what follows is the patch's doing. */
    memcpy(b, w.buf, w.len);
    reseal(b, w.len);
    assert_int_equal(
        decode_exact(b, w.len, SNAP_MAX_SECTIONS, &h, &n, err, sizeof(err)), 0);

    for (size_t i = 0; i < sizeof(hostile) / sizeof(hostile[0]); i++) {
        const struct hostile *c = &hostile[i];
        size_t len = w.len - CHECKSUM_LEN; /* patched without the sum */
        memcpy(b, w.buf, len);
        c->patch(b, &len);
        len += CHECKSUM_LEN;
        reseal(b, len);
        err[0] = '\0';
        int ret =
            decode_exact(b, len, SNAP_MAX_SECTIONS, &h, &n, err, sizeof(err));
        if (ret != c->ret || !strstr(err, c->says))
            fail_msg("%s: got %d \"%s\", want %d \"%s\"", c->name, ret, err,
                     c->ret, c->says);
        assert_int_equal(n, 0);
        assert_null(strchr(err, '\n'));
    }
    free(b);
    state_w_free(&w);
}

static void other_version_says_both(void **unused)
{
    (void)unused;
    /* A version 2 file may differ everywhere after the version, so it is
     * refused on the version alone, before length or checksum. */
    uint8_t b[12] = {'R', 'U', 'N', 'V', 'M', 'S', 'N', 'P', 2, 0, 0, 0};
    struct snap_header h;
    unsigned int n;
    char err[256];
    assert_int_equal(
        decode_exact(b, sizeof(b), SNAP_MAX_SECTIONS, &h, &n, err, sizeof(err)),
        -EPROTO);
    assert_string_equal(err, "snapshot format version 2; this runvm reads "
                             "version 1 (take the snapshot again with this "
                             "runvm)");
}

/* n empty device sections, devices 0 to n - 1. */
static void devices(struct snap_section *s, unsigned int n)
{
    for (unsigned int i = 0; i < n; i++)
        s[i] = (struct snap_section){SNAP_SEC_DEVICE, i, NULL, 0};
}

static void encode_refuses_inconsistent(void **unused)
{
    (void)unused;
    struct snap_header h;
    struct snap_section s[SNAP_MAX_SECTIONS + 1];
    struct state_w w;
    state_w_init(&w);

#define REFUSED(what, n_sections, ret_want)                                    \
    do {                                                                       \
        sample(&h, s);                                                         \
        what;                                                                  \
        assert_int_equal(snap_encode(&h, s, n_sections, &w), ret_want);        \
        assert_int_equal(w.len, 0);                                            \
    } while (0)
    REFUSED(h.regions[1].gpa = 0x8000, 5, -EINVAL);
    REFUSED(h.regions[1].offset = 0, 5, -EINVAL);
    REFUSED(h.regions[0].size = 0x10800, 5, -EINVAL);
    REFUSED(h.mem_file_size = 0x20000, 5, -EINVAL);
    REFUSED(h.ram_size = 0x10000, 5, -EINVAL);
    REFUSED(h.nr_regions = 0, 5, -EINVAL);
    REFUSED(h.nr_regions = SNAP_MAX_REGIONS + 1, 5, -EINVAL);
    REFUSED(h.nr_vcpus = 0, 5, -EINVAL);
    REFUSED(h.arch = 0, 5, -EINVAL);
    REFUSED(memset(h.machine, 'a', sizeof(h.machine)), 5, -EINVAL);
    REFUSED(h.machine[0] = '\n', 5, -EINVAL);
    REFUSED(s[0].kind = 0, 5, -EINVAL);
    REFUSED(s[4].index = 0, 5, -EINVAL); /* device 0 twice */
    REFUSED(s[2].index = 2, 5, -EINVAL);
    REFUSED(s[1].data = NULL, 5, -EINVAL);
    /* 257 distinct device sections. */
    REFUSED(devices(s, SNAP_MAX_SECTIONS + 1), SNAP_MAX_SECTIONS + 1, -EINVAL);
    /* Too big: refused before a byte of it is read. */
    REFUSED(s[4].len = SNAP_STATE_MAX, 5, -EFBIG);
#undef REFUSED

    /* 256 sections is the most, and fine. */
    devices(s, SNAP_MAX_SECTIONS);
    assert_int_equal(snap_encode(&h, s, SNAP_MAX_SECTIONS, &w), 0);
    struct snap_header d;
    unsigned int n;
    char err[256];
    assert_int_equal(
        decode_exact(w.buf, w.len, SNAP_MAX_SECTIONS, &d, &n, err, sizeof(err)),
        0);
    assert_int_equal(n, SNAP_MAX_SECTIONS);
    state_w_free(&w);
}

/* ---- the memory file ----------------------------------------------------- */

#define PAGE  4096u
#define R0_SZ (1u << 20)
#define R1_SZ (512u << 10)

static void sha256_of(const void *p, size_t n, uint8_t md[SNAP_DIGEST_LEN])
{
    unsigned int mdlen;
    assert_int_equal(EVP_Digest(p, n, md, &mdlen, EVP_sha256(), NULL), 1);
}

/* Mostly zero RAM: a run of two pages, a page with only its last byte
 * set, and in the second region one page with its last page zero (a
 * trailing hole). */
static uint8_t *sample_ram(void)
{
    uint8_t *ram = calloc(1, R0_SZ + R1_SZ);
    assert_non_null(ram);
    memset(ram, 0xa5, 2 * PAGE);
    ram[100 * PAGE + PAGE - 1] = 1;
    memset(ram + R0_SZ + 3 * PAGE + 17, 0x5a, 100);
    return ram;
}

static int write_sample(int fd, const uint8_t *ram, uint8_t md[32])
{
    const void *hva[2] = {ram, ram + R0_SZ};
    const uint64_t sizes[2] = {R0_SZ, R1_SZ};
    return snap_write_memory(fd, hva, sizes, 2, md);
}

static void memory_file_sparse(void **unused)
{
    (void)unused;
    uint8_t *ram = sample_ram();
    const size_t total = R0_SZ + R1_SZ;
    int fd = memfd_create("memory", MFD_CLOEXEC);
    assert_true(fd >= 0);
    /* An older, longer file's bytes must not show through the holes. */
    uint8_t *junk = malloc(2 * total);
    assert_non_null(junk);
    memset(junk, 0xee, 2 * total);
    assert_int_equal(write(fd, junk, 2 * total), (ssize_t)(2 * total));

    uint8_t md[SNAP_DIGEST_LEN], want[SNAP_DIGEST_LEN];
    assert_int_equal(write_sample(fd, ram, md), 0);
    sha256_of(ram, total, want);
    assert_memory_equal(md, want, SNAP_DIGEST_LEN);

    struct stat st;
    assert_int_equal(fstat(fd, &st), 0);
    assert_int_equal(st.st_size, total);
    /* Four pages hold data; allow the file system some slack, but far
     * less than the 384 pages. */
    assert_true((uint64_t)st.st_blocks * 512 >= 4 * PAGE);
    assert_true((uint64_t)st.st_blocks * 512 <= 16 * PAGE);

    assert_int_equal(pread(fd, junk, total + 1, 0), (ssize_t)total);
    assert_memory_equal(junk, ram, total);
    uint8_t again[SNAP_DIGEST_LEN];
    assert_int_equal(snap_digest_fd(fd, again), 0);
    assert_memory_equal(again, md, SNAP_DIGEST_LEN);
    assert_int_equal(snap_verify_memory(fd, total, md), 0);

    /* A size not of whole pages is refused before anything is written. */
    const void *hva[1] = {ram};
    const uint64_t odd[1] = {PAGE + 1};
    assert_int_equal(snap_write_memory(fd, hva, odd, 1, again), -EINVAL);
    assert_int_equal(snap_verify_memory(fd, total, md), 0);

    /* All-zero RAM: a file of holes only, and the digest of zeros. */
    memset(ram, 0, total);
    assert_int_equal(write_sample(fd, ram, again), 0);
    sha256_of(ram, total, want);
    assert_memory_equal(again, want, SNAP_DIGEST_LEN);
    assert_int_equal(fstat(fd, &st), 0);
    assert_int_equal(st.st_size, total);
    assert_int_equal(st.st_blocks, 0);
    free(junk);
    free(ram);
    close(fd);
}

static void memory_file_damage_found(void **unused)
{
    (void)unused;
    uint8_t *ram = sample_ram();
    const size_t total = R0_SZ + R1_SZ;
    int fd = memfd_create("memory", MFD_CLOEXEC);
    assert_true(fd >= 0);
    uint8_t md[SNAP_DIGEST_LEN];
    assert_int_equal(write_sample(fd, ram, md), 0);

    /* One flipped byte, in data and in a hole. */
    const off_t at[] = {1, 100 * PAGE + PAGE - 1, 500000, total - 1};
    for (size_t i = 0; i < sizeof(at) / sizeof(at[0]); i++) {
        uint8_t c;
        assert_int_equal(pread(fd, &c, 1, at[i]), 1);
        c ^= 0x01;
        assert_int_equal(pwrite(fd, &c, 1, at[i]), 1);
        assert_int_equal(snap_verify_memory(fd, total, md), -EBADMSG);
        c ^= 0x01;
        assert_int_equal(pwrite(fd, &c, 1, at[i]), 1);
        assert_int_equal(snap_verify_memory(fd, total, md), 0);
    }
    /* Longer or shorter than the header says. */
    assert_int_equal(snap_verify_memory(fd, total + PAGE, md), -EBADMSG);
    assert_int_equal(snap_verify_memory(fd, total - PAGE, md), -EBADMSG);
    assert_int_equal(ftruncate(fd, total + 1), 0);
    assert_int_equal(snap_verify_memory(fd, total, md), -EBADMSG);
    assert_int_equal(ftruncate(fd, total - PAGE), 0);
    assert_int_equal(snap_verify_memory(fd, total, md), -EBADMSG);
    free(ram);
    close(fd);
}

static void digest_fd_known_answer(void **unused)
{
    (void)unused;
    /* FIPS 180-2, appendix B.1. */
    static const uint8_t abc[SNAP_DIGEST_LEN] = {
        0xba, 0x78, 0x16, 0xbf, 0x8f, 0x01, 0xcf, 0xea, 0x41, 0x41, 0x40,
        0xde, 0x5d, 0xae, 0x22, 0x23, 0xb0, 0x03, 0x61, 0xa3, 0x96, 0x17,
        0x7a, 0x9c, 0xb4, 0x10, 0xff, 0x61, 0xf2, 0x00, 0x15, 0xad};
    int fd = memfd_create("kernel", MFD_CLOEXEC);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "abc", 3), 3);
    /* From offset 0, wherever fd's own offset is. */
    uint8_t md[SNAP_DIGEST_LEN];
    assert_int_equal(snap_digest_fd(fd, md), 0);
    assert_memory_equal(md, abc, SNAP_DIGEST_LEN);
    close(fd);
    assert_int_equal(snap_digest_fd(-1, md), -EBADF);
}

static void read_file_whole_and_bounded(void **unused)
{
    (void)unused;
    struct state_w w;
    encode_sample(&w);
    int fd = memfd_create("state", MFD_CLOEXEC);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, w.buf, w.len), (ssize_t)w.len);
    uint8_t *buf;
    size_t len;
    assert_int_equal(snap_read_file(fd, &buf, &len), 0);
    assert_int_equal(len, w.len);
    assert_memory_equal(buf, w.buf, w.len);
    free(buf);

    assert_int_equal(ftruncate(fd, 0), 0);
    assert_int_equal(snap_read_file(fd, &buf, &len), 0);
    assert_non_null(buf);
    assert_int_equal(len, 0);
    free(buf);

    /* A hole of 64 MiB and one byte: refused on its size, unread. */
    assert_int_equal(ftruncate(fd, (off_t)SNAP_STATE_MAX + 1), 0);
    assert_int_equal(snap_read_file(fd, &buf, &len), -EFBIG);
    assert_null(buf);
    close(fd);
    state_w_free(&w);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        /* First: it needs OpenSSL not yet started in this process. */
        cmocka_unit_test(digest_init_before_sandbox),
        cmocka_unit_test(round_trip),
        cmocka_unit_test(every_byte_flip_refused),
        cmocka_unit_test(truncation_refused),
        cmocka_unit_test(hostile_headers_refused),
        cmocka_unit_test(other_version_says_both),
        cmocka_unit_test(encode_refuses_inconsistent),
        cmocka_unit_test(memory_file_sparse),
        cmocka_unit_test(memory_file_damage_found),
        cmocka_unit_test(digest_fd_known_answer),
        cmocka_unit_test(read_file_whole_and_bounded),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
