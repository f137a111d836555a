/* KVM binary statistics files as KVM_GET_STATS_FD lays them out, built in a
 * memfd: the counters are found by name and read; malformed files are
 * refused, never overrun. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cmocka.h>
#include <linux/kvm.h>

#include "vmm/kvm_stats.h"

#define NAME_SIZE 48
#define DESC_SIZE (sizeof(struct kvm_stats_desc) + NAME_SIZE)

struct stat_spec {
    const char *name;
    uint32_t flags;
    uint16_t size;
    uint64_t value;
};

/* Header, id string, descriptors, then the data block; each stat's value at
 * its descriptor's offset (8 bytes apart, reversed so offsets are not the
 * descriptor order). Returns a memfd. */
static int stats_file(const struct stat_spec *specs, unsigned int n,
                      uint32_t name_size, size_t truncate_to)
{
    unsigned char buf[8192] = {0};
    struct kvm_stats_header h = {
        .name_size = name_size,
        .num_desc = n,
        .id_offset = sizeof(h),
        .desc_offset = sizeof(h) + NAME_SIZE,
        .data_offset = (uint32_t)(sizeof(h) + NAME_SIZE + n * DESC_SIZE),
    };
    memcpy(buf, &h, sizeof(h));
    strcpy((char *)buf + h.id_offset, "kvm-1/vcpu-0");
    for (unsigned int i = 0; i < n; i++) {
        struct kvm_stats_desc d = {
            .flags = specs[i].flags,
            .size = specs[i].size,
            .offset = (n - 1 - i) * 8,
        };
        unsigned char *p = buf + h.desc_offset + i * DESC_SIZE;
        memcpy(p, &d, sizeof(d));
        memcpy(p + sizeof(d), specs[i].name, strnlen(specs[i].name, NAME_SIZE));
        memcpy(buf + h.data_offset + d.offset, &specs[i].value, 8);
    }
    size_t len = h.data_offset + n * 8;
    if (truncate_to)
        len = truncate_to;
    int fd = memfd_create("stats", 0);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, buf, len), (ssize_t)len);
    return fd;
}

#define COUNTER KVM_STATS_TYPE_CUMULATIVE
static const struct stat_spec good[] = {
    {"pf_taken", COUNTER, 1, 1},
    {"halt_exits", COUNTER, 1, 40},
    {"exits", COUNTER, 1, 1000},
    {"halt_poll_fail_hist", KVM_STATS_TYPE_LOG_HIST, 32, 0},
    {"io_exits", COUNTER, 1, 200},
    {"pf_guest", COUNTER, 1, 3},
    {"mmio_exits", COUNTER, 1, 30},
};
#define NGOOD (sizeof(good) / sizeof(good[0]))

static void finds_and_reads_counters(void **state)
{
    (void)state;
    int fd = stats_file(good, NGOOD, NAME_SIZE, 0);
    struct kvm_stats s = {
        .source = KVM_STATS_BINARY, .nr_fds = 2, .fd = {fd, fd}};
    assert_int_equal(kvm_stats_layout(fd, s.offset[0]), 0);
    assert_int_equal(kvm_stats_layout(fd, s.offset[1]), 0);
    uint64_t v[KVM_STAT_COUNT];
    assert_int_equal(kvm_stats_read(&s, v), 0);
    /* Two "vCPUs" on the same file: every counter doubled. */
    assert_int_equal(v[KVM_STAT_EXITS], 2000);
    assert_int_equal(v[KVM_STAT_IO_EXITS], 400);
    assert_int_equal(v[KVM_STAT_MMIO_EXITS], 60);
    assert_int_equal(v[KVM_STAT_HALT_EXITS], 80);
    assert_int_equal(v[KVM_STAT_PF_GUEST], 6);
    assert_string_equal(kvm_stats_source_name(&s), "binary-stats");
    close(fd);
}

