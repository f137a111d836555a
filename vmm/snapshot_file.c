#include "vmm/snapshot_file.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#define MAGIC     "RUNVMSNP"
#define MAGIC_LEN 8
/* magic, version, header length: what every version begins with */
#define PREFIX_LEN 16
/* Version 1's header (snapshot_file.h has the layout). */
#define HEADER_LEN                                                             \
    (4 + 8 + 4 + 4 + SNAP_MAX_REGIONS * 24 + 3 * SNAP_DIGEST_LEN + 8 + 8 +     \
     SNAP_MACHINE_LEN)
#define SECTION_HEAD_LEN 12 /* kind, index, length */
/* The smallest file: no sections. */
#define MIN_LEN (PREFIX_LEN + HEADER_LEN + 4 + SNAP_DIGEST_LEN)
/* Memory is hashed, checked for zero pages and written this much at a
 * time, so each byte is read from the cache on its second pass. */
#define MEM_CHUNK (256u << 10)
/* Read buffer for the digests of whole files. */
#define READ_CHUNK (1u << 20)

_Static_assert(HEADER_LEN == 484, "version 1's header is 484 bytes");
_Static_assert(MEM_CHUNK % SNAP_PAGE_SIZE == 0, "chunks of whole pages");

uint32_t snap_host_arch(void)
{
#if defined(__x86_64__)
    return SNAP_ARCH_X86_64;
#elif defined(__aarch64__)
    return SNAP_ARCH_AARCH64;
#else
#error "runvm snapshots know x86-64 and aarch64 only"
#endif
}

static const char *arch_name(uint32_t arch)
{
    switch (arch) {
    case SNAP_ARCH_X86_64: return "x86-64";
    case SNAP_ARCH_AARCH64: return "aarch64";
    default: return "unknown";
    }
}

static const char *kind_name(uint32_t kind)
{
    switch (kind) {
    case SNAP_SEC_VM: return "VM";
    case SNAP_SEC_VCPU: return "vCPU";
    case SNAP_SEC_DEVICE: return "device";
    default: return "unknown";
    }
}

/* Puts a one-line reason in err; returns -1 for the caller to map. */
static int why(char *err, size_t err_len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int why(char *err, size_t err_len, const char *fmt, ...)
{
    if (err_len) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, err_len, fmt, ap);
        va_end(ap);
    }
    return -1;
}

/* ---- SHA-256 ------------------------------------------------------------ */

static int sha256(const void *p, size_t n, uint8_t md[SNAP_DIGEST_LEN])
{
    unsigned int mdlen = 0;
    if (!EVP_Digest(p, n, md, &mdlen, EVP_sha256(), NULL) ||
        mdlen != SNAP_DIGEST_LEN)
        return -EIO;
    return 0;
}

static EVP_MD_CTX *sha256_begin(void)
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (ctx && !EVP_DigestInit_ex(ctx, EVP_sha256(), NULL)) {
        EVP_MD_CTX_free(ctx);
        return NULL;
    }
    return ctx;
}

/* Finishes into md and frees ctx. */
static int sha256_end(EVP_MD_CTX *ctx, uint8_t md[SNAP_DIGEST_LEN])
{
    unsigned int mdlen = 0;
    int ok = EVP_DigestFinal_ex(ctx, md, &mdlen);
    EVP_MD_CTX_free(ctx);
    return ok && mdlen == SNAP_DIGEST_LEN ? 0 : -EIO;
}

int snap_digest_init(void)
{
    uint8_t md[SNAP_DIGEST_LEN];
    if (!OPENSSL_init_crypto(OPENSSL_INIT_LOAD_CONFIG, NULL))
        return -EIO;
    /* The first digest fetches SHA-256 from the default provider; later
     * ones find it cached. */
    return sha256("", 0, md);
}

/* ---- header and sections ------------------------------------------------ */

static bool is_known_arch(uint32_t arch)
{
    return arch == SNAP_ARCH_X86_64 || arch == SNAP_ARCH_AARCH64;
}

