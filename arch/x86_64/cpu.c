#include "arch/x86_64/cpu.h"

#include <errno.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>

#include <asm/kvm_para.h>

#include "arch/x86_64/layout.h"

/* Page table entry bits (Intel SDM vol. 3 §4.5). */
#define PTE_PRESENT (1ULL << 0)
#define PTE_WRITE   (1ULL << 1)
#define PTE_PS      (1ULL << 7) /* 2 MiB page in a PD entry */
#define PT_ENTRIES  512

#define X86_CR0_PE  (1ULL << 0)
#define X86_CR0_ET  (1ULL << 4)
#define X86_CR0_PG  (1ULL << 31)
#define X86_CR4_PAE (1ULL << 5)
#define EFER_LME    (1ULL << 8)
#define EFER_LMA    (1ULL << 10)

/* MSR numbers (SDM vol. 4). */
#define MSR_IA32_SYSENTER_CS    0x174
#define MSR_IA32_SYSENTER_ESP   0x175
#define MSR_IA32_SYSENTER_EIP   0x176
#define MSR_STAR                0xc0000081
#define MSR_LSTAR               0xc0000082
#define MSR_CSTAR               0xc0000083
#define MSR_SYSCALL_MASK        0xc0000084
#define MSR_KERNEL_GS_BASE      0xc0000102
#define MSR_IA32_TSC            0x10
#define MSR_IA32_MISC_ENABLE    0x1a0
#define MSR_MTRR_DEF_TYPE       0x2ff
#define MISC_ENABLE_FAST_STRING 1ULL
#define MTRR_ENABLE             (1ULL << 11)
#define MTRR_TYPE_WRBACK        6ULL

/* Local APIC registers and LVT delivery modes (SDM vol. 3 §10.5.1). */
#define APIC_LVT0        0x350
#define APIC_LVT1        0x360
#define APIC_MODE_MASK   0x700
#define APIC_MODE_NMI    0x400
#define APIC_MODE_EXTINT 0x700

/* CPUID bits. */
#define CPUID_1_ECX_HYPERVISOR   (1U << 31)
#define CPUID_1_EDX_HTT          (1U << 28)
#define CPUID_1_ECX_VMX          (1U << 5)
#define CPUID_1_ECX_TSC_DEADLINE (1U << 24)
#define CPUID_80000001_ECX_SVM   (1U << 2)

#define FPU_CONTROL_DEFAULT 0x37f  /* x87 FNINIT value */
#define MXCSR_DEFAULT       0x1f80 /* all SSE exceptions masked */

/* GDT descriptor from flags, base and limit (SDM vol. 3 §3.4.5). */
static uint64_t gdt_entry(uint16_t flags, uint32_t base, uint32_t limit)
{
    return ((uint64_t)(base & 0xff000000u) << 32) |
           ((uint64_t)(flags & 0xf0ffu) << 40) |
           ((uint64_t)(limit & 0x000f0000u) << 32) |
           ((uint64_t)(base & 0x00ffffffu) << 16) |
           (uint64_t)(limit & 0x0000ffffu);
}

/* Flat segments as Linux's own boot GDT has them: 64-bit code, data, and
 * a TSS the kernel never uses but VMX/SVM want present. */
static void boot_gdt(uint64_t gdt[CPU_GDT_ENTRIES])
{
    gdt[0] = 0;
    gdt[1] = gdt_entry(0xa09b, 0, 0xfffff); /* code: L, present, exec/read */
    gdt[2] = gdt_entry(0xc093, 0, 0xfffff); /* data: 4 GiB, read/write */
    gdt[3] = gdt_entry(0x808b, 0, 0xfffff); /* TSS: busy, 64-bit */
}

int cpu_write_tables(const struct guest_mem *mem)
{
    uint64_t pml4[PT_ENTRIES] = {0}, pdpt[PT_ENTRIES] = {0};
    pml4[0] = LAYOUT_PDPT_ADDR | PTE_PRESENT | PTE_WRITE;
    for (unsigned int i = 0; i < LAYOUT_PD_COUNT; i++)
        pdpt[i] = (LAYOUT_PD_ADDR + i * 4096ULL) | PTE_PRESENT | PTE_WRITE;
    if (gm_write(mem, LAYOUT_PML4_ADDR, pml4, sizeof(pml4)) < 0 ||
        gm_write(mem, LAYOUT_PDPT_ADDR, pdpt, sizeof(pdpt)) < 0)
        return -EFAULT;
    for (unsigned int i = 0; i < LAYOUT_PD_COUNT; i++) {
        uint64_t *pd = gm_ptr(mem, LAYOUT_PD_ADDR + i * 4096ULL, 4096);
        if (!pd)
            return -EFAULT;
        for (unsigned int j = 0; j < PT_ENTRIES; j++)
            pd[j] = (((uint64_t)i * PT_ENTRIES + j) << 21) | PTE_PRESENT |
                    PTE_WRITE | PTE_PS;
    }
    uint64_t idt = 0, gdt[CPU_GDT_ENTRIES];
    boot_gdt(gdt);
    if (gm_write(mem, LAYOUT_GDT_ADDR, gdt, sizeof(gdt)) < 0 ||
        gm_write(mem, LAYOUT_IDT_ADDR, &idt, sizeof(idt)) < 0)
        return -EFAULT;
    return 0;
}

