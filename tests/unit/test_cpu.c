#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "arch/x86_64/cpu.h"
#include "arch/x86_64/layout.h"

static void page_tables_identity_map_4gib(void **state)
{
    (void)state;
    struct guest_mem mem;
    assert_int_equal(gm_init(&mem, 64 * MiB), 0);
    assert_int_equal(cpu_write_tables(&mem), 0);
    uint64_t *pml4 = gm_ptr(&mem, LAYOUT_PML4_ADDR, 4096);
    assert_int_equal(pml4[0] & ~0xfffULL, LAYOUT_PDPT_ADDR);
    assert_int_equal(pml4[0] & 3, 3);
    assert_int_equal(pml4[1], 0);
    uint64_t *pdpt = gm_ptr(&mem, LAYOUT_PDPT_ADDR, 4096);
    /* Walk a few addresses through the tables, up to just below 4 GiB. */
    const uint64_t addrs[] = {0,          0x100000,   0x1234567, 0xbfffffff,
                              0xd0000000, 0xfee00000, 0xffffffff};
    for (size_t i = 0; i < sizeof(addrs) / sizeof(addrs[0]); i++) {
        uint64_t va = addrs[i];
        uint64_t pdpte = pdpt[(va >> 30) & 511];
        assert_int_equal(pdpte & 1, 1);
        uint64_t *pd = gm_ptr(&mem, pdpte & ~0xfffULL, 4096);
        assert_non_null(pd);
        uint64_t pde = pd[(va >> 21) & 511];
        assert_int_equal(pde & 0x83, 0x83); /* present, writable, 2 MiB */
        assert_int_equal((pde & ~0x1fffffULL) | (va & 0x1fffff), va);
    }
    assert_int_equal(pdpt[4], 0); /* nothing past 4 GiB */
    /* The tables stay below the command line and zero page areas. */
    assert_true(LAYOUT_PD_ADDR + LAYOUT_PD_COUNT * 4096 <= LAYOUT_CMDLINE_ADDR);
    gm_free(&mem);

    /* Too little RAM for the tables: refused, not overrun. */
    assert_int_equal(gm_init(&mem, 0xa000), 0);
    assert_int_not_equal(cpu_write_tables(&mem), 0);
    gm_free(&mem);
}

static void long_mode_sregs(void **state)
{
    (void)state;
    struct kvm_sregs s;
    memset(&s, 0, sizeof(s));
    cpu_sregs_fill(&s);
    assert_int_equal(s.cs.selector, CPU_SEL_CODE);
    assert_int_equal(s.cs.l, 1);
    assert_int_equal(s.cs.db, 0);
    assert_int_equal(s.cs.present, 1);
    assert_int_equal(s.cs.type, 0xb);
    assert_int_equal(s.ds.type, 0x3);
    assert_int_equal(s.ss.selector, CPU_SEL_DATA);
    assert_int_equal(s.tr.selector, CPU_SEL_TSS);
    assert_int_equal(s.tr.type, 0xb);
    assert_int_equal(s.cr3, LAYOUT_PML4_ADDR);
    assert_true(s.cr0 & 1);                  /* PE */
    assert_true(s.cr0 & (1U << 31));         /* PG */
    assert_true(s.cr4 & (1U << 5));          /* PAE */
    assert_int_equal(s.efer & 0x500, 0x500); /* LME | LMA */
    assert_int_equal(s.gdt.base, LAYOUT_GDT_ADDR);
    assert_int_equal(s.gdt.limit, CPU_GDT_ENTRIES * 8 - 1);

    struct kvm_regs r;
    cpu_regs_fill(&r, 0x100200, LAYOUT_ZERO_PAGE_ADDR);
    assert_int_equal(r.rip, 0x100200);
    assert_int_equal(r.rsi, LAYOUT_ZERO_PAGE_ADDR);
    assert_int_equal(r.rflags, 2);
}

static void cpuid_patch(void **state)
{
    (void)state;
    struct kvm_cpuid2 *c = calloc(1, sizeof(*c) + 4 * sizeof(c->entries[0]));
    assert_non_null(c);
    c->nent = 4;
    c->entries[0] = (struct kvm_cpuid_entry2){.function = 1, .ebx = 0xffff0800};
    c->entries[1] =
        (struct kvm_cpuid_entry2){.function = 0xb, .index = 0, .edx = 77};
    c->entries[2] =
        (struct kvm_cpuid_entry2){.function = 0xb, .index = 1, .edx = 77};
    c->entries[3] =
        (struct kvm_cpuid_entry2){.function = 0x40000000, .ebx = 0x4b4d564b};
    cpu_cpuid_patch(c, 3, 4);
    assert_int_equal(c->entries[0].ebx >> 24, 3);
    assert_int_equal((c->entries[0].ebx >> 16) & 0xff, 4);
    assert_int_equal(c->entries[0].ebx & 0xffff, 0x0800);
    assert_true(c->entries[0].ecx & (1U << 31));
    assert_true(c->entries[0].edx & (1U << 28));
    assert_int_equal(c->entries[1].edx, 3);
    assert_int_equal(c->entries[2].edx, 3);
    assert_int_equal(c->entries[3].ebx, 0x4b4d564b); /* KVM leaf kept */
    free(c);
}