/* The consistency snapshot_file.h describes for struct snap_header. 0, or
 * -1 with the reason in err. */
static int check_header(const struct snap_header *h, char *err, size_t err_len)
{
    if (!is_known_arch(h->arch))
        return why(err, err_len, "unknown architecture %u", h->arch);
    if (h->nr_vcpus == 0)
        return why(err, err_len, "no vCPUs");
    if (h->nr_regions == 0 || h->nr_regions > SNAP_MAX_REGIONS)
        return why(err, err_len, "%u RAM regions (1 to %u)", h->nr_regions,
                   SNAP_MAX_REGIONS);
    uint64_t sum = 0, gpa_end = 0, file_end = 0;
    for (unsigned int i = 0; i < h->nr_regions; i++) {
        const struct snap_region *r = &h->regions[i];
        uint64_t g_end, f_end;
        if (r->size == 0)
            return why(err, err_len, "RAM region %u is empty", i);
        if ((r->gpa | r->size | r->offset) % SNAP_PAGE_SIZE)
            return why(err, err_len,
                       "RAM region %u is not page-aligned (gpa %#llx, size "
                       "%#llx, file offset %#llx)",
                       i, (unsigned long long)r->gpa,
                       (unsigned long long)r->size,
                       (unsigned long long)r->offset);
        if (__builtin_add_overflow(r->gpa, r->size, &g_end) ||
            __builtin_add_overflow(r->offset, r->size, &f_end) ||
            __builtin_add_overflow(sum, r->size, &sum))
            return why(err, err_len, "RAM region %u wraps around", i);
        if (i > 0 && r->gpa < gpa_end)
            return why(err, err_len,
                       "RAM region %u is not above region %u in guest "
                       "addresses (they overlap or are out of order)",
                       i, i - 1);
        if (i > 0 && r->offset < file_end)
            return why(err, err_len,
                       "RAM region %u is not after region %u in the memory "
                       "file (they overlap or are out of order)",
                       i, i - 1);
        if (f_end > h->mem_file_size)
            return why(err, err_len,
                       "RAM region %u ends at byte %llu, past the memory "
                       "file's %llu",
                       i, (unsigned long long)f_end,
                       (unsigned long long)h->mem_file_size);
        gpa_end = g_end;
        file_end = f_end;
    }
    if (sum != h->ram_size)
        return why(err, err_len,
                   "RAM regions add up to %llu bytes but ram_size is %llu",
                   (unsigned long long)sum, (unsigned long long)h->ram_size);
    const char *nul = memchr(h->machine, '\0', sizeof(h->machine));
    if (!nul)
        return why(err, err_len, "machine description is not NUL-terminated");
    for (const char *c = h->machine; c < nul; c++) {
        if (*c < 0x20 || *c > 0x7e)
            return why(err, err_len,
                       "machine description has byte %#x, not printable "
                       "ASCII",
                       (unsigned int)(unsigned char)*c);
    }
    return 0;
}

/* The sections' rules (snap_encode's contract). 0, or -1 with the reason
 * in err. */
static int check_sections(const struct snap_header *h,
                          const struct snap_section *s, unsigned int n,
                          char *err, size_t err_len)
{
    if (n > SNAP_MAX_SECTIONS)
        return why(err, err_len, "%u sections (at most %u)", n,
                   SNAP_MAX_SECTIONS);
    for (unsigned int i = 0; i < n; i++) {
        if (s[i].kind != SNAP_SEC_VM && s[i].kind != SNAP_SEC_VCPU &&
            s[i].kind != SNAP_SEC_DEVICE)
            return why(err, err_len, "section %u has unknown kind %u", i,
                       s[i].kind);
        if (s[i].kind == SNAP_SEC_VCPU && s[i].index >= h->nr_vcpus)
            return why(err, err_len,
                       "section %u is vCPU %u's but the snapshot has %u "
                       "vCPUs",
                       i, s[i].index, h->nr_vcpus);
        if (s[i].len && !s[i].data)
            return why(err, err_len, "section %u has no bytes", i);
        /* At most 256 sections: the quadratic walk is cheap. */
        for (unsigned int j = 0; j < i; j++) {
            if (s[j].kind == s[i].kind && s[j].index == s[i].index)
                return why(err, err_len, "section %u repeats %s %u's", i,
                           kind_name(s[i].kind), s[i].index);
        }
    }
    return 0;
}

