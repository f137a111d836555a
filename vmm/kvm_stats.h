/* KVM's exit counters for a VM, summed over its vCPUs: from each vCPU's
 * binary statistics file (KVM_GET_STATS_FD, Linux 5.14+,
 * Documentation/virt/kvm/api.rst "KVM_GET_STATS_FD"), else from the VM's
 * debugfs directory (/sys/kernel/debug/kvm/PID-FD/), else unavailable. Used
 * by the boot timer to count exits per boot phase. */
#ifndef RUNVM_KVM_STATS_H
#define RUNVM_KVM_STATS_H

#include <stdbool.h>
#include <stdint.h>

enum kvm_stat {
    KVM_STAT_EXITS,      /* every exit from the guest */
    KVM_STAT_IO_EXITS,   /* port I/O exits to userspace */
    KVM_STAT_MMIO_EXITS, /* MMIO exits to userspace */
    KVM_STAT_HALT_EXITS, /* HLT exits */
    /* Page faults KVM injected into the guest (x86). With nested paging
     * the guest takes its own faults, so KVM injects one only for an
     * instruction it emulates: a handful per run. Thousands mean the
     * guest is stuck re-taking a fault (the nested host's failure,
     * tests/kvmhost/README.md). */
    KVM_STAT_PF_GUEST,
    KVM_STAT_COUNT,
};

/* The counters' names, as KVM's statistics call them. */
extern const char *const kvm_stat_names[KVM_STAT_COUNT];

#define KVM_STATS_MAX_VCPUS 32

enum kvm_stats_source {
    KVM_STATS_NONE,
    KVM_STATS_BINARY,  /* per-vCPU KVM_GET_STATS_FD files */
    KVM_STATS_DEBUGFS, /* one debugfs file per counter, VM-wide */
};

struct kvm_stats {
    enum kvm_stats_source source;
    unsigned int nr_fds;
    /* BINARY: one stats fd per vCPU, with each counter's byte offset in
     * it. DEBUGFS: fd[c] is counter c's file. */
    int fd[KVM_STATS_MAX_VCPUS];
    uint64_t offset[KVM_STATS_MAX_VCPUS][KVM_STAT_COUNT];
    /* Why the counters are unavailable (source NONE), for the report. */
    const char *why;
};

/* Finds each counter of enum kvm_stat in a KVM binary statistics file
 * (header, descriptors, data, read with pread; the file's contents are
 * validated as untrusted) and stores its byte offset in offset[]. 0, or
 * -EINVAL for a malformed file, -ENOENT when a counter is missing, or the
 * read's -errno. */
int kvm_stats_layout(int fd, uint64_t offset[KVM_STAT_COUNT])
    __attribute__((warn_unused_result));

/* Opens the counters for a VM (best effort, never fails): binary stats when
 * KVM_CAP_BINARY_STATS_FD is there, else debugfs (only if may_open: a
 * sandboxed runvm opens no files), else source NONE with why set. */
void kvm_stats_open(struct kvm_stats *s, int kvm_fd, int vm_fd,
                    const int *vcpu_fds, unsigned int nr_vcpus, bool may_open);

/* Reads every counter, summed over the vCPUs, into out. 0 or -errno
 * (-ENODEV when source is NONE). Thread-safe: pread only. */
int kvm_stats_read(const struct kvm_stats *s, uint64_t out[KVM_STAT_COUNT]);

/* "binary-stats", "debugfs" or "unavailable". */
const char *kvm_stats_source_name(const struct kvm_stats *s);

/* Closes what kvm_stats_open opened; safe on a zeroed struct whose fds are
 * set to -1 and after a failed open. */
void kvm_stats_close(struct kvm_stats *s);

#endif
