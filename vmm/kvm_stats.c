#include "vmm/kvm_stats.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <linux/kvm.h>

const char *const kvm_stat_names[KVM_STAT_COUNT] = {
    [KVM_STAT_EXITS] = "exits",           [KVM_STAT_IO_EXITS] = "io_exits",
    [KVM_STAT_MMIO_EXITS] = "mmio_exits", [KVM_STAT_HALT_EXITS] = "halt_exits",
    [KVM_STAT_PF_GUEST] = "pf_guest",
};

/* What KVM calls each of them on this arch; NULL: it has none, and it
 * reads as 0. arm64 (arch/arm64/kvm/guest.c) has no port I/O, counts
 * MMIO exits to user space and WFI (its halt), and injects no page
 * faults. */
#if defined(__aarch64__)
static const char *const stat_keys[KVM_STAT_COUNT] = {
    [KVM_STAT_EXITS] = "exits",
    [KVM_STAT_MMIO_EXITS] = "mmio_exit_user",
    [KVM_STAT_HALT_EXITS] = "wfi_exit_stat",
};
#else
#define stat_keys kvm_stat_names
#endif
#define STAT_ABSENT UINT64_MAX /* offset of a counter this arch lacks */

/* Bounds on what a statistics file may declare (Linux 6.x has about 80 x86
 * vCPU statistics with 48-byte names). */
#define MAX_DESCS     4096
#define MAX_NAME_SIZE 256

static int pread_all(int fd, void *buf, size_t len, uint64_t off)
{
    size_t done = 0;
    while (done < len) {
        ssize_t n =
            pread(fd, (char *)buf + done, len - done, (off_t)(off + done));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        if (n == 0)
            return -EINVAL; /* the file is shorter than it says */
        done += (size_t)n;
    }
    return 0;
}

int kvm_stats_layout(int fd, uint64_t offset[KVM_STAT_COUNT])
{
    struct kvm_stats_header h;
    int ret = pread_all(fd, &h, sizeof(h), 0);
    if (ret < 0)
        return ret;
    if (h.num_desc == 0 || h.num_desc > MAX_DESCS || h.name_size == 0 ||
        h.name_size > MAX_NAME_SIZE)
        return -EINVAL;
    size_t one = sizeof(struct kvm_stats_desc) + h.name_size;
    size_t len = one * h.num_desc; /* at most ~1.1 MB: no overflow */
    unsigned char *descs = malloc(len);
    if (!descs)
        return -ENOMEM;
    ret = pread_all(fd, descs, len, h.desc_offset);
    if (ret < 0)
        goto out;
    int found = 0, want = 0;
    for (int c = 0; c < KVM_STAT_COUNT; c++) {
        offset[c] = STAT_ABSENT;
        if (stat_keys[c])
            want |= 1 << c;
    }
    for (uint32_t i = 0; i < h.num_desc; i++) {
        struct kvm_stats_desc d;
        const unsigned char *p = descs + (size_t)i * one;
        memcpy(&d, p, sizeof(d));
        const char *name = (const char *)p + sizeof(d);
        if (memchr(name, '\0', h.name_size) == NULL) {
            ret = -EINVAL;
            goto out;
        }
        for (int c = 0; c < KVM_STAT_COUNT; c++) {
            if (!stat_keys[c] || strcmp(name, stat_keys[c]) != 0)
                continue;
            /* A plain cumulative counter of one u64. */
            if ((d.flags & KVM_STATS_TYPE_MASK) != KVM_STATS_TYPE_CUMULATIVE ||
                d.size != 1) {
                ret = -EINVAL;
                goto out;
            }
            offset[c] = (uint64_t)h.data_offset + d.offset;
            found |= 1 << c;
        }
    }
    ret = found == want ? 0 : -ENOENT;
out:
    free(descs);
    return ret;
}

static void close_all(struct kvm_stats *s)
{
    for (unsigned int i = 0; i < s->nr_fds; i++)
        if (s->fd[i] >= 0)
            close(s->fd[i]);
    s->nr_fds = 0;
}

