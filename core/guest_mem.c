#include "core/guest_mem.h"

#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>

int gm_describe(struct guest_mem *mem, const struct gm_region *layout,
                unsigned int n)
{
    memset(mem, 0, sizeof(*mem));
    if (n == 0 || n > GM_MAX_REGIONS)
        return -EINVAL;
    uint64_t total = 0, prev_end = 0;
    for (unsigned int i = 0; i < n; i++) {
        uint64_t gpa = layout[i].gpa, size = layout[i].size, end;
        if (size == 0 || size % GM_PAGE_SIZE != 0 || gpa % GM_PAGE_SIZE != 0 ||
            __builtin_add_overflow(gpa, size, &end) ||
            (i > 0 && gpa < prev_end) ||
            __builtin_add_overflow(total, size, &total))
            return -EINVAL;
        mem->regions[i] = (struct gm_region){.gpa = gpa, .size = size};
        prev_end = end;
    }
    mem->nr_regions = n;
    mem->ram_size = total;
    return 0;
}

/* An anonymous mapping of size bytes at a GM_HUGE_ALIGN-aligned address,
 * asked to be backed by transparent huge pages. Aligned, because KVM maps
 * a 2 MiB guest page with one nested-page-table entry only where the host
 * page behind it is a 2 MiB page too: the guest then takes one nested page
 * fault per 2 MiB it first touches instead of 512, and its TLB misses walk
 * a level less. MAP_NORESERVE: the guest touches what it uses; untouched
 * RAM costs nothing on the host. Left out of core dumps (MADV_DONTDUMP).
 * NULL (errno set) on failure. */
static uint8_t *map_ram(uint64_t size)
{
    uint64_t span = size + GM_HUGE_ALIGN;
    uint8_t *p = mmap(NULL, span, PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED)
        return NULL;
    uint8_t *start = (uint8_t *)(((uintptr_t)p + GM_HUGE_ALIGN - 1) &
                                 ~(uintptr_t)(GM_HUGE_ALIGN - 1));
    if (start > p)
        munmap(p, (size_t)(start - p));
    munmap(start + size, (size_t)(p + span - (start + size)));
    /* Fails (EINVAL) on a kernel without THP: small pages then. */
    madvise(start, size, MADV_HUGEPAGE);
    /* What the guest holds stays out of runvm's core dumps. */
    if (madvise(start, size, MADV_DONTDUMP) < 0) {
        int e = errno;
        munmap(start, size);
        errno = e;
        return NULL;
    }
    return start;
}

/* Maps size bytes of fd at offset copy-on-write (MAP_PRIVATE) at a
 * GM_HUGE_ALIGN-aligned address: the guest reads the file's pages through
 * the page cache, shared with every other mapping of it, and a page it
 * writes becomes its own. Nothing is read until touched. NULL (errno set)
 * on failure. */
static uint8_t *map_file(uint64_t size, int fd, uint64_t offset)
{
    uint64_t span = size + GM_HUGE_ALIGN;
    uint8_t *p = mmap(NULL, span, PROT_NONE,
                      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED)
        return NULL;
    uint8_t *start = (uint8_t *)(((uintptr_t)p + GM_HUGE_ALIGN - 1) &
                                 ~(uintptr_t)(GM_HUGE_ALIGN - 1));
    uint8_t *m =
        mmap(start, size, PROT_READ | PROT_WRITE,
             MAP_PRIVATE | MAP_FIXED | MAP_NORESERVE, fd, (off_t)offset);
    int e = errno;
    if (start > p)
        munmap(p, (size_t)(start - p));
    munmap(start + size, (size_t)(p + span - (start + size)));
    if (m == MAP_FAILED) {
        munmap(start, size);
        errno = e;
        return NULL;
    }
    if (madvise(start, size, MADV_DONTDUMP) < 0) {
        e = errno;
        munmap(start, size);
        errno = e;
        return NULL;
    }
    return start;
}

int gm_init_file(struct guest_mem *mem, const struct gm_region *layout,
                 unsigned int n, int fd, const uint64_t *offsets)
{
    int ret = gm_describe(mem, layout, n);
    if (ret < 0)
        return ret;
    for (unsigned int i = 0; i < n; i++) {
        if (offsets[i] % GM_PAGE_SIZE != 0 || offsets[i] > INT64_MAX) {
            gm_free(mem);
            return -EINVAL;
        }
    }
    for (unsigned int i = 0; i < mem->nr_regions; i++) {
        struct gm_region *r = &mem->regions[i];
        r->hva = map_file(r->size, fd, offsets[i]);
        if (!r->hva) {
            ret = -errno;
            gm_free(mem);
            return ret;
        }
    }
    return 0;
}

int gm_init(struct guest_mem *mem, uint64_t ram_size)
{
    struct gm_region flat = {.gpa = 0, .size = ram_size};
    return gm_init_regions(mem, &flat, 1);
}

int gm_init_regions(struct guest_mem *mem, const struct gm_region *layout,
                    unsigned int n)
{
    int ret = gm_describe(mem, layout, n);
    if (ret < 0)
        return ret;
    for (unsigned int i = 0; i < mem->nr_regions; i++) {
        struct gm_region *r = &mem->regions[i];
        r->hva = map_ram(r->size);
        if (!r->hva) {
            ret = -errno;
            gm_free(mem);
            return ret;
        }
    }
    return 0;
}

void gm_free(struct guest_mem *mem)
{
    for (unsigned int i = 0; i < mem->nr_regions; i++) {
        if (mem->regions[i].hva)
            munmap(mem->regions[i].hva, mem->regions[i].size);
        mem->regions[i].hva = NULL;
    }
    mem->nr_regions = 0;
}

void *gm_ptr(const struct guest_mem *mem, uint64_t gpa, uint64_t len)
{
    uint64_t end;
    if (__builtin_add_overflow(gpa, len, &end))
        return NULL;
    for (unsigned int i = 0; i < mem->nr_regions; i++) {
        const struct gm_region *r = &mem->regions[i];
        if (gpa >= r->gpa && end <= r->gpa + r->size &&
            (len > 0 || gpa < r->gpa + r->size))
            return r->hva ? r->hva + (gpa - r->gpa) : NULL;
    }
    return NULL;
}

int gm_read(const struct guest_mem *mem, void *dst, uint64_t gpa, uint64_t len)
{
    const void *src = gm_ptr(mem, gpa, len);
    if (!src)
        return -EFAULT;
    memcpy(dst, src, len);
    return 0;
}

int gm_write(const struct guest_mem *mem, uint64_t gpa, const void *src,
             uint64_t len)
{
    void *dst = gm_ptr(mem, gpa, len);
    if (!dst)
        return -EFAULT;
    memcpy(dst, src, len);
    return 0;
}
