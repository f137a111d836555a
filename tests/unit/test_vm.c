/* VM, vCPU and machine set-up (vmm/kvm.c, vm.c, vcpu.c, machine.c) against
 * a fake KVM: open("/dev/kvm") and every KVM ioctl are wrapped, the fds KVM
 * would hand out are memfds (so the kvm_run mmap is real), and the test checks
 * what runvm asked for, what it told the user, and that a failure at any
 * step leaves no fd open. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <linux/kvm.h>

#include "arch/x86_64/layout.h"
#include "vmm/machine.h"
#include "vmm/vm.h"

/* Devices register their back-ends with it; nothing here runs it. */
static struct evloop loop;

static int loop_up(void **state)
{
    (void)state;
    return evloop_init(&loop);
}

static int loop_down(void **state)
{
    (void)state;
    evloop_free(&loop);
    return 0;
}

#define MAX_FDS 64

static struct {
    bool no_device; /* open("/dev/kvm") fails with ENOENT */
    int api_version;
    long missing_cap; /* KVM_CHECK_EXTENSION says 0 for it */
    int max_vcpus;
    int fail_vcpu;    /* KVM_CREATE_VCPU of this index fails */
    int fds[MAX_FDS]; /* every fd the fake handed out */
    int nr_fds;
    struct kvm_userspace_memory_region slots[4];
    int nr_slots;
} fake;

static int fake_fd(const char *name)
{
    int fd = memfd_create(name, MFD_CLOEXEC);
    assert_true(fd >= 0);
    assert_int_equal(ftruncate(fd, 4096), 0);
    assert_true(fake.nr_fds < MAX_FDS);
    fake.fds[fake.nr_fds++] = fd;
    return fd;
}

int __real_open(const char *path, int flags, ...);
int __wrap_open(const char *path, int flags, ...);
int __wrap_open(const char *path, int flags, ...)
{
    va_list ap;
    va_start(ap, flags);
    mode_t mode = va_arg(ap, mode_t);
    va_end(ap);
    if (strcmp(path, "/dev/kvm") != 0)
        return __real_open(path, flags, mode);
    if (fake.no_device) {
        errno = ENOENT;
        return -1;
    }
    return fake_fd("kvm");
}

/* This CPU may have neither VT-x nor AMD-V: the fake KVM is hardware. */
int __wrap_arch_check_kvm(char *err, size_t err_len);
int __wrap_arch_check_kvm(char *err, size_t err_len)
{
    (void)err;
    (void)err_len;
    return 0;
}

int __real_ioctl(int fd, unsigned long request, ...);
int __wrap_ioctl(int fd, unsigned long request, ...);
int __wrap_ioctl(int fd, unsigned long request, ...)
{
    va_list ap;
    va_start(ap, request);
    void *arg = va_arg(ap, void *);
    va_end(ap);
    switch (request) {
    case KVM_GET_API_VERSION: return fake.api_version;
    case KVM_CHECK_EXTENSION: {
        long cap = (long)arg;
        if (cap == fake.missing_cap)
            return 0;
        return cap == KVM_CAP_MAX_VCPUS ? fake.max_vcpus : 1;
    }
    case KVM_GET_VCPU_MMAP_SIZE: return 4096;
    case KVM_CREATE_VM: return fake_fd("vm");
    case KVM_CREATE_VCPU:
        if ((long)arg == fake.fail_vcpu) {
            errno = EMFILE;
            return -1;
        }
        return fake_fd("vcpu");
    case KVM_SET_USER_MEMORY_REGION:
        assert_true(fake.nr_slots < 4);
        fake.slots[fake.nr_slots++] =
            *(struct kvm_userspace_memory_region *)arg;
        return 0;
    case KVM_GET_SUPPORTED_CPUID:
        ((struct kvm_cpuid2 *)arg)->nent = 0;
        return 0;
    case KVM_IRQFD:
    case KVM_IOEVENTFD:
    case KVM_IRQ_LINE:
    case KVM_SET_TSS_ADDR:
    case KVM_SET_IDENTITY_MAP_ADDR:
    case KVM_CREATE_IRQCHIP:
    case KVM_CREATE_PIT2: return 0;
    }
    return __real_ioctl(fd, request, arg);
}

static int setup(void **state)
{
    (void)state;
    memset(&fake, 0, sizeof(fake));
    fake.api_version = KVM_API_VERSION;
    fake.max_vcpus = 32;
    fake.fail_vcpu = -1;
    fake.missing_cap = -1; /* KVM_CAP_IRQCHIP is 0 */
    return 0;
}

static void assert_all_closed(void)
{
    for (int i = 0; i < fake.nr_fds; i++)
        assert_int_equal(fcntl(fake.fds[i], F_GETFD), -1);
}