static void cpuid_filter(void **state)
{
    (void)state;
    struct kvm_cpuid2 *c = calloc(1, sizeof(*c) + 3 * sizeof(c->entries[0]));
    assert_non_null(c);
    c->nent = 3;
    /* Leaf 1 with VMX (ECX bit 5) and SSE3 (bit 0); 0x80000001 with SVM
     * (ECX bit 2) and LAHF (bit 0); an unrelated leaf. */
    c->entries[0] = (struct kvm_cpuid_entry2){.function = 1, .ecx = 0x21};
    c->entries[1] =
        (struct kvm_cpuid_entry2){.function = 0x80000001, .ecx = 0x5};
    c->entries[2] = (struct kvm_cpuid_entry2){.function = 7, .ecx = 0x24};
    cpu_cpuid_filter(c, false);
    assert_int_equal(c->entries[0].ecx, 0x1); /* no VMX, no TSC deadline */
    assert_int_equal(c->entries[1].ecx, 0x1); /* no SVM */
    assert_int_equal(c->entries[2].ecx, 0x24);
    cpu_cpuid_filter(c, true);
    assert_int_equal(c->entries[0].ecx, 0x1 | (1U << 24));
    free(c);
}

static void hw_virt(void **state)
{
    (void)state;
    assert_true(cpu_has_hw_virt(1U << 5, 0)); /* Intel VT-x */
    assert_true(cpu_has_hw_virt(0, 1U << 2)); /* AMD-V */
    assert_false(cpu_has_hw_virt(~(1U << 5), ~(1U << 2)));
}

static void lapic_virtual_wire(void **state)
{
    (void)state;
    struct kvm_lapic_state l;
    memset(&l, 0xff, sizeof(l));
    cpu_lapic_patch(&l);
    uint32_t lint0, lint1;
    memcpy(&lint0, &l.regs[0x350], 4);
    memcpy(&lint1, &l.regs[0x360], 4);
    assert_int_equal(lint0 & 0x700, 0x700);
    assert_int_equal(lint1 & 0x700, 0x400);
}

static void msrs(void **state)
{
    (void)state;
    struct kvm_msr_entry e[CPU_BOOT_MSRS];
    unsigned int n = cpu_msrs_fill(e);
    assert_int_equal(n, CPU_BOOT_MSRS);
    for (unsigned int i = 0; i < n; i++)
        for (unsigned int j = i + 1; j < n; j++)
            assert_int_not_equal(e[i].index, e[j].index);
}

static struct kvm_cpuid2 *cpuid_of(unsigned int n)
{
    struct kvm_cpuid2 *c = calloc(1, sizeof(*c) + n * sizeof(c->entries[0]));
    assert_non_null(c);
    c->nent = n;
    return c;
}

/* A snapshot's CPUID against a host's: a feature the host lacks is named;
 * bits the guest kernel or runvm set (OSXSAVE, HYPERVISOR) are not
 * features; leaves that list no features are not compared. */
static void cpuid_missing_features(void **state)
{
    (void)state;
    struct kvm_cpuid2 *want = cpuid_of(3), *have = cpuid_of(3);
    want->entries[0] = (struct kvm_cpuid_entry2){
        .function = 1, .ecx = (1U << 31) | (1U << 27) | 0x5, .edx = 0x10};
    want->entries[1] =
        (struct kvm_cpuid_entry2){.function = 7, .index = 0, .ebx = 1U << 5};
    want->entries[2] =
        (struct kvm_cpuid_entry2){.function = 0x40000000, .ebx = 0x4b4d564b};
    have->entries[0] =
        (struct kvm_cpuid_entry2){.function = 1, .ecx = 0x7, .edx = 0x10};
    have->entries[1] = (struct kvm_cpuid_entry2){
        .function = 7, .index = 0, .ebx = (1U << 5) | (1U << 3)};
    char what[96] = "";
    assert_false(cpu_cpuid_missing(want, have, what, sizeof(what)));
    have->entries[1].ebx = 1U << 3; /* AVX2 (7.0 ebx bit 5) gone */
    assert_true(cpu_cpuid_missing(want, have, what, sizeof(what)));
    assert_string_equal(what, "leaf 0x7.0 ebx bit 5");
    have->entries[1].function = 8; /* leaf 7 missing altogether */
    assert_true(cpu_cpuid_missing(want, have, what, sizeof(what)));
    free(want);
    free(have);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(page_tables_identity_map_4gib),
        cmocka_unit_test(long_mode_sregs),
        cmocka_unit_test(cpuid_patch),
        cmocka_unit_test(cpuid_filter),
        cmocka_unit_test(hw_virt),
        cmocka_unit_test(lapic_virtual_wire),
        cmocka_unit_test(msrs),
        cmocka_unit_test(cpuid_missing_features),
    };
    return cmocka_run_group_tests_name("cpu", tests, NULL, NULL);
}
