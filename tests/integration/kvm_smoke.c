/* Smoke test of raw KVM: a VM with one vCPU runs a few real-mode
 * instructions that compute 6 * 7 in a loop, write it to an I/O port, then
 * write a 16-bit constant, and halt. Checks every exit the VMM sees. */
#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#define GUEST_CODE 0x1000
#define SMOKE_PORT 0x10

static const uint8_t code[] = {
    0x31, 0xc0,             /* xor ax, ax */
    0xb9, 0x07,       0x00, /* mov cx, 7 */
    0x05, 0x06,       0x00, /* l: add ax, 6 */
    0xe2, 0xfb,             /* loop l */
    0xba, SMOKE_PORT, 0x00, /* mov dx, 0x10 */
    0xee,                   /* out dx, al      -> 42 */
    0xb8, 0xef,       0xbe, /* mov ax, 0xbeef */
    0xef,                   /* out dx, ax      -> 0xbeef */
    0xf4,                   /* hlt */
};

static int failures;

#define CHECK(cond, ...)                                                       \
    do {                                                                       \
        if (!(cond)) {                                                         \
            fprintf(stderr, "kvm_smoke: FAIL %s: ", #cond);                    \
            fprintf(stderr, __VA_ARGS__);                                      \
            fputc('\n', stderr);                                               \
            failures++;                                                        \
        }                                                                      \
    } while (0)

static void die(const char *what)
{
    fprintf(stderr, "kvm_smoke: %s: %s\n", what, strerror(errno));
    exit(1);
}

int main(void)
{
    int kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
    if (kvm < 0)
        die("/dev/kvm");
    int api = ioctl(kvm, KVM_GET_API_VERSION, 0);
    CHECK(api == KVM_API_VERSION, "API version %d", api);
    int vm = ioctl(kvm, KVM_CREATE_VM, 0);
    if (vm < 0)
        die("KVM_CREATE_VM");

    size_t mem_size = 0x10000;
    uint8_t *mem = mmap(NULL, mem_size, PROT_READ | PROT_WRITE,
                        MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (mem == MAP_FAILED)
        die("mmap");
    memcpy(mem + GUEST_CODE, code, sizeof(code));
    struct kvm_userspace_memory_region region = {
        .slot = 0,
        .guest_phys_addr = 0,
        .memory_size = mem_size,
        .userspace_addr = (uintptr_t)mem,
    };
    if (ioctl(vm, KVM_SET_USER_MEMORY_REGION, &region) < 0)
        die("KVM_SET_USER_MEMORY_REGION");

    int vcpu = ioctl(vm, KVM_CREATE_VCPU, 0);
    if (vcpu < 0)
        die("KVM_CREATE_VCPU");
    int run_size = ioctl(kvm, KVM_GET_VCPU_MMAP_SIZE, 0);
    if (run_size < (int)sizeof(struct kvm_run))
        die("KVM_GET_VCPU_MMAP_SIZE");
    struct kvm_run *run =
        mmap(NULL, run_size, PROT_READ | PROT_WRITE, MAP_SHARED, vcpu, 0);
    if (run == MAP_FAILED)
        die("mmap kvm_run");

    struct kvm_sregs sregs;
    if (ioctl(vcpu, KVM_GET_SREGS, &sregs) < 0)
        die("KVM_GET_SREGS");
    sregs.cs.base = 0;
    sregs.cs.selector = 0;
    if (ioctl(vcpu, KVM_SET_SREGS, &sregs) < 0)
        die("KVM_SET_SREGS");
    struct kvm_regs regs = {.rip = GUEST_CODE, .rflags = 0x2};
    if (ioctl(vcpu, KVM_SET_REGS, &regs) < 0)
        die("KVM_SET_REGS");

    /* Expected exits, in order. */
    struct {
        uint32_t reason;
        uint8_t size;
        uint32_t value;
    } want[] = {
        {KVM_EXIT_IO, 1, 42},
        {KVM_EXIT_IO, 2, 0xbeef},
        {KVM_EXIT_HLT, 0, 0},
    };
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        if (ioctl(vcpu, KVM_RUN, 0) < 0)
            die("KVM_RUN");
        CHECK(run->exit_reason == want[i].reason,
              "exit %zu: reason %u, want %u", i, run->exit_reason,
              want[i].reason);
        if (run->exit_reason != want[i].reason)
            break;
        if (want[i].reason == KVM_EXIT_IO) {
            uint32_t v = 0;
            CHECK(run->io.direction == KVM_EXIT_IO_OUT,
                  "exit %zu: direction %u", i, run->io.direction);
            CHECK(run->io.port == SMOKE_PORT, "exit %zu: port %#x", i,
                  run->io.port);
            CHECK(run->io.size == want[i].size, "exit %zu: size %u", i,
                  run->io.size);
            CHECK(run->io.count == 1, "exit %zu: count %u", i, run->io.count);
            memcpy(&v, (uint8_t *)run + run->io.data_offset, run->io.size);
            CHECK(v == want[i].value, "exit %zu: value %#x, want %#x", i, v,
                  want[i].value);
            printf("kvm_smoke: exit %zu: out port %#x size %u value %#x\n", i,
                   run->io.port, run->io.size, v);
        } else {
            printf("kvm_smoke: exit %zu: hlt\n", i);
        }
    }
    if (ioctl(vcpu, KVM_GET_REGS, &regs) < 0)
        die("KVM_GET_REGS");
    CHECK(regs.rip == GUEST_CODE + sizeof(code), "rip %#llx after hlt",
          (unsigned long long)regs.rip);
    CHECK(regs.rcx == 0, "loop counter %#llx", (unsigned long long)regs.rcx);
    if (failures)
        return 1;
    printf("kvm_smoke: ok\n");
    return 0;
}
