#include "vmm/agent_channel.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "protocol/msg.h"

int agent_channel_attach(struct agent_channel *ch, struct vm *vm, char *err,
                         size_t err_len)
{
    int sv[2];
    memset(ch, 0, sizeof(*ch));
    ch->host_fd = ch->guest_fd = -1;
    vm_virtio_prepare(&ch->slot, vm);
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
        int ret = -errno;
        snprintf(err, err_len, "agent channel: socketpair: %s", strerror(-ret));
        return ret;
    }
    ch->host_fd = sv[0];
    ch->guest_fd = sv[1];
    /* Large buffers: fewer wake-ups per MiB of guest output. */
    int size = 1 << 20;
    (void)setsockopt(sv[0], SOL_SOCKET, SO_RCVBUF, &size, sizeof(size));
    (void)setsockopt(sv[1], SOL_SOCKET, SO_SNDBUF, &size, sizeof(size));
    /* A named generic port, not the console port: the guest writes it in
     * 32 KiB buffers without waiting for each (devices/virtio_console.h). */
    int ret = virtio_console_init_port(
        &ch->con, &vm->mem, vm->loop, ch->guest_fd, ch->guest_fd,
        MSG_CHANNEL_PORT_NAME, vm_virtio_irq, &ch->slot);
    if (ret < 0) {
        snprintf(err, err_len, "agent channel: virtio-console: %s",
                 strerror(-ret));
        return ret;
    }
    ch->attached = 1;
    return vm_virtio_attach(&ch->slot, &ch->con.vdev, err, err_len);
}

void agent_channel_free(struct agent_channel *ch)
{
    if (ch->attached) {
        vm_virtio_detach(&ch->slot);
        virtio_console_free(&ch->con);
        ch->attached = 0;
    }
    if (ch->host_fd >= 0)
        close(ch->host_fd);
    if (ch->guest_fd >= 0)
        close(ch->guest_fd);
    ch->host_fd = ch->guest_fd = -1;
}
