/* Attaches a virtio-mmio device model (devices/virtio_mmio.h) to a KVM VM:
 * a 4 KiB window and interrupt line from vm_virtio_mmio_slot, the window on
 * the MMIO bus, its interrupt through an irqfd, and each queue's
 * QueueNotify write through an ioeventfd served on the VM's event loop.
 * The device model stays KVM-free; this is the only place they meet. */
#ifndef RUNVM_VM_VIRTIO_H
#define RUNVM_VM_VIRTIO_H

#include <stddef.h>
#include <stdint.h>

#include "devices/virtio_mmio.h"
#include "vmm/vm.h"

struct vm_virtio;

struct vm_virtio_queue {
    struct vm_virtio *slot;
    unsigned int index;
    int fd; /* ioeventfd, -1 if KVM refused it (MMIO exits then) */
};

struct vm_virtio {
    struct vm *vm;
    struct virtio_dev *dev;
    uint64_t base;
    uint64_t size;
    unsigned int irq;
    int irq_fd; /* eventfd bound to the interrupt line by KVM_IRQFD */
    struct vm_virtio_queue queues[VIRTIO_MMIO_MAX_QUEUES];
};

/* The virtio_irq_fn to give a device model, with the (not yet attached)
 * struct vm_virtio as its opaque. Thread-safe. */
void vm_virtio_irq(void *slot);

/* Prepares slot before the device model is initialised (so that its irq
 * callback has a valid opaque). */
void vm_virtio_prepare(struct vm_virtio *slot, struct vm *vm);

/* Gives dev (already initialised with vm_virtio_irq and slot) a window and
 * an interrupt, before vm_load. 0, or -errno with a message in err. */
int vm_virtio_attach(struct vm_virtio *slot, struct virtio_dev *dev, char *err,
                     size_t err_len) __attribute__((warn_unused_result));

/* Closes the eventfds (after vm_run). Safe on a prepared, unattached slot. */
void vm_virtio_detach(struct vm_virtio *slot);

#endif
