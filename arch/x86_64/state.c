/* x86-64 snapshot state: what KVM holds of a stopped VM and its vCPUs,
 * read out through its GET ioctls and written back through the SET ones
 * into a VM fresh from arch_vm_init and vCPUs fresh from KVM_CREATE_VCPU.
 * Each KVM structure goes as a blob with its length, so a file written by
 * a runvm built against other kernel headers is refused, not misread. KVM
 * itself checks every value it is given (a bad one is EINVAL); the file's
 * checksum has already been checked by vmm/snapshot.c. */
#include "arch/arch.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#include "arch/x86_64/cpu.h"

/* Layout versions of the two kinds of section. */
#define X86_VM_STATE_VERSION   1
#define X86_VCPU_STATE_VERSION 1
/* KVM's own limit on KVM_GET_MSR_INDEX_LIST is far below this. */
#define X86_MAX_MSRS 1024

static void put_blob(struct state_w *w, const void *p, uint32_t len)
{
    state_put_u32(w, len);
    state_put_bytes(w, p, len);
}

/* Reads a blob that must be exactly len bytes long. */
static void get_blob(struct state_r *r, void *p, uint32_t len)
{
    if (state_get_u32(r) != len) {
        state_r_fail(r);
        memset(p, 0, len);
        return;
    }
    state_get_bytes(r, p, len);
}

#define IOCTL_OR(fd, req, arg, name)                                           \
    do {                                                                       \
        if (ioctl((fd), (req), (arg)) < 0) {                                   \
            *what = (name);                                                    \
            return -errno;                                                     \
        }                                                                      \
    } while (0)

int arch_vm_save(struct arch_vm *arch, int vm_fd, struct state_w *w,
                 const char **what)
{
    (void)arch;
    state_put_u32(w, X86_VM_STATE_VERSION);
    /* The two 8259s and the IOAPIC, whole: pins, redirection entries and
     * what is in service. */
    for (uint32_t chip = 0; chip < 3; chip++) {
        struct kvm_irqchip c = {.chip_id = chip};
        IOCTL_OR(vm_fd, KVM_GET_IRQCHIP, &c, "KVM_GET_IRQCHIP");
        put_blob(w, &c, sizeof(c));
    }
    struct kvm_pit_state2 pit;
    IOCTL_OR(vm_fd, KVM_GET_PIT2, &pit, "KVM_GET_PIT2");
    put_blob(w, &pit, sizeof(pit));
    /* kvmclock: the guest's clock goes on from where it was saved. */
    struct kvm_clock_data clock = {0};
    IOCTL_OR(vm_fd, KVM_GET_CLOCK, &clock, "KVM_GET_CLOCK");
    state_put_u64(w, clock.clock);
    return w->err;
}

int arch_vm_restore(struct arch_vm *arch, int vm_fd, struct state_r *r,
                    const char **what)
{
    (void)arch;
    struct kvm_irqchip chips[3];
    struct kvm_pit_state2 pit;
    *what = "VM state";
    if (state_get_u32(r) != X86_VM_STATE_VERSION)
        return -EBADMSG;
    for (uint32_t chip = 0; chip < 3; chip++) {
        get_blob(r, &chips[chip], sizeof(chips[chip]));
        if (chips[chip].chip_id != chip)
            state_r_fail(r);
    }
    get_blob(r, &pit, sizeof(pit));
    struct kvm_clock_data clock = {.clock = state_get_u64(r)};
    if (state_r_done(r) < 0)
        return -EBADMSG;
    for (uint32_t chip = 0; chip < 3; chip++)
        IOCTL_OR(vm_fd, KVM_SET_IRQCHIP, &chips[chip], "KVM_SET_IRQCHIP");
    IOCTL_OR(vm_fd, KVM_SET_PIT2, &pit, "KVM_SET_PIT2");
    IOCTL_OR(vm_fd, KVM_SET_CLOCK, &clock, "KVM_SET_CLOCK");
    return 0;
}

/* The MSRs KVM can save of this VM's vCPUs: its index list, less those a
 * vCPU will not read back (KVM lists some the CPU model lacks). Kept in
 * arch for the other vCPUs of the same save. */
