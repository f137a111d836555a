/* x86-64 vCPU state for a 64-bit Linux entry (boot.rst, "64-bit Boot
 * Protocol"): identity page tables, GDT, registers, CPUID, MSRs, FPU and
 * local APIC. The *_fill/_patch/_write helpers are pure and unit-tested;
 * cpu_setup_vcpu applies them with KVM ioctls. */
#ifndef RUNVM_CPU_H
#define RUNVM_CPU_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <linux/kvm.h>

#include "core/guest_mem.h"

/* GDT selectors (entries at LAYOUT_GDT_ADDR): null, code64, data, TSS. */
#define CPU_GDT_ENTRIES 4
#define CPU_SEL_CODE    0x08
#define CPU_SEL_DATA    0x10
#define CPU_SEL_TSS     0x18

/* Writes the identity page tables (2 MiB pages, all of 0-4 GiB) and the
 * boot GDT/IDT into guest memory. 0 or -EFAULT. */
int cpu_write_tables(const struct guest_mem *mem)
    __attribute__((warn_unused_result));

/* Long-mode segment, control and table registers for the boot CPU. */
void cpu_sregs_fill(struct kvm_sregs *sregs);

/* General registers for the 64-bit entry: rip = entry, rsi = zero page. */
void cpu_regs_fill(struct kvm_regs *regs, uint64_t entry, uint64_t zero_page);

/* Adjusts KVM_GET_SUPPORTED_CPUID to what every vCPU of the VM offers: no
 * VMX or SVM, the TSC-deadline timer where KVM has it. */
void cpu_cpuid_filter(struct kvm_cpuid2 *cpuid, bool tsc_deadline);

/* True when CPUID leaf 1 ECX and leaf 0x80000001 ECX, as this process sees
 * them, show hardware virtualization (VMX or SVM). */
bool cpu_has_hw_virt(uint32_t leaf1_ecx, uint32_t ext1_ecx);

/* Adjusts a copy of KVM_GET_SUPPORTED_CPUID for vCPU apic_id of nr_cpus:
 * initial and x2APIC ids, logical-processor count, hypervisor bit. */
void cpu_cpuid_patch(struct kvm_cpuid2 *cpuid, unsigned int apic_id,
                     unsigned int nr_cpus);

/* Entries runvm asks KVM_GET_SUPPORTED_CPUID and KVM_GET_CPUID2 for. */
#define X86_CPUID_MAX 256

/* Whether want (a snapshot's vCPU CPUID) has a feature bit that have (this
 * host's KVM_GET_SUPPORTED_CPUID) lacks, in the leaves that list CPU
 * features (1, 7, 0xd.1, 0x80000001); bits the kernel or runvm set
 * themselves (OSXSAVE, OSPKE, HYPERVISOR, HTT) do not count. When it
 * has, names the first such bit in what ("leaf 0x7 ebx bit 5"). */
bool cpu_cpuid_missing(const struct kvm_cpuid2 *want,
                       const struct kvm_cpuid2 *have, char *what, size_t len);

/* Puts LINT0 in ExtINT and LINT1 in NMI delivery mode (virtual wire, so
 * the 8259 and NMIs reach the CPU before the kernel programs the APIC). */
void cpu_lapic_patch(struct kvm_lapic_state *lapic);

/* Fills msrs->entries with the boot MSR values; returns their count
 * (at most CPU_BOOT_MSRS). */
#define CPU_BOOT_MSRS 11
unsigned int cpu_msrs_fill(struct kvm_msr_entry *entries);

/* Sets up one vCPU: CPUID (from supported, not modified), MSRs, FPU,
 * LAPIC and, for the boot CPU (index 0) only, registers for the 64-bit
 * entry. Application processors wait for INIT/SIPI in the in-kernel LAPIC.
 * 0 or -errno; *what names the failing step. */
int cpu_setup_vcpu(int vcpu_fd, unsigned int index, unsigned int nr_cpus,
                   const struct kvm_cpuid2 *supported, uint64_t entry,
                   const char **what) __attribute__((warn_unused_result));

#endif