static void missing_counter_is_enoent(void **state)
{
    (void)state;
    int fd = stats_file(good, NGOOD - 1, NAME_SIZE, 0); /* no mmio_exits */
    uint64_t off[KVM_STAT_COUNT];
    assert_int_equal(kvm_stats_layout(fd, off), -ENOENT);
    close(fd);
}

static void malformed_files_are_refused(void **state)
{
    (void)state;
    uint64_t off[KVM_STAT_COUNT];
    /* No descriptors; a name size beyond reason. */
    int fd = stats_file(good, 0, NAME_SIZE, 0);
    assert_int_equal(kvm_stats_layout(fd, off), -EINVAL);
    close(fd);
    fd = stats_file(good, NGOOD, 100000, 0);
    assert_int_equal(kvm_stats_layout(fd, off), -EINVAL);
    close(fd);
    /* Descriptors cut off by the end of the file. */
    fd = stats_file(good, NGOOD, NAME_SIZE, 24 + NAME_SIZE + DESC_SIZE);
    assert_int_equal(kvm_stats_layout(fd, off), -EINVAL);
    close(fd);
    /* A name filling its field with no NUL. */
    struct stat_spec bad[NGOOD];
    memcpy(bad, good, sizeof(bad));
    bad[0].name =
        "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx";
    fd = stats_file(bad, NGOOD, NAME_SIZE, 0);
    assert_int_equal(kvm_stats_layout(fd, off), -EINVAL);
    close(fd);
    /* "exits" as a histogram, not a counter of one value. */
    memcpy(bad, good, sizeof(bad));
    bad[2].flags = KVM_STATS_TYPE_LINEAR_HIST;
    bad[2].size = 8;
    fd = stats_file(bad, NGOOD, NAME_SIZE, 0);
    assert_int_equal(kvm_stats_layout(fd, off), -EINVAL);
    close(fd);
}

static void data_past_the_end_fails_the_read(void **state)
{
    (void)state;
    int fd = stats_file(good, NGOOD, NAME_SIZE, 0);
    struct kvm_stats s = {.source = KVM_STATS_BINARY, .nr_fds = 1, .fd = {fd}};
    assert_int_equal(kvm_stats_layout(fd, s.offset[0]), 0);
    assert_int_equal(ftruncate(fd, 24 + NAME_SIZE + NGOOD * DESC_SIZE), 0);
    uint64_t v[KVM_STAT_COUNT];
    assert_int_equal(kvm_stats_read(&s, v), -EINVAL);
    close(fd);
}

static void no_source_reads_enodev(void **state)
{
    (void)state;
    struct kvm_stats s = {.source = KVM_STATS_NONE};
    uint64_t v[KVM_STAT_COUNT];
    assert_int_equal(kvm_stats_read(&s, v), -ENODEV);
    assert_string_equal(kvm_stats_source_name(&s), "unavailable");
    kvm_stats_close(&s); /* nothing open: a no-op */
}

/* Under the sandbox (may_open false) no binary stats means none: debugfs
 * is not tried, since open would end runvm. */
static void sandboxed_open_tries_no_files(void **state)
{
    (void)state;
    struct kvm_stats s;
    int vcpu_fd = -1;
    kvm_stats_open(&s, -1, -1, &vcpu_fd, 1, false);
    assert_int_equal(s.source, KVM_STATS_NONE);
    assert_int_equal(s.nr_fds, 0);
    assert_non_null(strstr(s.why, "sandbox"));
    kvm_stats_open(&s, -1, -1, &vcpu_fd, 1, true);
    assert_int_equal(s.source, KVM_STATS_NONE);
    assert_null(strstr(s.why, "sandbox")); /* debugfs was tried */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(finds_and_reads_counters),
        cmocka_unit_test(missing_counter_is_enoent),
        cmocka_unit_test(malformed_files_are_refused),
        cmocka_unit_test(data_past_the_end_fails_the_read),
        cmocka_unit_test(no_source_reads_enodev),
        cmocka_unit_test(sandboxed_open_tries_no_files),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