static int open_binary(struct kvm_stats *s, const int *vcpu_fds,
                       unsigned int nr_vcpus)
{
    for (unsigned int i = 0; i < nr_vcpus; i++) {
        int fd = ioctl(vcpu_fds[i], KVM_GET_STATS_FD, 0);
        if (fd < 0)
            return -errno;
        s->fd[s->nr_fds++] = fd;
        int ret = kvm_stats_layout(fd, s->offset[i]);
        if (ret < 0)
            return ret;
    }
    return 0;
}

/* The VM's debugfs directory holds each vCPU statistic summed over the
 * vCPUs (virt/kvm/kvm_main.c, kvm_create_vm_debugfs: "PID-FD"). */
static int open_debugfs(struct kvm_stats *s, int vm_fd)
{
    char path[128];
    for (int c = 0; c < KVM_STAT_COUNT; c++) {
        int fd = -1;
        if (stat_keys[c]) {
            snprintf(path, sizeof(path), "/sys/kernel/debug/kvm/%d-%d/%s",
                     (int)getpid(), vm_fd, stat_keys[c]);
            fd = open(path, O_RDONLY | O_CLOEXEC);
            if (fd < 0)
                return -errno;
        }
        s->fd[s->nr_fds++] = fd;
    }
    return 0;
}

void kvm_stats_open(struct kvm_stats *s, int kvm_fd, int vm_fd,
                    const int *vcpu_fds, unsigned int nr_vcpus, bool may_open)
{
    s->source = KVM_STATS_NONE;
    s->nr_fds = 0;
    s->why = NULL;
    if (nr_vcpus == 0 || nr_vcpus > KVM_STATS_MAX_VCPUS) {
        s->why = "unavailable: too many vCPUs to count";
        return;
    }
    if (ioctl(kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_BINARY_STATS_FD) > 0) {
        if (open_binary(s, vcpu_fds, nr_vcpus) == 0) {
            s->source = KVM_STATS_BINARY;
            return;
        }
        close_all(s);
    }
    if (!may_open) {
        s->why = "unavailable: no KVM_GET_STATS_FD "
                 "(KVM_CAP_BINARY_STATS_FD), and the sandbox opens no files";
        return;
    }
    if (open_debugfs(s, vm_fd) == 0) {
        s->source = KVM_STATS_DEBUGFS;
        return;
    }
    close_all(s);
    s->why = "unavailable: no KVM_GET_STATS_FD (KVM_CAP_BINARY_STATS_FD) "
             "and no /sys/kernel/debug/kvm (mount debugfs)";
}

static int read_debugfs(int fd, uint64_t *v)
{
    char buf[32];
    ssize_t n;
    do
        n = pread(fd, buf, sizeof(buf) - 1, 0);
    while (n < 0 && errno == EINTR);
    if (n < 0)
        return -errno;
    buf[n] = '\0';
    char *end;
    errno = 0;
    unsigned long long x = strtoull(buf, &end, 10);
    if (errno || end == buf)
        return -EINVAL;
    *v = x;
    return 0;
}

int kvm_stats_read(const struct kvm_stats *s, uint64_t out[KVM_STAT_COUNT])
{
    memset(out, 0, sizeof(uint64_t) * KVM_STAT_COUNT);
    if (s->source == KVM_STATS_DEBUGFS) {
        for (int c = 0; c < KVM_STAT_COUNT; c++) {
            int ret = s->fd[c] < 0 ? 0 : read_debugfs(s->fd[c], &out[c]);
            if (ret < 0)
                return ret;
        }
        return 0;
    }
    if (s->source != KVM_STATS_BINARY)
        return -ENODEV;
    for (unsigned int i = 0; i < s->nr_fds; i++) {
        for (int c = 0; c < KVM_STAT_COUNT; c++) {
            uint64_t v;
            if (s->offset[i][c] == STAT_ABSENT)
                continue;
            int ret = pread_all(s->fd[i], &v, sizeof(v), s->offset[i][c]);
            if (ret < 0)
                return ret;
            out[c] += v;
        }
    }
    return 0;
}

const char *kvm_stats_source_name(const struct kvm_stats *s)
{
    switch (s->source) {
    case KVM_STATS_BINARY: return "binary-stats";
    case KVM_STATS_DEBUGFS: return "debugfs";
    default: return "unavailable";
    }
}

void kvm_stats_close(struct kvm_stats *s)
{
    close_all(s);
    s->source = KVM_STATS_NONE;
}
