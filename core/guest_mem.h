/* Guest RAM: the one gate that turns a guest-physical address into a host
 * pointer. Nothing else in runvm may do that. */
#ifndef RUNVM_GUEST_MEM_H
#define RUNVM_GUEST_MEM_H

#include <stddef.h>
#include <stdint.h>

#define GM_MAX_REGIONS 2
#define GM_PAGE_SIZE   4096ULL
/* Each region's host mapping starts on this boundary (a huge page). */
#define GM_HUGE_ALIGN (2ULL * 1024 * 1024)

struct gm_region {
    uint64_t gpa;  /* first guest-physical address */
    uint64_t size; /* bytes */
    uint8_t *hva;  /* host mapping */
};

struct guest_mem {
    struct gm_region regions[GM_MAX_REGIONS];
    unsigned int nr_regions;
    uint64_t ram_size; /* total bytes of RAM over all regions */
};

/* Maps regions layout[0..n) (gpa and size set, in ascending order, page
 * aligned, not overlapping; the arch decides where they go) anonymously,
 * each GM_HUGE_ALIGN-aligned and advised for transparent huge pages.
 * 0, -EINVAL for a bad layout, or -errno. */
int gm_init_regions(struct guest_mem *mem, const struct gm_region *layout,
                    unsigned int n) __attribute__((warn_unused_result));

/* As gm_init_regions, but region i holds fd's bytes from offsets[i]
 * (page-aligned), mapped copy-on-write: a VM restored from a snapshot's
 * memory file shares every page it does not write with the file's other
 * users and reads only what it touches. The caller checked the file is
 * long enough (a page past its end faults with SIGBUS). 0, -EINVAL for a
 * bad layout or offset, or -errno. */
int gm_init_file(struct guest_mem *mem, const struct gm_region *layout,
                 unsigned int n, int fd, const uint64_t *offsets)
    __attribute__((warn_unused_result));

/* gm_init_regions with one region of ram_size bytes at guest address 0. */
int gm_init(struct guest_mem *mem, uint64_t ram_size)
    __attribute__((warn_unused_result));

/* Checks layout as gm_init_regions does and describes it in mem without
 * mapping anything (hva NULL); for tests and planning. 0 or -EINVAL. */
int gm_describe(struct guest_mem *mem, const struct gm_region *layout,
                unsigned int n) __attribute__((warn_unused_result));

/* Unmaps what gm_init mapped. Safe on a zeroed struct. */
void gm_free(struct guest_mem *mem);

/* Host pointer to [gpa, gpa+len) if the whole range lies in one RAM region,
 * else NULL. len 0 is allowed (checks gpa only). Overflow-safe. */
void *gm_ptr(const struct guest_mem *mem, uint64_t gpa, uint64_t len);

/* Copies between guest RAM and host buffers through gm_ptr. 0 or -EFAULT. */
int gm_read(const struct guest_mem *mem, void *dst, uint64_t gpa, uint64_t len);
int gm_write(const struct guest_mem *mem, uint64_t gpa, const void *src,
             uint64_t len);

#endif