static void create_follows_arch_layout(void **state)
{
    (void)state;
    static struct vm vm;
    char err[256] = "";
    assert_int_equal(vm_create(&vm, &loop, 3584 * MiB, 2, err, sizeof(err)), 0);
    assert_int_equal(vm.nr_vcpus, 2);
    assert_true(vm.vcpus[0].fd >= 0 && vm.vcpus[1].fd >= 0);
    assert_int_not_equal(vm.vcpus[0].fd, vm.vcpus[1].fd);
    assert_non_null(vm.vcpus[1].run);
    /* RAM below the MMIO hole and the rest above 4 GiB, one slot each,
     * backed by the mappings the memory gate hands out. */
    assert_int_equal(fake.nr_slots, 2);
    assert_int_equal(fake.slots[0].guest_phys_addr, 0);
    assert_int_equal(fake.slots[0].memory_size, LAYOUT_MMIO_HOLE_START);
    assert_int_equal(fake.slots[1].slot, 1);
    assert_int_equal(fake.slots[1].guest_phys_addr, LAYOUT_MMIO_HOLE_END);
    assert_int_equal(fake.slots[1].memory_size,
                     3584 * MiB - LAYOUT_MMIO_HOLE_START);
    assert_ptr_equal((void *)(uintptr_t)fake.slots[1].userspace_addr,
                     gm_ptr(&vm.mem, LAYOUT_MMIO_HOLE_END, 1));
    vm_destroy(&vm);
    assert_all_closed();
}

static void missing_capability_is_named(void **state)
{
    (void)state;
    static const struct {
        long cap;
        const char *name;
    } caps[] = {{KVM_CAP_IRQFD, "KVM_CAP_IRQFD"},
                {KVM_CAP_IMMEDIATE_EXIT, "KVM_CAP_IMMEDIATE_EXIT"},
                {KVM_CAP_PIT2, "KVM_CAP_PIT2"}, /* the arch's */
                {KVM_CAP_IRQCHIP, "KVM_CAP_IRQCHIP"}};
    for (size_t i = 0; i < sizeof(caps) / sizeof(caps[0]); i++) {
        setup(NULL);
        fake.missing_cap = caps[i].cap;
        static struct vm vm;
        char err[256] = "";
        assert_int_equal(vm_create(&vm, &loop, 64 * MiB, 1, err, sizeof(err)),
                         -ENOTSUP);
        assert_non_null(strstr(err, caps[i].name));
        assert_int_equal(fake.nr_slots, 0);
        assert_all_closed();
    }
}

static void bad_api_version_refused(void **state)
{
    (void)state;
    fake.api_version = 11;
    static struct vm vm;
    char err[256] = "";
    assert_int_equal(vm_create(&vm, &loop, 64 * MiB, 1, err, sizeof(err)),
                     -ENOTSUP);
    assert_non_null(strstr(err, "API version 11"));
    assert_all_closed();
}

static void more_vcpus_than_kvm_allows(void **state)
{
    (void)state;
    fake.max_vcpus = 2;
    static struct vm vm;
    char err[256] = "";
    assert_int_equal(vm_create(&vm, &loop, 64 * MiB, 4, err, sizeof(err)),
                     -EINVAL);
    assert_non_null(strstr(err, "at most 2"));
    assert_all_closed();
    assert_int_equal(
        vm_create(&vm, &loop, 64 * MiB, VM_MAX_VCPUS + 1, err, sizeof(err)),
        -EINVAL);
}

static void vcpu_failure_cleans_up(void **state)
{
    (void)state;
    fake.fail_vcpu = 2;
    static struct vm vm;
    char err[256] = "";
    assert_int_equal(vm_create(&vm, &loop, 64 * MiB, 4, err, sizeof(err)),
                     -EMFILE);
    assert_non_null(strstr(err, "KVM_CREATE_VCPU 2"));
    assert_true(fake.nr_fds >= 4); /* kvm, vm, two vCPUs */
    assert_all_closed();
}

static void no_kvm_device_says_how_to_fix(void **state)
{
    (void)state;
    fake.no_device = true;
    static struct vm vm;
    char err[256] = "";
    assert_int_equal(vm_create(&vm, &loop, 64 * MiB, 1, err, sizeof(err)),
                     -ENOENT);
    assert_non_null(strstr(err, "KVM is not available"));
}

