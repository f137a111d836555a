/* aarch64 VM and vCPU set-up (docs/aarch64.md): the in-kernel GICv3, vCPUs
 * with PSCI 0.2 (KVM's own: CPU_ON brings up the secondaries, SYSTEM_OFF
 * and SYSTEM_RESET end the VM), and the kernel Image, initramfs and device
 * tree in RAM with vCPU 0's boot registers. */
#include "arch/arch.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "arch/aarch64/image.h"
#include "arch/file.h"

/* SGIs and PPIs (32), then the SPIs up to the last virtio slot's, rounded
 * up to the vGIC's step of 32. */
#define ARM64_GIC_NR_IRQS                                                      \
    ((32 + ARM64_SPI_VIRTIO_BASE + ARM64_VIRTIO_MAX + 31) / 32 * 32)

/* EL1 with SP_EL1, debug, SError, IRQ and FIQ masked: booting.rst's entry
 * state, and KVM's reset value. */
#define ARM64_PSTATE_BOOT 0x3c5ULL

static int gic_attr(int gic_fd, uint32_t group, uint64_t attr, void *val,
                    const char *step, const char **what)
{
    struct kvm_device_attr a = {
        .group = group, .attr = attr, .addr = (uintptr_t)val};
    if (ioctl(gic_fd, KVM_SET_DEVICE_ATTR, &a) < 0) {
        *what = step;
        return -errno;
    }
    return 0;
}

int arch_vm_init(struct arch_vm *arch, int kvm_fd, int vm_fd, const char **what)
{
    (void)kvm_fd;
    memset(arch, 0, sizeof(*arch));
    struct kvm_create_device dev = {.type = KVM_DEV_TYPE_ARM_VGIC_V3};
    if (ioctl(vm_fd, KVM_CREATE_DEVICE, &dev) < 0) {
        /* ENODEV: a host without a GICv3 (docs/aarch64.md §6). */
        *what = errno == ENODEV ? "KVM_CREATE_DEVICE (this host has no "
                                  "GICv3 for its guests)"
                                : "KVM_CREATE_DEVICE (GICv3)";
        return -errno;
    }
    arch->gic_fd = (int)dev.fd;
    arch->has_gic = true;
    uint64_t dist = ARM64_GIC_DIST_BASE, redist = ARM64_GIC_REDIST_BASE;
    int ret = gic_attr(arch->gic_fd, KVM_DEV_ARM_VGIC_GRP_ADDR,
                       KVM_VGIC_V3_ADDR_TYPE_DIST, &dist,
                       "GICv3 distributor address", what);
    if (ret == 0)
        ret = gic_attr(arch->gic_fd, KVM_DEV_ARM_VGIC_GRP_ADDR,
                       KVM_VGIC_V3_ADDR_TYPE_REDIST, &redist,
                       "GICv3 redistributor address", what);
    if (ret < 0)
        arch_vm_free(arch);
    return ret;
}

void arch_vm_free(struct arch_vm *arch)
{
    if (arch->has_gic)
        close(arch->gic_fd);
    arch->has_gic = false;
}

int arch_vcpus_created(struct arch_vm *arch, int vm_fd, const int *vcpu_fds,
                       unsigned int nr, const char **what)
{
    if (ioctl(vm_fd, KVM_ARM_PREFERRED_TARGET, &arch->init) < 0) {
        *what = "KVM_ARM_PREFERRED_TARGET";
        return -errno;
    }
    /* PSCI 0.2 or later (SYSTEM_OFF, CPU_ON); nothing that needs its own
     * set-up (SVE, PMU, pointer authentication). */
    memset(arch->init.features, 0, sizeof(arch->init.features));
    arch->init.features[0] = 1U << KVM_ARM_VCPU_PSCI_0_2;
    for (unsigned int i = 0; i < nr; i++) {
        struct kvm_vcpu_init init = arch->init;
        if (i > 0) /* until the guest's PSCI CPU_ON */
            init.features[0] |= 1U << KVM_ARM_VCPU_POWER_OFF;
        if (ioctl(vcpu_fds[i], KVM_ARM_VCPU_INIT, &init) < 0) {
            *what = "KVM_ARM_VCPU_INIT";
            return -errno;
        }
    }
    /* The vGIC is complete once every vCPU exists (its redistributors
     * follow their count): size it, then initialise it, which installs the
     * default routing (GSI n = SPI n) irqfds use. */
    uint32_t nr_irqs = ARM64_GIC_NR_IRQS;
    int ret = gic_attr(arch->gic_fd, KVM_DEV_ARM_VGIC_GRP_NR_IRQS, 0, &nr_irqs,
                       "GICv3 interrupt count", what);
    if (ret == 0)
        ret = gic_attr(arch->gic_fd, KVM_DEV_ARM_VGIC_GRP_CTRL,
                       KVM_DEV_ARM_VGIC_CTRL_INIT, NULL, "GICv3 init", what);
    return ret;
}

