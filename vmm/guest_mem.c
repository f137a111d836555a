#include "vmm/guest_mem.h"

#include <errno.h>
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

int gm_init(struct guest_mem *mem, uint64_t ram_size)
{
    int ret = gm_layout(mem, ram_size);
    if (ret < 0)
        return ret;
    for (unsigned int i = 0; i < mem->nr_regions; i++) {
        struct gm_region *r = &mem->regions[i];
        /* MAP_NORESERVE: the guest touches what it uses; untouched RAM
         * costs nothing on the host. */
        void *p = mmap(NULL, r->size, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (p == MAP_FAILED) {
            ret = -errno;
            gm_free(mem);
            return ret;
        }
        r->hva = p;
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
