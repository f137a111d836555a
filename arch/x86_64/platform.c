/* The x86-64 platform as the generic VMM sees it: which KVM capabilities
 * it needs, where its few legacy devices and the virtio-mmio windows sit,
 * how the guest learns of a virtio device (the kernel command line), and
 * how a stuck vCPU is described. */
#include "arch/arch.h"

#include <errno.h>
#include <stdio.h>
#include <sys/ioctl.h>

#include "arch/x86_64/layout.h"

static const struct arch_kvm_cap x86_caps[] = {
    {KVM_CAP_IRQCHIP, "KVM_CAP_IRQCHIP"},
    {KVM_CAP_SET_TSS_ADDR, "KVM_CAP_SET_TSS_ADDR"},
    {KVM_CAP_SET_IDENTITY_MAP_ADDR, "KVM_CAP_SET_IDENTITY_MAP_ADDR"},
    {KVM_CAP_PIT2, "KVM_CAP_PIT2"},
    {KVM_CAP_EXT_CPUID, "KVM_CAP_EXT_CPUID"},
    {0, NULL},
};

/* COM1 with its ISA interrupt; the i8042's data and command ports (only
 * its reset line matters: reboot=k); the boot timer on port 0x440, unused
 * on PCs (Firecracker uses the same port for the same purpose). */
static const struct arch_platform x86_platform = {
    .uart = {ARCH_BUS_PIO, LAYOUT_PORT_COM1, 8, LAYOUT_IRQ_COM1},
    .reset = {ARCH_BUS_PIO, LAYOUT_PORT_I8042_DATA,
              LAYOUT_PORT_I8042_CMD - LAYOUT_PORT_I8042_DATA + 1, 0},
    .boot_timer = {ARCH_BUS_PIO, LAYOUT_PORT_BOOT_TIMER, 1, 0},
    .console_param = "console=ttyS0",
};

const struct arch_kvm_cap *arch_kvm_caps(void)
{
    return x86_caps;
}

const struct arch_platform *arch_platform(void)
{
    return &x86_platform;
}

int arch_virtio_slot(unsigned int n, struct arch_place *out)
{
    if (n >= LAYOUT_VIRTIO_MMIO_MAX ||
        LAYOUT_IRQ_VIRTIO_BASE + n > LAYOUT_IRQ_MAX)
        return -ENOSPC;
    *out = (struct arch_place){
        .bus = ARCH_BUS_MMIO,
        .base = LAYOUT_VIRTIO_MMIO_BASE + n * LAYOUT_VIRTIO_MMIO_SIZE,
        .size = LAYOUT_VIRTIO_MMIO_SIZE,
        .irq = LAYOUT_IRQ_VIRTIO_BASE + n,
    };
    return 0;
}

int arch_virtio_announce(struct arch_vm *arch, struct cmdline *cmdline,
                         const struct arch_place *slot)
{
    (void)arch;
    /* Linux's virtio_mmio.device=<size>@<base>:<irq> (virtio_mmio.c),
     * which needs CONFIG_VIRTIO_MMIO_CMDLINE_DEVICES. */
    int ret = cmdline_appendf(cmdline, "virtio_mmio.device=%lluK@0x%llx:%u",
                              (unsigned long long)(slot->size >> 10),
                              (unsigned long long)slot->base, slot->irq);
    return ret < 0 ? -ENOSPC : 0;
}

void arch_vcpu_dump(int vcpu_fd, unsigned int index, FILE *f)
{
    struct kvm_regs regs;
    struct kvm_sregs sregs;
    if (ioctl(vcpu_fd, KVM_GET_REGS, &regs) < 0 ||
        ioctl(vcpu_fd, KVM_GET_SREGS, &sregs) < 0)
        return;
    /* The registers that place it: mode, paging, instruction. */
    fprintf(f,
            "runvm: vCPU %u: rip 0x%llx rsp 0x%llx cs 0x%x cr0 0x%llx "
            "cr3 0x%llx cr4 0x%llx efer 0x%llx\n",
            index, (unsigned long long)regs.rip, (unsigned long long)regs.rsp,
            sregs.cs.selector, (unsigned long long)sregs.cr0,
            (unsigned long long)sregs.cr3, (unsigned long long)sregs.cr4,
            (unsigned long long)sregs.efer);
}