static int read_image(int fd, uint64_t size, const char *path,
                      struct arm64_image *img, char *err, size_t err_len)
{
    uint8_t head[ARM64_IMAGE_HEAD_LEN];
    if (size < sizeof(head)) {
        snprintf(err, err_len,
                 "%s: %llu bytes: too short for an arm64 kernel "
                 "Image",
                 path, (unsigned long long)size);
        return -ENOEXEC;
    }
    int ret = arch_pread_full(fd, head, sizeof(head), 0);
    if (ret < 0) {
        snprintf(err, err_len, "%s: cannot read: %s", path, strerror(-ret));
        return ret;
    }
    char why[160];
    ret = arm64_image_parse(head, sizeof(head), size, img, why, sizeof(why));
    if (ret < 0)
        snprintf(err, err_len, "%s: %s", path, why);
    return ret;
}

int arch_check_kernel(int kernel_fd, uint64_t kernel_size,
                      const char *kernel_path, char *err, size_t err_len)
{
    struct arm64_image img;
    return read_image(kernel_fd, kernel_size, kernel_path, &img, err, err_len);
}

int arch_load(struct arch_vm *arch, const struct guest_mem *mem,
              const struct arch_boot_files *files, char *err, size_t err_len)
{
    const struct gm_region *ram = &mem->regions[0];
    struct arm64_image img;
    int ret = read_image(files->kernel_fd, files->kernel_size,
                         files->kernel_path, &img, err, err_len);
    if (ret < 0)
        return ret;
    uint64_t kernel;
    if (arm64_image_place(&img, ram->gpa, ram->size, &kernel) < 0) {
        snprintf(err, err_len,
                 "%s: the kernel needs %llu MiB of RAM to boot; raise --mem",
                 files->kernel_path,
                 (unsigned long long)((img.text_offset + img.image_size +
                                       ARM64_IMAGE_ALIGN + ARM64_RAM_TOP_GAP +
                                       2 * ARM64_FDT_MAX) >>
                                      20));
        return -E2BIG;
    }
    void *dst = gm_ptr(mem, kernel, files->kernel_size);
    if (!dst)
        return -EFAULT;
    ret = arch_pread_full(files->kernel_fd, dst, files->kernel_size, 0);
    if (ret < 0) {
        snprintf(err, err_len, "%s: cannot read: %s", files->kernel_path,
                 strerror(-ret));
        return ret;
    }
    uint64_t kernel_end = kernel + img.image_size;

    /* The device tree in the last whole 2 MiB block below the top (of RAM,
     * or of the window the initramfs must share with the kernel), the
     * initramfs page-aligned right under it. */
    uint64_t top = ram->gpa + ram->size;
    if (top > ram->gpa + ARM64_INITRD_WINDOW)
        top = ram->gpa + ARM64_INITRD_WINDOW;
    uint64_t fdt = 0;
    if (top >= ram->gpa + ARM64_RAM_TOP_GAP + 2 * ARM64_FDT_MAX)
        fdt =
            ((top - ARM64_RAM_TOP_GAP) & ~(ARM64_FDT_MAX - 1)) - ARM64_FDT_MAX;
    if (fdt < kernel_end) {
        snprintf(err, err_len,
                 "%s: no room for the device tree above the kernel; raise "
                 "--mem",
                 files->kernel_path);
        return -E2BIG;
    }
    uint64_t initrd = fdt, initrd_size = 0;
    if (files->initrd_fd >= 0) {
        initrd_size = files->initrd_size;
        if (initrd_size > fdt - kernel_end) {
            snprintf(err, err_len,
                     "%s: initramfs is %llu MiB; with this --mem at most "
                     "%llu MiB fit above the kernel — raise --mem",
                     files->initrd_path,
                     (unsigned long long)((initrd_size + ARM64_MiB - 1) >> 20),
                     (unsigned long long)((fdt - kernel_end) >> 20));
            return -E2BIG;
        }
        initrd = (fdt - initrd_size) & ~(4 * ARM64_KiB - 1);
        if (initrd < kernel_end) {
            snprintf(err, err_len, "%s: no room above the kernel; raise --mem",
                     files->initrd_path);
            return -E2BIG;
        }
        dst = gm_ptr(mem, initrd, initrd_size);
        if (!dst)
            return -EFAULT;
        ret = arch_pread_full(files->initrd_fd, dst, initrd_size, 0);
        if (ret < 0) {
            snprintf(err, err_len, "%s: cannot read: %s", files->initrd_path,
                     strerror(-ret));
            return ret;
        }
    }

    const struct arch_place *uart = &arch_platform()->uart;
    struct arm64_fdt_desc d = {
        .ram_base = ram->gpa,
        .ram_size = ram->size,
        .nr_cpus = files->nr_cpus,
        .cmdline = files->cmdline,
        .initrd_start = initrd_size ? initrd : 0,
        .initrd_end = initrd_size ? initrd + initrd_size : 0,
        .uart = {uart->base, ARM64_UART_SIZE, ARM64_SPI_UART},
        .virtio = arch->virtio,
        .nr_virtio = arch->nr_virtio,
    };
    void *blob = gm_ptr(mem, fdt, ARM64_FDT_MAX);
    size_t size;
    char why[160];
    if (!blob)
        return -EFAULT;
    ret = arm64_fdt_build(blob, ARM64_FDT_MAX, &d, &size, why, sizeof(why));
    if (ret < 0) {
        snprintf(err, err_len, "%s", why);
        return ret;
    }
    arch->entry = kernel;
    arch->fdt_addr = fdt;
    return 0;
}