static void virtio_slots_announced_until_full(void **state)
{
    (void)state;
    static struct vm vm;
    char err[256] = "";
    assert_int_equal(vm_create(&vm, &loop, 64 * MiB, 1, err, sizeof(err)), 0);
    struct arch_place a, b;
    assert_int_equal(vm_virtio_mmio_slot(&vm, &a), 0);
    assert_int_equal(vm_virtio_mmio_slot(&vm, &b), 0);
    assert_int_equal(a.base, LAYOUT_VIRTIO_MMIO_BASE);
    assert_int_equal(b.base, LAYOUT_VIRTIO_MMIO_BASE + a.size);
    assert_int_equal(b.irq, a.irq + 1);
    assert_non_null(
        strstr(vm.cmdline.buf, "virtio_mmio.device=4K@0xd0000000:5"));
    assert_non_null(
        strstr(vm.cmdline.buf, "virtio_mmio.device=4K@0xd0001000:6"));
    int n = 2;
    while (vm_virtio_mmio_slot(&vm, &b) == 0)
        n++;
    assert_int_equal(n, LAYOUT_VIRTIO_MMIO_MAX);
    /* MMIO inside RAM would never exit: refused. */
    assert_int_equal(vm_add_mmio(&vm, 16 * MiB, 4096, NULL, NULL), -EINVAL);
    assert_int_equal(vm_add_mmio(&vm, UINT64_MAX - 10, 4096, NULL, NULL),
                     -EINVAL);
    vm_destroy(&vm);
    assert_all_closed();
}

static void machine_lists_every_device(void **state)
{
    (void)state;
    char path[64];
    snprintf(path, sizeof(path), "/tmp/test_vm.%d.sock", (int)getpid());
    struct machine_desc d = {
        .mem_bytes = 64 * MiB,
        .cpus = 1,
        .cmdline = "panic=-1",
        .console = true,
        .vconsole = true,
        .vconsole_socket = path,
        .agent_channel = true,
    };
    struct machine *m;
    char err[256] = "";
    assert_int_equal(machine_create(&m, &d, &loop, 0, err, sizeof(err)), 0);
    /* The platform's, then virtio in a fixed order, each listed once. */
    static const enum machine_dev_kind want[] = {
        MACHINE_DEV_UART, MACHINE_DEV_RESET, MACHINE_DEV_BOOT_TIMER,
        MACHINE_DEV_VCONSOLE, MACHINE_DEV_AGENT};
    assert_int_equal(m->nr_devs, 5);
    for (unsigned int i = 0; i < 5; i++)
        assert_int_equal(m->devs[i].kind, want[i]);
    assert_null(m->devs[0].slot);
    assert_non_null(m->devs[3].slot);
    assert_ptr_equal(machine_agent(m), m->devs[4].model);
    assert_true(machine_agent(m)->host_fd >= 0);
    /* The caller's parameters after console=, then each virtio device. */
    assert_string_equal(m->vm.cmdline.buf,
                        "console=ttyS0 panic=-1 "
                        "virtio_mmio.device=4K@0xd0000000:5 "
                        "virtio_mmio.device=4K@0xd0001000:6");
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600); /* runvm's user's alone */
    int host_fd = machine_agent(m)->host_fd;
    machine_destroy(m);
    assert_int_equal(fcntl(host_fd, F_GETFD), -1);
    assert_int_equal(access(path, F_OK), -1); /* the socket is removed */
    assert_all_closed();
}

static void machine_failure_cleans_up(void **state)
{
    (void)state;
    struct machine_desc d = {
        .mem_bytes = 64 * MiB, .cpus = 1, .net_tap = "no-such-tap"};
    struct machine *m = (struct machine *)&d; /* overwritten with NULL */
    char err[256] = "";
    assert_true(machine_create(&m, &d, &loop, 0, err, sizeof(err)) < 0);
    assert_null(m);
    assert_non_null(strstr(err, "tap no-such-tap: "));
    assert_all_closed();
    d = (struct machine_desc){
        .mem_bytes = 64 * MiB, .cpus = 1, .cmdline = "bad\ncmdline"};
    assert_int_equal(machine_create(&m, &d, &loop, 0, err, sizeof(err)),
                     -EINVAL);
    assert_non_null(strstr(err, "kernel command line"));
    assert_all_closed();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(create_follows_arch_layout, setup),
        cmocka_unit_test_setup(missing_capability_is_named, setup),
        cmocka_unit_test_setup(bad_api_version_refused, setup),
        cmocka_unit_test_setup(more_vcpus_than_kvm_allows, setup),
        cmocka_unit_test_setup(vcpu_failure_cleans_up, setup),
        cmocka_unit_test_setup(no_kvm_device_says_how_to_fix, setup),
        cmocka_unit_test_setup(virtio_slots_announced_until_full, setup),
        cmocka_unit_test_setup(machine_lists_every_device, setup),
        cmocka_unit_test_setup(machine_failure_cleans_up, setup),
    };
    return cmocka_run_group_tests(tests, loop_up, loop_down);
}