/* KVM segment from a GDT entry (the inverse of gdt_entry's packing). */
static struct kvm_segment segment_from_gdt(uint64_t entry, uint16_t sel)
{
    return (struct kvm_segment){
        .base = (uint32_t)(((entry >> 16) & 0xffffff) |
                           ((entry >> 32) & 0xff000000)),
        .limit = (uint32_t)((entry & 0xffff) | ((entry >> 32) & 0xf0000)),
        .selector = sel,
        .type = (uint8_t)((entry >> 40) & 0xf),
        .present = (uint8_t)((entry >> 47) & 1),
        .dpl = (uint8_t)((entry >> 45) & 3),
        .db = (uint8_t)((entry >> 54) & 1),
        .s = (uint8_t)((entry >> 44) & 1),
        .l = (uint8_t)((entry >> 53) & 1),
        .g = (uint8_t)((entry >> 55) & 1),
        .avl = (uint8_t)((entry >> 52) & 1),
    };
}

void cpu_sregs_fill(struct kvm_sregs *sregs)
{
    uint64_t gdt[CPU_GDT_ENTRIES];
    boot_gdt(gdt);
    struct kvm_segment code = segment_from_gdt(gdt[1], CPU_SEL_CODE);
    struct kvm_segment data = segment_from_gdt(gdt[2], CPU_SEL_DATA);
    struct kvm_segment tss = segment_from_gdt(gdt[3], CPU_SEL_TSS);
    /* The limits are in 4 KiB units when g is set; KVM wants bytes. */
    code.limit = data.limit = 0xffffffff;
    tss.limit = 0xfffff;
    sregs->cs = code;
    sregs->ds = sregs->es = sregs->fs = sregs->gs = sregs->ss = data;
    sregs->tr = tss;
    sregs->gdt.base = LAYOUT_GDT_ADDR;
    sregs->gdt.limit = sizeof(gdt) - 1;
    sregs->idt.base = LAYOUT_IDT_ADDR;
    sregs->idt.limit = sizeof(uint64_t) - 1;
    sregs->cr3 = LAYOUT_PML4_ADDR;
    sregs->cr4 |= X86_CR4_PAE;
    sregs->cr0 |= X86_CR0_PE | X86_CR0_PG | X86_CR0_ET;
    sregs->efer |= EFER_LME | EFER_LMA;
}

void cpu_regs_fill(struct kvm_regs *regs, uint64_t entry, uint64_t zero_page)
{
    memset(regs, 0, sizeof(*regs));
    regs->rflags = 0x2; /* bit 1 is reserved and reads as 1 */
    regs->rip = entry;
    regs->rsp = regs->rbp = LAYOUT_BOOT_STACK;
    regs->rsi = zero_page; /* boot.rst: %rsi holds the boot_params base */
}

bool cpu_has_hw_virt(uint32_t leaf1_ecx, uint32_t ext1_ecx)
{
    return (leaf1_ecx & CPUID_1_ECX_VMX) || (ext1_ecx & CPUID_80000001_ECX_SVM);
}

