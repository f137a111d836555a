/* The aarch64 platform as the generic VMM sees it: the KVM capabilities it
 * needs, where the UART and the virtio-mmio windows sit (QEMU virt's map,
 * layout.h), how the guest learns of a virtio device (the device tree),
 * how a stuck vCPU is described, and where RAM goes. */
#include "arch/arch.h"

#include <errno.h>
#include <stdio.h>
#include <sys/ioctl.h>

static const struct arch_kvm_cap arm64_caps[] = {
    {KVM_CAP_ONE_REG, "KVM_CAP_ONE_REG"},
    {KVM_CAP_DEVICE_CTRL, "KVM_CAP_DEVICE_CTRL"},
    {KVM_CAP_ARM_PSCI_0_2, "KVM_CAP_ARM_PSCI_0_2"},
    {KVM_CAP_MP_STATE, "KVM_CAP_MP_STATE"},
    {0, NULL},
};

/* KVM_IRQ_LINE's encoding of a shared peripheral interrupt: its type in
 * bits 27:24 and its GIC INTID (32 + SPI number) in bits 15:0. */
#define ARM64_IRQ_LINE_SPI(spi)                                                \
    ((KVM_ARM_IRQ_TYPE_SPI << KVM_ARM_IRQ_TYPE_SHIFT) | (32 + (spi)))

/* The UART on the MMIO bus, its level interrupt driven through
 * KVM_IRQ_LINE (8 byte registers: reg-shift 0, as the device tree
 * says); no i8042 (PSCI resets and powers off); no boot timer yet. */
static const struct arch_platform arm64_platform = {
    .uart = {ARCH_BUS_MMIO, ARM64_UART_BASE, 8,
             ARM64_IRQ_LINE_SPI(ARM64_SPI_UART)},
    .console_param = "console=ttyS0",
};

const struct arch_kvm_cap *arch_kvm_caps(void)
{
    return arm64_caps;
}

const struct arch_platform *arch_platform(void)
{
    return &arm64_platform;
}

/* A virtio slot's irq is what KVM_IRQFD takes: under the vGIC's default
 * routing GSI n is SPI n. */
int arch_virtio_slot(unsigned int n, struct arch_place *out)
{
    if (n >= ARM64_VIRTIO_MAX)
        return -ENOSPC;
    *out = (struct arch_place){
        .bus = ARCH_BUS_MMIO,
        .base = ARM64_VIRTIO_BASE + n * ARM64_VIRTIO_SIZE,
        .size = ARM64_VIRTIO_SIZE,
        .irq = ARM64_SPI_VIRTIO_BASE + n,
    };
    return 0;
}

int arch_virtio_announce(struct arch_vm *arch, struct cmdline *cmdline,
                         const struct arch_place *slot)
{
    (void)cmdline;
    if (arch->nr_virtio >= ARM64_VIRTIO_MAX)
        return -ENOSPC;
    arch->virtio[arch->nr_virtio++] = (struct arm64_fdt_dev){
        .base = slot->base, .size = slot->size, .spi = slot->irq};
    return 0;
}

void arch_vcpu_dump(int vcpu_fd, unsigned int index, FILE *f)
{
    uint64_t pc, pstate, sp, lr;
    if (arm64_get_reg(vcpu_fd, ARM64_CORE_REG(regs.pc), &pc) < 0 ||
        arm64_get_reg(vcpu_fd, ARM64_CORE_REG(regs.pstate), &pstate) < 0 ||
        arm64_get_reg(vcpu_fd, ARM64_CORE_REG(sp_el1), &sp) < 0 ||
        arm64_get_reg(vcpu_fd, ARM64_CORE_REG(regs.regs[30]), &lr) < 0)
        return;
    fprintf(f,
            "runvm: vCPU %u: pc 0x%llx pstate 0x%llx sp_el1 0x%llx lr "
            "0x%llx\n",
            index, (unsigned long long)pc, (unsigned long long)pstate,
            (unsigned long long)sp, (unsigned long long)lr);
}

int arch_ram_layout(uint64_t ram_size, struct gm_region *out, unsigned int *n)
{
    if (ram_size == 0 || ram_size % (4 * ARM64_KiB) != 0 ||
        ram_size > ARM64_RAM_MAX)
        return -EINVAL;
    out[0] = (struct gm_region){.gpa = ARM64_RAM_BASE, .size = ram_size};
    *n = 1;
    return 0;
}

int arch_check_kvm(char *err, size_t err_len)
{
    /* An arm64 /dev/kvm is always the CPU's own virtualization. */
    (void)err;
    (void)err_len;
    return 0;
}

unsigned int arch_max_cpus(void)
{
    return ARM64_MAX_CPUS;
}

uint64_t arch_min_mem(void)
{
    return 64 * ARM64_MiB;
}
