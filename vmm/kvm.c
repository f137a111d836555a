#include "vmm/kvm.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <linux/kvm.h>

#include "arch/arch.h"

/* What any runvm VM needs; the arch adds its own (arch_kvm_caps). */
static const struct arch_kvm_cap generic_caps[] = {
    {KVM_CAP_USER_MEMORY, "KVM_CAP_USER_MEMORY"},
    {KVM_CAP_IRQFD, "KVM_CAP_IRQFD"},
    {KVM_CAP_IOEVENTFD, "KVM_CAP_IOEVENTFD"},
    {KVM_CAP_IMMEDIATE_EXIT, "KVM_CAP_IMMEDIATE_EXIT"},
    {0, NULL},
};

/* 0, or -ENOTSUP with the first missing capability named in err. */
static int check_caps(int kvm_fd, const struct arch_kvm_cap *caps, char *err,
                      size_t err_len)
{
    for (; caps->name; caps++) {
        if (ioctl(kvm_fd, KVM_CHECK_EXTENSION, caps->cap) <= 0) {
            snprintf(err, err_len,
                     KVM_DEVICE ": the host kernel lacks %s; "
                                "runvm needs a newer KVM",
                     caps->name);
            return -ENOTSUP;
        }
    }
    return 0;
}

int kvm_open(char *err, size_t err_len)
{
    int fd = open(KVM_DEVICE, O_RDWR | O_CLOEXEC);
    if (fd >= 0) {
        int ret = arch_check_kvm(err, err_len);
        if (ret < 0) {
            close(fd);
            return ret;
        }
        return fd;
    }
    int e = errno;
    switch (e) {
    case ENOENT:
    case ENODEV:
    case ENXIO:
        snprintf(err, err_len,
                 KVM_DEVICE ": %s — KVM is not available: " ARCH_KVM_HINT,
                 strerror(e));
        break;
    case EACCES:
    case EPERM:
        snprintf(err, err_len,
                 KVM_DEVICE
                 ": permission denied — add "
                 "yourself to the kvm group (sudo usermod -aG kvm $USER, "
                 "then log in again)");
        break;
    default: snprintf(err, err_len, KVM_DEVICE ": %s", strerror(e)); break;
    }
    return -e;
}

int kvm_check(int kvm_fd, unsigned int nr_cpus, size_t *run_size, char *err,
              size_t err_len)
{
    int api = ioctl(kvm_fd, KVM_GET_API_VERSION, 0);
    if (api != KVM_API_VERSION) {
        snprintf(err, err_len,
                 KVM_DEVICE ": KVM API version %d, runvm "
                            "needs %d",
                 api, KVM_API_VERSION);
        return -ENOTSUP;
    }
    int ret = check_caps(kvm_fd, generic_caps, err, err_len);
    if (ret == 0)
        ret = check_caps(kvm_fd, arch_kvm_caps(), err, err_len);
    if (ret < 0)
        return ret;
    int max_vcpus = ioctl(kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_MAX_VCPUS);
    if (max_vcpus > 0 && nr_cpus > (unsigned int)max_vcpus) {
        snprintf(err, err_len, "%u vCPUs: this host's KVM allows at most %d",
                 nr_cpus, max_vcpus);
        return -EINVAL;
    }
    int size = ioctl(kvm_fd, KVM_GET_VCPU_MMAP_SIZE, 0);
    if (size < (int)sizeof(struct kvm_run)) {
        snprintf(err, err_len, "KVM_GET_VCPU_MMAP_SIZE: %s",
                 size < 0 ? strerror(errno) : "too small");
        return -EINVAL;
    }
    *run_size = (size_t)size;
    return 0;
}