void cpu_cpuid_filter(struct kvm_cpuid2 *cpuid, bool tsc_deadline)
{
    for (uint32_t i = 0; i < cpuid->nent; i++) {
        struct kvm_cpuid_entry2 *e = &cpuid->entries[i];
        switch (e->function) {
        case 1:
            /* No nested virtualization for a hostile guest: KVM's nested
             * code is attack surface a snippet never needs. */
            e->ecx &= ~CPUID_1_ECX_VMX;
            /* KVM emulates the TSC-deadline timer but leaves the bit to
             * us (KVM_CAP_TSC_DEADLINE_TIMER). With it the guest arms its
             * timer with one WRMSR, which KVM handles on its fast path;
             * without it, with an APIC-register write that KVM must
             * decode and emulate, at every timer event. */
            if (tsc_deadline)
                e->ecx |= CPUID_1_ECX_TSC_DEADLINE;
            break;
        case 0x80000001: e->ecx &= ~CPUID_80000001_ECX_SVM; break;
        case KVM_CPUID_FEATURES:
            /* No asynchronous page faults: with them KVM tells the guest
             * "page not present" when a page of its RAM cannot be had at
             * once (another process holds the page-cache page of a
             * snapshot's memory file that several restored VMs share) and
             * "page ready" later. Restored VMs were seen to spin on them
             * for good in the nested host, and a short-lived VM gains
             * nothing from them: the guest waits in KVM instead. */
            e->eax &= ~((1U << KVM_FEATURE_ASYNC_PF) |
                        (1U << KVM_FEATURE_ASYNC_PF_VMEXIT) |
                        (1U << KVM_FEATURE_ASYNC_PF_INT));
            break;
        default: break;
        }
    }
}

void cpu_cpuid_patch(struct kvm_cpuid2 *cpuid, unsigned int apic_id,
                     unsigned int nr_cpus)
{
    for (uint32_t i = 0; i < cpuid->nent; i++) {
        struct kvm_cpuid_entry2 *e = &cpuid->entries[i];
        switch (e->function) {
        case 1:
            /* EBX[31:24] initial APIC id, [23:16] logical processors. */
            e->ebx = (e->ebx & 0x0000ffffu) | (apic_id << 24) |
                     ((nr_cpus & 0xff) << 16);
            if (nr_cpus > 1)
                e->edx |= CPUID_1_EDX_HTT;
            e->ecx |= CPUID_1_ECX_HYPERVISOR;
            break;
        case 0xb:
        case 0x1f:
            /* Extended topology: EDX is the x2APIC id on every subleaf. */
            e->edx = apic_id;
            break;
        default: break;
        }
    }
}

static const struct kvm_cpuid_entry2 *
cpuid_find(const struct kvm_cpuid2 *c, uint32_t function, uint32_t index)
{
    for (uint32_t i = 0; i < c->nent; i++)
        if (c->entries[i].function == function && c->entries[i].index == index)
            return &c->entries[i];
    return NULL;
}

bool cpu_cpuid_missing(const struct kvm_cpuid2 *want,
                       const struct kvm_cpuid2 *have, char *what, size_t len)
{
    /* Each feature register, and the bits in it that are not features of
     * the CPU but set by the guest's kernel (OSXSAVE, OSPKE: they follow
     * CR4) or by cpu_cpuid_patch (HYPERVISOR, HTT). */
    static const struct {
        uint32_t function, index;
        unsigned int reg; /* 0 eax, 1 ebx, 2 ecx, 3 edx */
        uint32_t ignore;
    } regs[] = {
        {1, 0, 2, CPUID_1_ECX_HYPERVISOR | (1U << 27)},
        {1, 0, 3, CPUID_1_EDX_HTT},
        {7, 0, 1, 0},
        {7, 0, 2, 1U << 4},
        {7, 0, 3, 0},
        {0xd, 1, 0, 0},
        {0x80000001, 0, 2, 0},
        {0x80000001, 0, 3, 0},
    };
    static const char *const names[] = {"eax", "ebx", "ecx", "edx"};
    for (size_t i = 0; i < sizeof(regs) / sizeof(regs[0]); i++) {
        const struct kvm_cpuid_entry2 *w =
            cpuid_find(want, regs[i].function, regs[i].index);
        if (!w)
            continue;
        const struct kvm_cpuid_entry2 *h =
            cpuid_find(have, regs[i].function, regs[i].index);
        uint32_t wv[4] = {w->eax, w->ebx, w->ecx, w->edx};
        uint32_t hv[4] = {0};
        if (h) {
            hv[0] = h->eax;
            hv[1] = h->ebx;
            hv[2] = h->ecx;
            hv[3] = h->edx;
        }
        uint32_t lack = wv[regs[i].reg] & ~hv[regs[i].reg] & ~regs[i].ignore;
        if (lack) {
            snprintf(what, len, "leaf 0x%x.%u %s bit %d", regs[i].function,
                     regs[i].index, names[regs[i].reg], __builtin_ctz(lack));
            return true;
        }
    }
    return false;
}

