#include "vmm/guest_mem.h"

#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>

#include "boot/x86_64/layout.h"

int gm_layout(struct guest_mem *mem, uint64_t ram_size)
{
    memset(mem, 0, sizeof(*mem));
    if (ram_size == 0 || ram_size % (4 * KiB) != 0)
        return -EINVAL;
    uint64_t low = ram_size < LAYOUT_MMIO_HOLE_START ? ram_size
                                                     : LAYOUT_MMIO_HOLE_START;
    mem->regions[0] = (struct gm_region){.gpa = 0, .size = low};
    mem->nr_regions = 1;
    if (ram_size > low) {
        mem->regions[1] = (struct gm_region){.gpa = LAYOUT_MMIO_HOLE_END,
                                             .size = ram_size - low};
        mem->nr_regions = 2;
    }
    mem->ram_size = ram_size;
    return 0;
}

/* An anonymous mapping of size bytes at a GM_HUGE_ALIGN-aligned address,
 * asked to be backed by transparent huge pages. Aligned, because KVM maps
 * a 2 MiB guest page with one nested-page-table entry only where the host
 * page behind it is a 2 MiB page too: the guest then takes one nested page
 * fault per 2 MiB it first touches instead of 512, and its TLB misses walk
 * a level less. MAP_NORESERVE: the guest touches what it uses; untouched
 * RAM costs nothing on the host. NULL (errno set) on failure. */
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
    return start;
}

int gm_init(struct guest_mem *mem, uint64_t ram_size)
{
    int ret = gm_layout(mem, ram_size);
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

int gm_read(const struct guest_mem *mem, void *dst, uint64_t gpa,
            uint64_t len)
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

uint64_t gm_low_size(const struct guest_mem *mem)
{
    return mem->nr_regions ? mem->regions[0].size : 0;
}
