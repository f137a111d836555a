/* The KVM system device: opening /dev/kvm with a message that says how to
 * fix what failed, and checking that its API and capabilities are those
 * runvm needs (the generic ones here, the platform's from arch/). */
#ifndef RUNVM_KVM_H
#define RUNVM_KVM_H

#include <stddef.h>

#define KVM_DEVICE "/dev/kvm"

/* Opens /dev/kvm and checks that it can boot a Linux guest here
 * (arch_check_kvm). The fd, or -errno with a one-line message in err. */
int kvm_open(char *err, size_t err_len) __attribute__((warn_unused_result));

/* Checks kvm_fd's API version, every capability runvm and the arch need,
 * and that nr_cpus vCPUs are allowed; *run_size gets the size of a vCPU's
 * kvm_run mapping. 0, or -errno with a message naming what is missing. */
int kvm_check(int kvm_fd, unsigned int nr_cpus, size_t *run_size, char *err,
              size_t err_len) __attribute__((warn_unused_result));

#endif
