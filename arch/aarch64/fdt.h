/* The device tree an aarch64 guest boots with (#18), built with libfdt:
 * memory, the vCPUs (PSCI 0.2 through HVC: KVM's), the GICv3, the
 * architected timer, the UART, one node per virtio-mmio device, and
 * /chosen with the command line and the initramfs. Pure: a description
 * in, a blob out, so any host tests it. */
#ifndef RUNVM_ARM64_FDT_H
#define RUNVM_ARM64_FDT_H

#include <stddef.h>
#include <stdint.h>

#include "arch/aarch64/layout.h"

struct arm64_fdt_dev {
    uint64_t base, size;
    unsigned int spi; /* GIC shared peripheral interrupt (INTID 32 + spi) */
};

struct arm64_fdt_desc {
    uint64_t ram_base, ram_size;
    unsigned int nr_cpus; /* 1 to ARM64_MAX_CPUS */
    const char *cmdline;
    uint64_t initrd_start, initrd_end; /* [start, end); both 0: none */
    struct arm64_fdt_dev uart;
    const struct arm64_fdt_dev *virtio;
    unsigned int nr_virtio; /* at most ARM64_VIRTIO_MAX */
};

/* Phandle of the interrupt controller, every interrupt's parent. */
#define ARM64_FDT_GIC_PHANDLE 1

/* Writes the tree for d into buf (at most len bytes, and at most
 * ARM64_FDT_MAX). 0 with the blob's size in *size, or -EINVAL (a
 * description that cannot be: no CPUs or too many, an initramfs outside
 * RAM, too many devices) / -ENOSPC (it does not fit) with why in err. */
int arm64_fdt_build(void *buf, size_t len, const struct arm64_fdt_desc *d,
                    size_t *size, char *err, size_t err_len)
    __attribute__((warn_unused_result));

#endif