static void put_header(struct state_w *w, const struct snap_header *h)
{
    state_put_u32(w, h->arch);
    state_put_u64(w, h->ram_size);
    state_put_u32(w, h->nr_vcpus);
    state_put_u32(w, h->nr_regions);
    /* Unused slots as zeros whatever the caller left there: one encoding
     * per snapshot. */
    for (unsigned int i = 0; i < SNAP_MAX_REGIONS; i++) {
        bool used = i < h->nr_regions;
        state_put_u64(w, used ? h->regions[i].gpa : 0);
        state_put_u64(w, used ? h->regions[i].size : 0);
        state_put_u64(w, used ? h->regions[i].offset : 0);
    }
    state_put_bytes(w, h->kernel_digest, SNAP_DIGEST_LEN);
    state_put_bytes(w, h->image_digest, SNAP_DIGEST_LEN);
    state_put_u64(w, h->mem_file_size);
    state_put_bytes(w, h->mem_digest, SNAP_DIGEST_LEN);
    state_put_u64(w, h->created_unix_ns);
    /* Zero-padded after the NUL, likewise. */
    uint8_t machine[SNAP_MACHINE_LEN] = {0};
    memcpy(machine, h->machine, strnlen(h->machine, sizeof(machine)));
    state_put_bytes(w, machine, sizeof(machine));
}

static void get_header(struct state_r *r, struct snap_header *h)
{
    h->arch = state_get_u32(r);
    h->ram_size = state_get_u64(r);
    h->nr_vcpus = state_get_u32(r);
    h->nr_regions = state_get_u32(r);
    for (unsigned int i = 0; i < SNAP_MAX_REGIONS; i++) {
        h->regions[i].gpa = state_get_u64(r);
        h->regions[i].size = state_get_u64(r);
        h->regions[i].offset = state_get_u64(r);
    }
    state_get_bytes(r, h->kernel_digest, SNAP_DIGEST_LEN);
    state_get_bytes(r, h->image_digest, SNAP_DIGEST_LEN);
    h->mem_file_size = state_get_u64(r);
    state_get_bytes(r, h->mem_digest, SNAP_DIGEST_LEN);
    h->created_unix_ns = state_get_u64(r);
    state_get_bytes(r, h->machine, sizeof(h->machine));
}

int snap_encode(const struct snap_header *h, const struct snap_section *s,
                unsigned int n, struct state_w *out)
{
    if (check_header(h, NULL, 0) || check_sections(h, s, n, NULL, 0))
        return -EINVAL;
    if (out->err)
        return out->err;
    /* n <= 256 sections of at most 4 GiB each: no overflow in 64 bits. */
    uint64_t total = MIN_LEN;
    for (unsigned int i = 0; i < n; i++)
        total += SECTION_HEAD_LEN + (uint64_t)s[i].len;
    if (total > SNAP_STATE_MAX)
        return -EFBIG;

    size_t start = out->len;
    state_put_bytes(out, MAGIC, MAGIC_LEN);
    state_put_u32(out, SNAP_FORMAT_VERSION);
    state_put_u32(out, HEADER_LEN);
    put_header(out, h);
    state_put_u32(out, n);
    for (unsigned int i = 0; i < n; i++) {
        state_put_u32(out, s[i].kind);
        state_put_u32(out, s[i].index);
        state_put_u32(out, s[i].len);
        state_put_bytes(out, s[i].data, s[i].len);
    }
    if (out->err)
        return out->err;
    uint8_t md[SNAP_DIGEST_LEN];
    int ret = sha256(out->buf + start, out->len - start, md);
    if (ret) {
        out->len = start;
        return ret;
    }
    state_put_bytes(out, md, sizeof(md));
    return out->err;
}