static int msr_list(struct arch_vm *arch, int kvm_fd, int vcpu_fd,
                    const char **what)
{
    if (arch->msr_index)
        return 0;
    struct kvm_msr_list probe = {.nmsrs = 0};
    if (ioctl(kvm_fd, KVM_GET_MSR_INDEX_LIST, &probe) < 0 && errno != E2BIG) {
        *what = "KVM_GET_MSR_INDEX_LIST";
        return -errno;
    }
    if (probe.nmsrs == 0 || probe.nmsrs > X86_MAX_MSRS) {
        *what = "KVM_GET_MSR_INDEX_LIST";
        return -E2BIG;
    }
    struct kvm_msr_list *list =
        calloc(1, sizeof(*list) + probe.nmsrs * sizeof(list->indices[0]));
    if (!list) {
        *what = "MSR list";
        return -ENOMEM;
    }
    list->nmsrs = probe.nmsrs;
    if (ioctl(kvm_fd, KVM_GET_MSR_INDEX_LIST, list) < 0) {
        int ret = -errno;
        free(list);
        *what = "KVM_GET_MSR_INDEX_LIST";
        return ret;
    }
    uint32_t n = 0;
    for (uint32_t i = 0; i < list->nmsrs; i++) {
        struct {
            struct kvm_msrs hdr;
            struct kvm_msr_entry e;
        } one = {.hdr.nmsrs = 1, .e.index = list->indices[i]};
        if (ioctl(vcpu_fd, KVM_GET_MSRS, &one) == 1)
            list->indices[n++] = list->indices[i];
    }
    list->nmsrs = n;
    arch->msr_index = list;
    return 0;
}

int arch_vcpu_save(struct arch_vm *arch, int kvm_fd, int vcpu_fd,
                   struct state_w *w, const char **what)
{
    int ret = msr_list(arch, kvm_fd, vcpu_fd, what);
    if (ret < 0)
        return ret;
    state_put_u32(w, X86_VCPU_STATE_VERSION);

    /* CPUID as the guest saw it: restored as it was, and checked against
     * what the restoring host's KVM can offer. */
    struct kvm_cpuid2 *cpuid =
        calloc(1, sizeof(*cpuid) + X86_CPUID_MAX * sizeof(cpuid->entries[0]));
    if (!cpuid) {
        *what = "CPUID buffer";
        return -ENOMEM;
    }
    cpuid->nent = X86_CPUID_MAX;
    if (ioctl(vcpu_fd, KVM_GET_CPUID2, cpuid) < 0) {
        ret = -errno;
        free(cpuid);
        *what = "KVM_GET_CPUID2";
        return ret;
    }
    state_put_u32(w, cpuid->nent);
    state_put_bytes(w, cpuid->entries, cpuid->nent * sizeof(cpuid->entries[0]));
    free(cpuid);

    struct kvm_sregs sregs;
    IOCTL_OR(vcpu_fd, KVM_GET_SREGS, &sregs, "KVM_GET_SREGS");
    put_blob(w, &sregs, sizeof(sregs));
    struct kvm_xcrs xcrs;
    IOCTL_OR(vcpu_fd, KVM_GET_XCRS, &xcrs, "KVM_GET_XCRS");
    put_blob(w, &xcrs, sizeof(xcrs));
    struct kvm_xsave xsave;
    IOCTL_OR(vcpu_fd, KVM_GET_XSAVE, &xsave, "KVM_GET_XSAVE");
    put_blob(w, &xsave, sizeof(xsave));
    struct kvm_regs regs;
    IOCTL_OR(vcpu_fd, KVM_GET_REGS, &regs, "KVM_GET_REGS");
    put_blob(w, &regs, sizeof(regs));
    struct kvm_lapic_state lapic;
    IOCTL_OR(vcpu_fd, KVM_GET_LAPIC, &lapic, "KVM_GET_LAPIC");
    put_blob(w, &lapic, sizeof(lapic));