int arch_vcpu_init(struct arch_vm *arch, int vcpu_fd, unsigned int index,
                   unsigned int nr_cpus, const char **what)
{
    (void)nr_cpus;
    /* The secondaries stay off until the guest's PSCI CPU_ON, which sets
     * their entry and context itself. */
    if (index > 0)
        return 0;
    *what = "KVM_SET_ONE_REG (boot registers)";
    int ret =
        arm64_set_reg(vcpu_fd, ARM64_CORE_REG(regs.regs[0]), arch->fdt_addr);
    for (int i = 1; ret == 0 && i < 4; i++)
        ret = arm64_set_reg(vcpu_fd, ARM64_CORE_REG(regs.regs[i]), 0);
    if (ret == 0)
        ret = arm64_set_reg(vcpu_fd, ARM64_CORE_REG(regs.pstate),
                            ARM64_PSTATE_BOOT);
    if (ret == 0)
        ret = arm64_set_reg(vcpu_fd, ARM64_CORE_REG(regs.pc), arch->entry);
    return ret;
}

/* Snapshots of aarch64 VMs are not written yet (docs/aarch64.md §5 has
 * what they need): saying so makes runvm boot cold. */
int arch_vm_save(struct arch_vm *arch, int vm_fd, struct state_w *w,
                 const char **what)
{
    (void)arch, (void)vm_fd, (void)w;
    *what = "aarch64 snapshots (not yet supported)";
    return -ENOTSUP;
}

int arch_vm_restore(struct arch_vm *arch, int vm_fd, struct state_r *r,
                    const char **what)
{
    (void)arch, (void)vm_fd, (void)r;
    *what = "aarch64 snapshots (not yet supported)";
    return -ENOTSUP;
}

int arch_vcpu_save(struct arch_vm *arch, int kvm_fd, int vcpu_fd,
                   struct state_w *w, const char **what)
{
    (void)arch, (void)kvm_fd, (void)vcpu_fd, (void)w;
    *what = "aarch64 snapshots (not yet supported)";
    return -ENOTSUP;
}

int arch_vcpu_restore(struct arch_vm *arch, int vcpu_fd, struct state_r *r,
                      char *err, size_t err_len)
{
    (void)arch, (void)vcpu_fd, (void)r;
    snprintf(err, err_len, "aarch64 snapshots are not yet supported");
    return -ENOTSUP;
}