/* decode's checks of what only the file can get wrong: the bytes
 * snap_encode writes as zeros. */
static int check_padding(const struct snap_header *h, char *err, size_t err_len)
{
    for (unsigned int i = h->nr_regions; i < SNAP_MAX_REGIONS; i++) {
        const struct snap_region *r = &h->regions[i];
        if (r->gpa | r->size | r->offset)
            return why(err, err_len, "unused RAM region slot %u is not zero",
                       i);
    }
    const char *nul = memchr(h->machine, '\0', sizeof(h->machine));
    for (const char *c = nul; c < h->machine + sizeof(h->machine); c++) {
        if (*c)
            return why(err, err_len,
                       "machine description has bytes after its NUL");
    }
    return 0;
}

int snap_decode(const uint8_t *buf, size_t len, struct snap_header *h,
                struct snap_section *s, unsigned int max, unsigned int *n,
                char *err, size_t err_len)
{
    *n = 0;
    memset(h, 0, sizeof(*h));
    if (err_len)
        err[0] = '\0';
    /* Compare what there is of the magic: a short file that starts
     * right is truncated, one that does not is something else. */
    if (len && memcmp(buf, MAGIC, len < MAGIC_LEN ? len : MAGIC_LEN)) {
        why(err, err_len, "not a runvm snapshot state file (no %s magic)",
            MAGIC);
        return -EBADMSG;
    }
    struct state_r r;
    state_r_init(&r, buf, len);
    (void)state_get_span(&r, MAGIC_LEN);
    uint32_t version = state_get_u32(&r);
    if (r.err)
        goto truncated;
    /* Before anything else: another version may lay out the rest, its
     * checksum included, differently. */
    if (version != SNAP_FORMAT_VERSION) {
        why(err, err_len,
            "snapshot format version %u; this runvm reads version %u "
            "(take the snapshot again with this runvm)",
            version, SNAP_FORMAT_VERSION);
        return -EPROTO;
    }
    if (len > SNAP_STATE_MAX) {
        why(err, err_len, "%zu bytes, more than a state file's %u", len,
            SNAP_STATE_MAX);
        return -EBADMSG;
    }
    uint32_t header_len = state_get_u32(&r);
    if (r.err || len < MIN_LEN)
        goto truncated;
    if (header_len != HEADER_LEN) {
        why(err, err_len, "header length %u (version %u's is %u)", header_len,
            SNAP_FORMAT_VERSION, HEADER_LEN);
        return -EBADMSG;
    }

    size_t body_end = len - SNAP_DIGEST_LEN;
    uint8_t md[SNAP_DIGEST_LEN];
    int ret = sha256(buf, body_end, md);
    if (ret) {
        why(err, err_len, "cannot compute SHA-256 (OpenSSL failed)");
        return ret;
    }
    if (CRYPTO_memcmp(md, buf + body_end, SNAP_DIGEST_LEN)) {
        why(err, err_len, "checksum mismatch (the file is damaged)");
        return -EBADMSG;
    }

    /* From here the bytes are what some writer meant, but not
     * necessarily runvm: every field is still checked. */
    state_r_init(&r, buf + PREFIX_LEN, body_end - PREFIX_LEN);
    get_header(&r, h);
    if (is_known_arch(h->arch) && h->arch != snap_host_arch()) {
        why(err, err_len, "a snapshot of an %s VM; this host is %s",
            arch_name(h->arch), arch_name(snap_host_arch()));
        return -ENOEXEC;
    }
    if (check_header(h, err, err_len) || check_padding(h, err, err_len))
        return -EBADMSG;

    uint32_t count = state_get_u32(&r);
    if (r.err)
        goto truncated;
    if (count > SNAP_MAX_SECTIONS || count > max) {
        why(err, err_len, "%u sections (at most %u)", count,
            max < SNAP_MAX_SECTIONS ? max : SNAP_MAX_SECTIONS);
        return -EBADMSG;
    }
    for (uint32_t i = 0; i < count; i++) {
        s[i].kind = state_get_u32(&r);
        s[i].index = state_get_u32(&r);
        s[i].len = state_get_u32(&r);
        s[i].data = state_get_span(&r, s[i].len);
        if (r.err) {
            why(err, err_len,
                "truncated: section %u of %u (%u bytes) runs past the end", i,
                count, s[i].len);
            return -EBADMSG;
        }
    }
    if (check_sections(h, s, count, err, err_len))
        return -EBADMSG;
    if (r.off != r.len) {
        why(err, err_len, "%zu bytes after the last section", r.len - r.off);
        return -EBADMSG;
    }
    *n = count;
    return 0;

truncated:
    why(err, err_len, "truncated (%zu bytes)", len);
    return -EBADMSG;
}