    uint32_t n = arch->msr_index->nmsrs;
    struct kvm_msrs *msrs =
        calloc(1, sizeof(*msrs) + n * sizeof(msrs->entries[0]));
    if (!msrs) {
        *what = "MSR buffer";
        return -ENOMEM;
    }
    msrs->nmsrs = n;
    for (uint32_t i = 0; i < n; i++)
        msrs->entries[i].index = arch->msr_index->indices[i];
    int got = ioctl(vcpu_fd, KVM_GET_MSRS, msrs);
    if (got < 0 || (uint32_t)got != n) {
        ret = got < 0 ? -errno : -EIO;
        free(msrs);
        *what = "KVM_GET_MSRS";
        return ret;
    }
    state_put_u32(w, n);
    for (uint32_t i = 0; i < n; i++) {
        state_put_u32(w, msrs->entries[i].index);
        state_put_u64(w, msrs->entries[i].data);
    }
    free(msrs);

    struct kvm_vcpu_events events;
    IOCTL_OR(vcpu_fd, KVM_GET_VCPU_EVENTS, &events, "KVM_GET_VCPU_EVENTS");
    put_blob(w, &events, sizeof(events));
    struct kvm_debugregs dbg;
    IOCTL_OR(vcpu_fd, KVM_GET_DEBUGREGS, &dbg, "KVM_GET_DEBUGREGS");
    put_blob(w, &dbg, sizeof(dbg));
    struct kvm_mp_state mp;
    IOCTL_OR(vcpu_fd, KVM_GET_MP_STATE, &mp, "KVM_GET_MP_STATE");
    put_blob(w, &mp, sizeof(mp));
    int khz = ioctl(vcpu_fd, KVM_GET_TSC_KHZ, 0);
    if (khz < 0) {
        *what = "KVM_GET_TSC_KHZ";
        return -errno;
    }
    state_put_u32(w, (uint32_t)khz);
    return w->err;
}

/* Everything one vCPU's section holds, read and checked before any of it
 * goes to KVM. */
struct vcpu_saved {
    struct kvm_cpuid2 *cpuid;
    struct kvm_sregs sregs;
    struct kvm_xcrs xcrs;
    struct kvm_xsave xsave;
    struct kvm_regs regs;
    struct kvm_lapic_state lapic;
    struct kvm_msrs *msrs;
    struct kvm_vcpu_events events;
    struct kvm_debugregs dbg;
    struct kvm_mp_state mp;
    uint32_t tsc_khz;
};

static int read_vcpu(struct state_r *r, struct vcpu_saved *s)
{
    if (state_get_u32(r) != X86_VCPU_STATE_VERSION)
        return -EBADMSG;
    uint32_t nent = state_get_u32(r);
    if (r->err || nent == 0 || nent > X86_CPUID_MAX)
        return -EBADMSG;
    s->cpuid =
        calloc(1, sizeof(*s->cpuid) + nent * sizeof(s->cpuid->entries[0]));
    if (!s->cpuid)
        return -ENOMEM;
    s->cpuid->nent = nent;
    state_get_bytes(r, s->cpuid->entries, nent * sizeof(s->cpuid->entries[0]));
    get_blob(r, &s->sregs, sizeof(s->sregs));
    get_blob(r, &s->xcrs, sizeof(s->xcrs));
    get_blob(r, &s->xsave, sizeof(s->xsave));
    get_blob(r, &s->regs, sizeof(s->regs));
    get_blob(r, &s->lapic, sizeof(s->lapic));
    uint32_t n = state_get_u32(r);
    if (r->err || n > X86_MAX_MSRS)
        return -EBADMSG;
    s->msrs = calloc(1, sizeof(*s->msrs) + n * sizeof(s->msrs->entries[0]));
    if (!s->msrs)
        return -ENOMEM;
    s->msrs->nmsrs = n;
    for (uint32_t i = 0; i < n; i++) {
        s->msrs->entries[i].index = state_get_u32(r);
        s->msrs->entries[i].data = state_get_u64(r);
    }
    get_blob(r, &s->events, sizeof(s->events));
    get_blob(r, &s->dbg, sizeof(s->dbg));
    get_blob(r, &s->mp, sizeof(s->mp));
    s->tsc_khz = state_get_u32(r);
    return state_r_done(r);
}