void cpu_lapic_patch(struct kvm_lapic_state *lapic)
{
    uint32_t v;
    memcpy(&v, &lapic->regs[APIC_LVT0], sizeof(v));
    v = (v & ~(uint32_t)APIC_MODE_MASK) | APIC_MODE_EXTINT;
    memcpy(&lapic->regs[APIC_LVT0], &v, sizeof(v));
    memcpy(&v, &lapic->regs[APIC_LVT1], sizeof(v));
    v = (v & ~(uint32_t)APIC_MODE_MASK) | APIC_MODE_NMI;
    memcpy(&lapic->regs[APIC_LVT1], &v, sizeof(v));
}

unsigned int cpu_msrs_fill(struct kvm_msr_entry *entries)
{
    static const struct {
        uint32_t index;
        uint64_t data;
    } boot[CPU_BOOT_MSRS] = {
        {MSR_IA32_SYSENTER_CS, 0},
        {MSR_IA32_SYSENTER_ESP, 0},
        {MSR_IA32_SYSENTER_EIP, 0},
        {MSR_STAR, 0},
        {MSR_CSTAR, 0},
        {MSR_KERNEL_GS_BASE, 0},
        {MSR_SYSCALL_MASK, 0},
        {MSR_LSTAR, 0},
        {MSR_IA32_TSC, 0},
        {MSR_IA32_MISC_ENABLE, MISC_ENABLE_FAST_STRING},
        /* Memory write-back by default, as firmware leaves it. */
        {MSR_MTRR_DEF_TYPE, MTRR_ENABLE | MTRR_TYPE_WRBACK},
    };
    unsigned int n = CPU_BOOT_MSRS;
    for (unsigned int i = 0; i < n; i++)
        entries[i] = (struct kvm_msr_entry){.index = boot[i].index,
                                            .data = boot[i].data};
    return n;
}

int cpu_setup_vcpu(int vcpu_fd, unsigned int index, unsigned int nr_cpus,
                   const struct kvm_cpuid2 *supported, uint64_t entry,
                   const char **what)
{
    size_t cpuid_size =
        sizeof(*supported) + supported->nent * sizeof(supported->entries[0]);
    struct kvm_cpuid2 *cpuid = malloc(cpuid_size);
    if (!cpuid) {
        *what = "CPUID";
        return -ENOMEM;
    }
    memcpy(cpuid, supported, cpuid_size);
    cpu_cpuid_patch(cpuid, index, nr_cpus);
    int ret = ioctl(vcpu_fd, KVM_SET_CPUID2, cpuid) < 0 ? -errno : 0;
    free(cpuid);
    if (ret < 0) {
        *what = "KVM_SET_CPUID2";
        return ret;
    }

    struct {
        struct kvm_msrs hdr;
        struct kvm_msr_entry entries[CPU_BOOT_MSRS];
    } msrs;
    memset(&msrs, 0, sizeof(msrs));
    msrs.hdr.nmsrs = cpu_msrs_fill(msrs.entries);
    /* KVM_SET_MSRS returns how many it set; fewer means one was refused. */
    int set = ioctl(vcpu_fd, KVM_SET_MSRS, &msrs);
    if (set < 0 || (uint32_t)set != msrs.hdr.nmsrs) {
        *what = "KVM_SET_MSRS";
        return set < 0 ? -errno : -EINVAL;
    }

    struct kvm_fpu fpu = {.fcw = FPU_CONTROL_DEFAULT, .mxcsr = MXCSR_DEFAULT};
    if (ioctl(vcpu_fd, KVM_SET_FPU, &fpu) < 0) {
        *what = "KVM_SET_FPU";
        return -errno;
    }

    struct kvm_lapic_state lapic;
    if (ioctl(vcpu_fd, KVM_GET_LAPIC, &lapic) < 0) {
        *what = "KVM_GET_LAPIC";
        return -errno;
    }
    cpu_lapic_patch(&lapic);
    if (ioctl(vcpu_fd, KVM_SET_LAPIC, &lapic) < 0) {
        *what = "KVM_SET_LAPIC";
        return -errno;
    }

    if (index != 0)
        return 0;
    struct kvm_sregs sregs;
    if (ioctl(vcpu_fd, KVM_GET_SREGS, &sregs) < 0) {
        *what = "KVM_GET_SREGS";
        return -errno;
    }
    cpu_sregs_fill(&sregs);
    if (ioctl(vcpu_fd, KVM_SET_SREGS, &sregs) < 0) {
        *what = "KVM_SET_SREGS";
        return -errno;
    }
    struct kvm_regs regs;
    cpu_regs_fill(&regs, entry, LAYOUT_ZERO_PAGE_ADDR);
    if (ioctl(vcpu_fd, KVM_SET_REGS, &regs) < 0) {
        *what = "KVM_SET_REGS";
        return -errno;
    }
    return 0;
}
