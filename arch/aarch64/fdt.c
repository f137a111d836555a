#include "arch/aarch64/fdt.h"

#include <errno.h>
#include <libfdt.h>
#include <stdio.h>
#include <string.h>

/* GIC interrupt specifiers: <type number flags>. */
#define GIC_SPI         0
#define GIC_PPI         1
#define IRQ_EDGE_RISING 1
#define IRQ_LEVEL_HIGH  4

#define UART_CLOCK_HZ 1843200 /* the 16550A's classic crystal */

/* Each property or node step; any libfdt error ends the build. */
struct fdt_w {
    void *buf;
    int err; /* the first libfdt error, 0 while none */
};

static void chk(struct fdt_w *w, int ret)
{
    if (ret < 0 && !w->err)
        w->err = ret;
}

/* A property of 64-bit cells (two 32-bit cells each, big-endian). */
static void prop_u64s(struct fdt_w *w, const char *name, const uint64_t *v,
                      unsigned int n)
{
    fdt64_t be[8];
    for (unsigned int i = 0; i < n && i < 8; i++)
        be[i] = cpu_to_fdt64(v[i]);
    chk(w, fdt_property(w->buf, name, be, (int)(n * sizeof(*be))));
}

static void prop_u32s(struct fdt_w *w, const char *name, const uint32_t *v,
                      unsigned int n)
{
    fdt32_t be[12];
    for (unsigned int i = 0; i < n && i < 12; i++)
        be[i] = cpu_to_fdt32(v[i]);
    chk(w, fdt_property(w->buf, name, be, (int)(n * sizeof(*be))));
}

/* Node NAME@UNIT (the unit address in hex, as Linux writes it). */
static void begin(struct fdt_w *w, const char *name, uint64_t unit)
{
    char node[64];
    snprintf(node, sizeof(node), "%s@%llx", name, (unsigned long long)unit);
    chk(w, fdt_begin_node(w->buf, node));
}

static void end(struct fdt_w *w)
{
    chk(w, fdt_end_node(w->buf));
}

static void device(struct fdt_w *w, const char *node, const char *compat,
                   const struct arm64_fdt_dev *dev, uint32_t irq_flags)
{
    begin(w, node, dev->base);
    chk(w, fdt_property_string(w->buf, "compatible", compat));
    const uint64_t reg[] = {dev->base, dev->size};
    prop_u64s(w, "reg", reg, 2);
    const uint32_t irq[] = {GIC_SPI, dev->spi, irq_flags};
    prop_u32s(w, "interrupts", irq, 3);
}

static int invalid(char *err, size_t err_len, const char *why)
{
    snprintf(err, err_len, "device tree: %s", why);
    return -EINVAL;
}

