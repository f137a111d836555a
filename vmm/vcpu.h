/* A vCPU: its fd and kvm_run mapping, the thread that runs it, and how
 * that thread is kicked out of KVM_RUN and joined. The thread runs exits
 * through vmm/exit.c against its VM's buses until the VM stops. */
#ifndef RUNVM_VCPU_H
#define RUNVM_VCPU_H

#include <pthread.h>
#include <stddef.h>

#include <linux/kvm.h>

struct vm;

struct vcpu {
    struct vm *vm;
    unsigned int index;
    int fd;
    struct kvm_run *run; /* mmap'ed, run_size bytes */
    size_t run_size;
    pthread_t thread;
    int thread_started;
};

/* Creates vCPU index of vm (KVM_CREATE_VCPU on vm_fd) and maps its
 * kvm_run. 0, or -errno with a message in err; vcpu_destroy cleans up
 * either way. */
int vcpu_create(struct vcpu *v, struct vm *vm, int vm_fd, unsigned int index,
                size_t run_size, char *err, size_t err_len)
    __attribute__((warn_unused_result));

/* Starts the thread; it runs until vm_stopped(vm). 0 or -errno. */
int vcpu_start(struct vcpu *v) __attribute__((warn_unused_result));

/* Makes a started vCPU leave KVM_RUN (or not enter it) soon. Thread-safe. */
void vcpu_kick(struct vcpu *v);

/* Waits for a started thread to end, kicking it again every 50 ms: a
 * halted vCPU has been seen (nested KVM) to sleep through one kick. */
void vcpu_join(struct vcpu *v);

/* On a vCPU whose thread has ended: enters KVM_RUN once with
 * immediate_exit, which completes the exit it left (KVM writes an MMIO or
 * port read's value into the registers) and returns at once. Leaves
 * immediate_exit clear for the next vcpu_start. 0 or -errno. */
int vcpu_complete_io(struct vcpu *v) __attribute__((warn_unused_result));

/* Unmaps and closes. Safe on a zeroed vCPU with fd -1. */
void vcpu_destroy(struct vcpu *v);

#endif
