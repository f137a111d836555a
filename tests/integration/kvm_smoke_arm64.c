/* arm64 KVM smoke test: one vCPU stores to a guest-physical address that no
 * memslot covers, and KVM_RUN must come back with KVM_EXIT_MMIO for it.
 * Built as build/aarch64/tests/kvm_smoke by make ARCH=aarch64 test-progs;
 * tests/integration/01-kvm-smoke.t runs it. */
#include <fcntl.h>
#include <linux/kvm.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#define CODE_GPA  0x10000ULL    /* the one memslot, holding the code */
#define CODE_SIZE 0x10000ULL    /* a page on 4, 16 and 64 KiB-page hosts */
#define MMIO_GPA  0x10000000ULL /* in no memslot: a stage-2 fault, MMIO */
#define MMIO_DATA 0x42ULL

/* The vCPU starts at EL1 with its MMU off, so addresses are physical and
 * the store is a Device access that KVM can decode (ISV set). */
static const uint32_t guest_code[] = {
    0xd2a20001, /* mov x1, #0x10000000 (MMIO_GPA) */
    0xd2800840, /* mov x0, #0x42 (MMIO_DATA) */
    0xf9000020, /* str x0, [x1] */
    0x14000000, /* b . */
};

static int check(int ret, const char *what)
{
    if (ret < 0) {
        perror(what);
        exit(1);
    }
    return ret;
}

int main(void)
{
    int kvm = check(open("/dev/kvm", O_RDWR | O_CLOEXEC), "/dev/kvm");
    int vm = check(ioctl(kvm, KVM_CREATE_VM, 0), "KVM_CREATE_VM");

    void *mem = mmap(NULL, CODE_SIZE, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (mem == MAP_FAILED) {
        perror("mmap guest memory");
        return 1;
    }
    memcpy(mem, guest_code, sizeof(guest_code));
    struct kvm_userspace_memory_region slot = {
        .slot = 0,
        .guest_phys_addr = CODE_GPA,
        .memory_size = CODE_SIZE,
        .userspace_addr = (uintptr_t)mem,
    };
    check(ioctl(vm, KVM_SET_USER_MEMORY_REGION, &slot),
          "KVM_SET_USER_MEMORY_REGION");

    int vcpu = check(ioctl(vm, KVM_CREATE_VCPU, 0), "KVM_CREATE_VCPU");
    struct kvm_vcpu_init init;
    check(ioctl(vm, KVM_ARM_PREFERRED_TARGET, &init),
          "KVM_ARM_PREFERRED_TARGET");
    check(ioctl(vcpu, KVM_ARM_VCPU_INIT, &init), "KVM_ARM_VCPU_INIT");

    uint64_t pc = CODE_GPA;
    struct kvm_one_reg reg = {
        .id = KVM_REG_ARM64 | KVM_REG_SIZE_U64 | KVM_REG_ARM_CORE |
              KVM_REG_ARM_CORE_REG(regs.pc),
        .addr = (uintptr_t)&pc,
    };
    check(ioctl(vcpu, KVM_SET_ONE_REG, &reg), "KVM_SET_ONE_REG pc");

    int run_size =
        check(ioctl(kvm, KVM_GET_VCPU_MMAP_SIZE, 0), "KVM_GET_VCPU_MMAP_SIZE");
    struct kvm_run *run =
        mmap(NULL, run_size, PROT_READ | PROT_WRITE, MAP_SHARED, vcpu, 0);
    if (run == MAP_FAILED) {
        perror("mmap kvm_run");
        return 1;
    }
    check(ioctl(vcpu, KVM_RUN, 0), "KVM_RUN");

    if (run->exit_reason != KVM_EXIT_MMIO) {
        fprintf(stderr, "kvm_smoke: exit reason %u, not KVM_EXIT_MMIO\n",
                run->exit_reason);
        return 1;
    }
    uint64_t data = 0;
    memcpy(&data, run->mmio.data,
           run->mmio.len <= sizeof(data) ? run->mmio.len : sizeof(data));
    printf("KVM_EXIT_MMIO: %s of %u bytes at 0x%llx, data 0x%llx\n",
           run->mmio.is_write ? "write" : "read", run->mmio.len,
           (unsigned long long)run->mmio.phys_addr, (unsigned long long)data);
    if (!run->mmio.is_write || run->mmio.phys_addr != MMIO_GPA ||
        run->mmio.len != 8 || data != MMIO_DATA) {
        fprintf(stderr,
                "kvm_smoke: expected an 8-byte write of 0x%llx at "
                "0x%llx\n",
                MMIO_DATA, MMIO_GPA);
        return 1;
    }
    puts("kvm_smoke: ok");
    return 0;
}
