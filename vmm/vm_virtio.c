#include "vmm/vm_virtio.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

void vm_virtio_irq(void *opaque)
{
    struct vm_virtio *slot = opaque;
    uint64_t one = 1;
    /* An edge on the line: KVM injects it without a trip through runvm.
     * EAGAIN (counter saturated) still leaves an interrupt pending. */
    ssize_t n = write(slot->irq_fd, &one, sizeof(one));
    (void)n;
}

void vm_virtio_prepare(struct vm_virtio *slot, struct vm *vm)
{
    memset(slot, 0, sizeof(*slot));
    slot->vm = vm;
    slot->irq_fd = -1;
    for (unsigned int i = 0; i < VIRTIO_MMIO_MAX_QUEUES; i++)
        slot->queues[i].fd = -1;
}

/* An ioeventfd fired: the guest wrote this queue's index to QueueNotify. */
static void queue_kicked(void *opaque, uint32_t events)
{
    struct vm_virtio_queue *q = opaque;
    (void)events;
    uint64_t count;
    if (read(q->fd, &count, sizeof(count)) < 0)
        return;
    virtio_mmio_notify(q->slot->dev, q->index);
}

int vm_virtio_attach(struct vm_virtio *slot, struct virtio_dev *dev, char *err,
                     size_t err_len)
{
    struct vm *vm = slot->vm;
    const char *name = dev->ops->name;
    slot->dev = dev;
    struct arch_place place;
    int ret = vm_virtio_mmio_slot(vm, &place);
    if (ret < 0) {
        snprintf(err, err_len,
                 "%s: no free virtio-mmio slot (%u in use, "
                 "or the kernel command line is full)",
                 name, vm->nr_virtio);
        return ret;
    }
    slot->base = place.base;
    slot->size = place.size;
    slot->irq = place.irq;
    slot->irq_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (slot->irq_fd < 0) {
        ret = -errno;
        snprintf(err, err_len, "%s: eventfd: %s", name, strerror(-ret));
        return ret;
    }
    ret = vm_irqfd(vm, slot->irq_fd, slot->irq);
    if (ret < 0) {
        snprintf(err, err_len, "%s: KVM_IRQFD on GSI %u: %s", name, slot->irq,
                 strerror(-ret));
        return ret;
    }
    ret = vm_add_mmio(vm, slot->base, slot->size, &virtio_mmio_bus_ops, dev);
    if (ret < 0) {
        snprintf(err, err_len, "%s: MMIO window 0x%llx: %s", name,
                 (unsigned long long)slot->base, strerror(-ret));
        return ret;
    }
    for (unsigned int i = 0; i < dev->ops->num_queues; i++) {
        struct vm_virtio_queue *q = &slot->queues[i];
        q->slot = slot;
        q->index = i;
        q->fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (q->fd < 0)
            continue;
        /* Without the ioeventfd the write exits to the vCPU thread and
         * reaches virtio_mmio_write: slower, still correct. */
        if (vm_ioeventfd(vm, q->fd, slot->base + VIRTIO_MMIO_QUEUE_NOTIFY, 4, 1,
                         i) < 0 ||
            evloop_add(vm->loop, q->fd, EPOLLIN, queue_kicked, q) < 0) {
            fprintf(stderr,
                    "runvm: %s: queue %u notifications through "
                    "MMIO exits (no ioeventfd)\n",
                    name, i);
            close(q->fd);
            q->fd = -1;
        }
    }
    return 0;
}

void vm_virtio_detach(struct vm_virtio *slot)
{
    for (unsigned int i = 0; i < VIRTIO_MMIO_MAX_QUEUES; i++) {
        if (slot->queues[i].fd >= 0) {
            evloop_del(slot->vm->loop, slot->queues[i].fd);
            close(slot->queues[i].fd);
        }
        slot->queues[i].fd = -1;
    }
    if (slot->irq_fd >= 0)
        close(slot->irq_fd);
    slot->irq_fd = -1;
}