/* The restore order: CPUID first (KVM sizes XSAVE and checks MSRs by it),
 * segments and control registers before the extended state and general
 * registers, the LAPIC before MSRs (the TSC deadline lives in the LAPIC's
 * timer) and pending events, the MP state last. */
static int apply_vcpu(struct arch_vm *arch, int vcpu_fd, struct vcpu_saved *s,
                      char *err, size_t err_len)
{
    const char *what = NULL;
    char missing[96];
    if (cpu_cpuid_missing(s->cpuid, arch->cpuid, missing, sizeof(missing))) {
        snprintf(err, err_len,
                 "this host's KVM lacks a CPU feature the snapshot's guest "
                 "uses (%s)",
                 missing);
        return -ENOTSUP;
    }
    int khz = ioctl(vcpu_fd, KVM_GET_TSC_KHZ, 0);
    if (khz > 0 && (uint32_t)khz != s->tsc_khz &&
        ioctl(vcpu_fd, KVM_SET_TSC_KHZ, (unsigned long)s->tsc_khz) < 0) {
        snprintf(err, err_len,
                 "the snapshot's guest counts time with a %u kHz TSC, this "
                 "host's runs at %d kHz and KVM cannot scale it: %s",
                 s->tsc_khz, khz, strerror(errno));
        return -ENOTSUP;
    }
#define SET(req, arg, name)                                                    \
    do {                                                                       \
        if (ioctl(vcpu_fd, (req), (arg)) < 0) {                                \
            what = (name);                                                     \
            goto fail;                                                         \
        }                                                                      \
    } while (0)
    SET(KVM_SET_CPUID2, s->cpuid, "KVM_SET_CPUID2");
    SET(KVM_SET_SREGS, &s->sregs, "KVM_SET_SREGS");
    SET(KVM_SET_XCRS, &s->xcrs, "KVM_SET_XCRS");
    SET(KVM_SET_XSAVE, &s->xsave, "KVM_SET_XSAVE");
    SET(KVM_SET_REGS, &s->regs, "KVM_SET_REGS");
    SET(KVM_SET_LAPIC, &s->lapic, "KVM_SET_LAPIC");
    int set = ioctl(vcpu_fd, KVM_SET_MSRS, s->msrs);
    if (set < 0 || (uint32_t)set != s->msrs->nmsrs) {
        if (set >= 0 && (uint32_t)set < s->msrs->nmsrs)
            snprintf(err, err_len, "KVM_SET_MSRS: MSR 0x%x refused",
                     s->msrs->entries[set].index);
        else
            snprintf(err, err_len, "KVM_SET_MSRS: %s", strerror(errno));
        return -EINVAL;
    }
    SET(KVM_SET_VCPU_EVENTS, &s->events, "KVM_SET_VCPU_EVENTS");
    SET(KVM_SET_DEBUGREGS, &s->dbg, "KVM_SET_DEBUGREGS");
    SET(KVM_SET_MP_STATE, &s->mp, "KVM_SET_MP_STATE");
#undef SET
    return 0;
fail : {
    int ret = -errno;
    snprintf(err, err_len, "%s: %s", what, strerror(-ret));
    return ret;
}
}

int arch_vcpu_restore(struct arch_vm *arch, int vcpu_fd, struct state_r *r,
                      char *err, size_t err_len)
{
    struct vcpu_saved *s = calloc(1, sizeof(*s));
    if (!s) {
        snprintf(err, err_len, "out of memory");
        return -ENOMEM;
    }
    int ret = read_vcpu(r, s);
    if (ret == -EBADMSG)
        snprintf(err, err_len, "vCPU state is malformed");
    else if (ret < 0)
        snprintf(err, err_len, "reading vCPU state: %s", strerror(-ret));
    else
        ret = apply_vcpu(arch, vcpu_fd, s, err, err_len);
    free(s->cpuid);
    free(s->msrs);
    free(s);
    return ret;
}