/* ---- files -------------------------------------------------------------- */

int snap_write_all(int fd, const void *buf, size_t n)
{
    const uint8_t *p = buf;
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return -errno;
        if (w == 0)
            return -EIO;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Writes p[0..n) at file offset off; *pos is where fd's offset is
 * (UINT64_MAX: unknown), so runs that follow each other need no lseek. */
static int write_at(int fd, uint64_t *pos, uint64_t off, const uint8_t *p,
                    size_t n)
{
    if (*pos != off) {
        if (lseek(fd, (off_t)off, SEEK_SET) < 0)
            return -errno;
        *pos = off;
    }
    int ret = snap_write_all(fd, p, n);
    if (ret) {
        *pos = UINT64_MAX;
        return ret;
    }
    *pos += n;
    return 0;
}

static bool page_is_zero(const uint8_t *p)
{
    /* Each byte equals the next and the first is zero. */
    return p[0] == 0 && memcmp(p, p + 1, SNAP_PAGE_SIZE - 1) == 0;
}

/* Writes one chunk of RAM at file offset off, its non-zero pages only,
 * each run of them in one write. */
static int write_chunk(int fd, uint64_t *pos, uint64_t off, const uint8_t *p,
                       size_t n)
{
    size_t i = 0;
    while (i < n) {
        if (page_is_zero(p + i)) {
            i += SNAP_PAGE_SIZE;
            continue;
        }
        size_t end = i + SNAP_PAGE_SIZE;
        while (end < n && !page_is_zero(p + end))
            end += SNAP_PAGE_SIZE;
        int ret = write_at(fd, pos, off + i, p + i, end - i);
        if (ret)
            return ret;
        i = end;
    }
    return 0;
}

int snap_write_memory(int fd, const void *const *hva, const uint64_t *sizes,
                      unsigned int nr, uint8_t digest[SNAP_DIGEST_LEN])
{
    uint64_t total = 0;
    for (unsigned int i = 0; i < nr; i++) {
        if (sizes[i] % SNAP_PAGE_SIZE ||
            __builtin_add_overflow(total, sizes[i], &total))
            return -EINVAL;
    }
    if (total > INT64_MAX)
        return -EINVAL;
    /* Empty first: a hole must read as zeros, not as an older file. */
    if (ftruncate(fd, 0) < 0)
        return -errno;
    EVP_MD_CTX *ctx = sha256_begin();
    if (!ctx)
        return -ENOMEM;
    int ret = 0;
    uint64_t off = 0, pos = UINT64_MAX;
    for (unsigned int i = 0; i < nr && !ret; i++) {
        const uint8_t *p = hva[i];
        for (uint64_t done = 0; done < sizes[i] && !ret;) {
            size_t n =
                sizes[i] - done < MEM_CHUNK ? sizes[i] - done : MEM_CHUNK;
            /* The digest covers every byte, holes included. */
            if (!EVP_DigestUpdate(ctx, p + done, n))
                ret = -EIO;
            else
                ret = write_chunk(fd, &pos, off, p + done, n);
            done += n;
            off += n;
        }
    }
    /* Trailing zero pages were never written: the size makes them holes. */
    if (!ret && ftruncate(fd, (off_t)total) < 0)
        ret = -errno;
    if (ret) {
        EVP_MD_CTX_free(ctx);
        return ret;
    }
    return sha256_end(ctx, digest);
}

/* SHA-256 of fd's bytes from offset 0 up to limit or the end, whichever
 * comes first; *got is how many there were. 0 or -errno. */
static int digest_range(int fd, uint64_t limit, uint8_t md[SNAP_DIGEST_LEN],
                        uint64_t *got)
{
    *got = 0;
    uint8_t *buf = malloc(READ_CHUNK);
    EVP_MD_CTX *ctx = sha256_begin();
    int ret = 0;
    if (!buf || !ctx) {
        ret = -ENOMEM;
        goto out;
    }
    while (*got < limit) {
        size_t want = limit - *got < READ_CHUNK ? limit - *got : READ_CHUNK;
        ssize_t n = pread(fd, buf, want, (off_t)*got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            ret = -errno;
            goto out;
        }
        if (n == 0)
            break;
        if (!EVP_DigestUpdate(ctx, buf, (size_t)n)) {
            ret = -EIO;
            goto out;
        }
        *got += (uint64_t)n;
    }
    ret = sha256_end(ctx, md);
    ctx = NULL;
out:
    EVP_MD_CTX_free(ctx);
    free(buf);
    return ret;
}

int snap_verify_memory(int fd, uint64_t size,
                       const uint8_t digest[SNAP_DIGEST_LEN])
{
    struct stat st;
    if (fstat(fd, &st) < 0)
        return -errno;
    if (S_ISREG(st.st_mode) && (uint64_t)st.st_size != size)
        return -EBADMSG;
    uint8_t md[SNAP_DIGEST_LEN];
    uint64_t got;
    int ret = digest_range(fd, size, md, &got);
    if (ret)
        return ret;
    if (got != size || CRYPTO_memcmp(md, digest, SNAP_DIGEST_LEN))
        return -EBADMSG;
    return 0;
}

int snap_digest_bytes(const void *p, size_t n, uint8_t digest[SNAP_DIGEST_LEN])
{
    return sha256(p, n, digest);
}

int snap_digest_fd(int fd, uint8_t digest[SNAP_DIGEST_LEN])
{
    uint64_t got;
    return digest_range(fd, UINT64_MAX, digest, &got);
}

int snap_read_file(int fd, uint8_t **buf, size_t *len)
{
    *buf = NULL;
    *len = 0;
    struct stat st;
    if (fstat(fd, &st) < 0)
        return -errno;
    if (S_ISREG(st.st_mode) && st.st_size > (off_t)SNAP_STATE_MAX)
        return -EFBIG;
    /* Room for one byte more than fstat says, so the read that finds the
     * end needs no growth; a file that grew meanwhile still fits up to the
     * limit, plus one byte to tell that it passed it. */
    size_t cap = S_ISREG(st.st_mode) ? (size_t)st.st_size + 1 : 4096;
    size_t n = 0;
    uint8_t *b = malloc(cap);
    if (!b)
        return -ENOMEM;
    for (;;) {
        if (n == cap) {
            size_t grow =
                cap * 2 < SNAP_STATE_MAX + 1u ? cap * 2 : SNAP_STATE_MAX + 1u;
            uint8_t *nb = realloc(b, grow);
            if (!nb) {
                free(b);
                return -ENOMEM;
            }
            b = nb;
            cap = grow;
        }
        ssize_t got = pread(fd, b + n, cap - n, (off_t)n);
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0) {
            int ret = -errno;
            free(b);
            return ret;
        }
        if (got == 0)
            break;
        n += (size_t)got;
        if (n > SNAP_STATE_MAX) {
            free(b);
            return -EFBIG;
        }
    }
    *buf = b;
    *len = n;
    return 0;
}
