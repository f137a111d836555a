#include "arch/arch.h"

#include <cpuid.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "arch/file.h"
#include "arch/x86_64/bootparams.h"
#include "arch/x86_64/bzimage.h"
#include "arch/x86_64/cpu.h"
#include "arch/x86_64/layout.h"
#include "arch/x86_64/mptable.h"

/* Below this the kernel cannot decompress itself plus a small initramfs. */
#define X86_MIN_MEM (32ULL << 20)

int arch_vm_init(struct arch_vm *arch, int kvm_fd, int vm_fd, const char **what)
{
    memset(arch, 0, sizeof(*arch));
    /* VMX needs the TSS and identity map pages in guest-physical space
     * (SVM ignores them); they sit in the hole, away from RAM and MMIO. */
    if (ioctl(vm_fd, KVM_SET_TSS_ADDR, (unsigned long)LAYOUT_TSS_ADDR) < 0) {
        *what = "KVM_SET_TSS_ADDR";
        return -errno;
    }
    uint64_t identity = LAYOUT_IDENTITY_MAP;
    if (ioctl(vm_fd, KVM_SET_IDENTITY_MAP_ADDR, &identity) < 0) {
        *what = "KVM_SET_IDENTITY_MAP_ADDR";
        return -errno;
    }
    /* 8259 PICs, IOAPIC and LAPICs in the kernel: no exits for them. */
    if (ioctl(vm_fd, KVM_CREATE_IRQCHIP, 0) < 0) {
        *what = "KVM_CREATE_IRQCHIP";
        return -errno;
    }
    /* The PIT, with port 0x61's speaker bits answered in-kernel too. */
    struct kvm_pit_config pit = {.flags = KVM_PIT_SPEAKER_DUMMY};
    if (ioctl(vm_fd, KVM_CREATE_PIT2, &pit) < 0) {
        *what = "KVM_CREATE_PIT2";
        return -errno;
    }
    size_t size = sizeof(struct kvm_cpuid2) +
                  X86_CPUID_MAX * sizeof(struct kvm_cpuid_entry2);
    arch->cpuid = calloc(1, size);
    if (!arch->cpuid) {
        *what = "CPUID buffer";
        return -ENOMEM;
    }
    arch->cpuid->nent = X86_CPUID_MAX;
    if (ioctl(kvm_fd, KVM_GET_SUPPORTED_CPUID, arch->cpuid) < 0) {
        int ret = -errno;
        *what = "KVM_GET_SUPPORTED_CPUID";
        arch_vm_free(arch);
        return ret;
    }
    cpu_cpuid_filter(arch->cpuid, ioctl(kvm_fd, KVM_CHECK_EXTENSION,
                                        KVM_CAP_TSC_DEADLINE_TIMER) > 0);
    return 0;
}

void arch_vm_free(struct arch_vm *arch)
{
    free(arch->cpuid);
    arch->cpuid = NULL;
    free(arch->msr_index);
    arch->msr_index = NULL;
}

static int read_header(int fd, uint64_t size, const char *path,
                       struct bzimage *bz, char *err, size_t err_len)
{
    uint8_t head[BZIMAGE_HEAD_LEN];
    uint64_t head_len = size < sizeof(head) ? size : sizeof(head);
    int ret = arch_pread_full(fd, head, head_len, 0);
    if (ret < 0) {
        snprintf(err, err_len, "%s: cannot read: %s", path, strerror(-ret));
        return ret;
    }
    char why[160];
    ret = bzimage_parse(head, (size_t)head_len, size, LAYOUT_KERNEL_ADDR, bz,
                        why, sizeof(why));
    if (ret < 0)
        snprintf(err, err_len, "%s: %s", path, why);
    return ret;
}

int arch_check_kernel(int kernel_fd, uint64_t kernel_size,
                      const char *kernel_path, char *err, size_t err_len)
{
    struct bzimage bz;
    return read_header(kernel_fd, kernel_size, kernel_path, &bz, err, err_len);
}