int arm64_fdt_build(void *buf, size_t len, const struct arm64_fdt_desc *d,
                    size_t *size, char *err, size_t err_len)
{
    if (d->nr_cpus < 1 || d->nr_cpus > ARM64_MAX_CPUS)
        return invalid(err, err_len, "vCPUs must be 1 to 123");
    if (d->nr_virtio > ARM64_VIRTIO_MAX)
        return invalid(err, err_len, "more virtio-mmio devices than slots");
    if (!d->ram_size || d->ram_base > UINT64_MAX - d->ram_size)
        return invalid(err, err_len, "no RAM");
    if ((d->initrd_start || d->initrd_end) &&
        (d->initrd_end <= d->initrd_start || d->initrd_start < d->ram_base ||
         d->initrd_end > d->ram_base + d->ram_size))
        return invalid(err, err_len, "the initramfs is not inside RAM");
    if (len > ARM64_FDT_MAX)
        len = ARM64_FDT_MAX;
    struct fdt_w w = {.buf = buf};
    chk(&w, fdt_create(buf, (int)len));
    chk(&w, fdt_finish_reservemap(buf));
    chk(&w, fdt_begin_node(buf, ""));
    chk(&w, fdt_property_string(buf, "compatible", "linux,dummy-virt"));
    const uint32_t two = 2, one = 1, zero = 0;
    prop_u32s(&w, "#address-cells", &two, 1);
    prop_u32s(&w, "#size-cells", &two, 1);
    const uint32_t gic = ARM64_FDT_GIC_PHANDLE;
    prop_u32s(&w, "interrupt-parent", &gic, 1);

    chk(&w, fdt_begin_node(buf, "chosen"));
    chk(&w, fdt_property_string(buf, "bootargs", d->cmdline ? d->cmdline : ""));
    char stdout_path[48];
    snprintf(stdout_path, sizeof(stdout_path), "/uart@%llx",
             (unsigned long long)d->uart.base);
    chk(&w, fdt_property_string(buf, "stdout-path", stdout_path));
    if (d->initrd_end) {
        prop_u64s(&w, "linux,initrd-start", &d->initrd_start, 1);
        prop_u64s(&w, "linux,initrd-end", &d->initrd_end, 1);
    }
    end(&w);

    begin(&w, "memory", d->ram_base);
    chk(&w, fdt_property_string(buf, "device_type", "memory"));
    const uint64_t mem[] = {d->ram_base, d->ram_size};
    prop_u64s(&w, "reg", mem, 2);
    end(&w);

    chk(&w, fdt_begin_node(buf, "cpus"));
    prop_u32s(&w, "#address-cells", &one, 1);
    prop_u32s(&w, "#size-cells", &zero, 1);
    for (unsigned int i = 0; i < d->nr_cpus; i++) {
        begin(&w, "cpu", i);
        chk(&w, fdt_property_string(buf, "device_type", "cpu"));
        chk(&w, fdt_property_string(buf, "compatible", "arm,arm-v8"));
        chk(&w, fdt_property_string(buf, "enable-method", "psci"));
        /* MPIDR affinity: KVM gives vCPU n Aff0 = n % 16, Aff1 = n / 16. */
        const uint32_t mpidr = (i / 16) << 8 | (i % 16);
        prop_u32s(&w, "reg", &mpidr, 1);
        end(&w);
    }
    end(&w);

    chk(&w, fdt_begin_node(buf, "psci"));
    chk(&w, fdt_property_string(buf, "compatible", "arm,psci-0.2"));
    chk(&w, fdt_property_string(buf, "method", "hvc"));
    end(&w);

    begin(&w, "intc", ARM64_GIC_DIST_BASE);
    chk(&w, fdt_property_string(buf, "compatible", "arm,gic-v3"));
    const uint32_t three = 3;
    prop_u32s(&w, "#interrupt-cells", &three, 1);
    chk(&w, fdt_property(buf, "interrupt-controller", NULL, 0));
    const uint64_t gic_reg[] = {ARM64_GIC_DIST_BASE, ARM64_GIC_DIST_SIZE,
                                ARM64_GIC_REDIST_BASE,
                                ARM64_GIC_REDIST_SIZE * d->nr_cpus};
    prop_u64s(&w, "reg", gic_reg, 4);
    prop_u32s(&w, "phandle", &gic, 1);
    end(&w);

    chk(&w, fdt_begin_node(buf, "timer"));
    chk(&w, fdt_property_string(buf, "compatible", "arm,armv8-timer"));
    const uint32_t timer[] = {GIC_PPI, ARM64_PPI_TIMER_SEC,  IRQ_LEVEL_HIGH,
                              GIC_PPI, ARM64_PPI_TIMER_NS,   IRQ_LEVEL_HIGH,
                              GIC_PPI, ARM64_PPI_TIMER_VIRT, IRQ_LEVEL_HIGH,
                              GIC_PPI, ARM64_PPI_TIMER_HYP,  IRQ_LEVEL_HIGH};
    prop_u32s(&w, "interrupts", timer, 12);
    chk(&w, fdt_property(buf, "always-on", NULL, 0));
    end(&w);

    device(&w, "uart", "ns16550a", &d->uart, IRQ_LEVEL_HIGH);
    const uint32_t clock = UART_CLOCK_HZ;
    prop_u32s(&w, "clock-frequency", &clock, 1);
    end(&w);

    for (unsigned int i = 0; i < d->nr_virtio; i++) {
        device(&w, "virtio_mmio", "virtio,mmio", &d->virtio[i],
               IRQ_EDGE_RISING);
        chk(&w, fdt_property(buf, "dma-coherent", NULL, 0));
        end(&w);
    }
    end(&w); /* / */
    chk(&w, fdt_finish(buf));
    if (w.err) {
        snprintf(err, err_len, "device tree: %s",
                 w.err == -FDT_ERR_NOSPACE ? "does not fit"
                                           : fdt_strerror(w.err));
        return w.err == -FDT_ERR_NOSPACE ? -ENOSPC : -EINVAL;
    }
    *size = fdt_totalsize(buf);
    return 0;
}