int arch_load(struct arch_vm *arch, const struct guest_mem *mem,
              const struct arch_boot_files *files, char *err, size_t err_len)
{
    struct bzimage bz;
    int ret = read_header(files->kernel_fd, files->kernel_size,
                          files->kernel_path, &bz, err, err_len);
    if (ret < 0)
        return ret;
    if (bz.mem_end > x86_low_ram(mem)) {
        snprintf(err, err_len,
                 "%s: the kernel needs %llu MiB of RAM to "
                 "boot; raise --mem",
                 files->kernel_path,
                 (unsigned long long)((bz.mem_end + MiB - 1) / MiB));
        return -E2BIG;
    }
    size_t cmdline_len = strlen(files->cmdline);
    if (cmdline_len > bz.cmdline_max || cmdline_len >= LAYOUT_CMDLINE_MAX) {
        snprintf(err, err_len,
                 "kernel command line is %zu bytes; %s "
                 "accepts at most %u",
                 cmdline_len, files->kernel_path, bz.cmdline_max);
        return -E2BIG;
    }

    /* The protected-mode kernel straight into guest RAM: no host copy. */
    void *dst = gm_ptr(mem, bz.load_addr, bz.kernel_size);
    if (!dst) {
        snprintf(err, err_len, "%s: kernel does not fit in guest RAM",
                 files->kernel_path);
        return -E2BIG;
    }
    ret = arch_pread_full(files->kernel_fd, dst, bz.kernel_size,
                          bz.kernel_offset);
    if (ret < 0) {
        snprintf(err, err_len, "%s: cannot read: %s", files->kernel_path,
                 strerror(-ret));
        return ret;
    }

    uint64_t initrd_addr = 0;
    if (files->initrd_fd >= 0) {
        ret =
            bootparams_initrd_addr(&bz, mem, files->initrd_size, &initrd_addr);
        if (ret < 0) {
            uint64_t top = x86_low_ram(mem);
            if ((uint64_t)bz.initrd_addr_max + 1 < top)
                top = (uint64_t)bz.initrd_addr_max + 1;
            snprintf(err, err_len,
                     "%s: initramfs is %llu MiB; with this "
                     "--mem at most %llu MiB fit above the kernel — raise "
                     "--mem",
                     files->initrd_path,
                     (unsigned long long)((files->initrd_size + MiB - 1) / MiB),
                     (unsigned long long)(top > bz.mem_end
                                              ? (top - bz.mem_end) / MiB
                                              : 0));
            return ret;
        }
        dst = gm_ptr(mem, initrd_addr, files->initrd_size);
        if (!dst)
            return -EFAULT;
        ret = arch_pread_full(files->initrd_fd, dst, files->initrd_size, 0);
        if (ret < 0) {
            snprintf(err, err_len, "%s: cannot read: %s", files->initrd_path,
                     strerror(-ret));
            return ret;
        }
    }

    if (gm_write(mem, LAYOUT_CMDLINE_ADDR, files->cmdline, cmdline_len + 1) < 0)
        return -EFAULT;
    struct boot_params *zp = gm_ptr(mem, LAYOUT_ZERO_PAGE_ADDR, sizeof(*zp));
    if (!zp)
        return -EFAULT;
    bootparams_build(zp, &bz, mem, LAYOUT_CMDLINE_ADDR, initrd_addr,
                     files->initrd_fd >= 0 ? files->initrd_size : 0);

    uint8_t *mp = gm_ptr(mem, LAYOUT_MPTABLE_ADDR, LAYOUT_MPTABLE_MAX);
    if (!mp)
        return -EFAULT;
    ret = mptable_build(mp, LAYOUT_MPTABLE_MAX, LAYOUT_MPTABLE_ADDR,
                        files->nr_cpus);
    if (ret < 0) {
        snprintf(err, err_len, "cannot describe %u CPUs in an MP table",
                 files->nr_cpus);
        return ret;
    }
    ret = cpu_write_tables(mem);
    if (ret < 0) {
        snprintf(err, err_len, "cannot write boot page tables");
        return ret;
    }
    arch->entry = bz.entry64;
    return 0;
}

int arch_vcpus_created(struct arch_vm *arch, int vm_fd, const int *vcpu_fds,
                       unsigned int nr, const char **what)
{
    (void)arch, (void)vm_fd, (void)vcpu_fds, (void)nr, (void)what;
    return 0;
}

int arch_vcpu_init(struct arch_vm *arch, int vcpu_fd, unsigned int index,
                   unsigned int nr_cpus, const char **what)
{
    return cpu_setup_vcpu(vcpu_fd, index, nr_cpus, arch->cpuid, arch->entry,
                          what);
}

int arch_check_kvm(char *err, size_t err_len)
{
    unsigned int a, b, c1 = 0, c2 = 0, d;
    __get_cpuid(1, &a, &b, &c1, &d);
    __get_cpuid(0x80000001, &a, &b, &c2, &d);
    if (cpu_has_hw_virt(c1, c2))
        return 0;
    snprintf(err, err_len,
             "/dev/kvm: this CPU has neither VT-x nor AMD-V, "
             "so this KVM is a software one (kvm-pvm?) that cannot boot an "
             "unmodified Linux guest — run runvm where hardware "
             "virtualization is on, or in the nested host: "
             "scripts/with-kvm runvm ...");
    return -ENOTSUP;
}

unsigned int arch_max_cpus(void)
{
    return MPTABLE_MAX_CPUS;
}

uint64_t arch_min_mem(void)
{
    return X86_MIN_MEM;
}
