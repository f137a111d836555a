#include "vmm/machine.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "devices/boot_timer.h"
#include "devices/virtio_console.h"
#include "devices/virtio_net.h"

static void add_dev(struct machine *m, enum machine_dev_kind kind,
                    const char *name, void *model, struct vm_virtio *slot)
{
    /* Sized for every kind once: a full list is a bug here, not input. */
    if (m->nr_devs < MACHINE_MAX_DEVICES)
        m->devs[m->nr_devs++] = (struct machine_dev){kind, name, model, slot};
}

/* Registers a platform device at place on its bus (absent: nothing). */
static int add_platform(struct machine *m, const struct arch_place *place,
                        const struct bus_dev_ops *ops, void *model)
{
    switch (place->bus) {
    case ARCH_BUS_NONE: return 0;
    case ARCH_BUS_PIO:
        return vm_add_pio(&m->vm, (uint16_t)place->base, (uint16_t)place->size,
                          ops, model);
    case ARCH_BUS_MMIO:
        return vm_add_mmio(&m->vm, place->base, place->size, ops, model);
    }
    return -EINVAL;
}

/* The UART's interrupt is the machine's; its output and flow control are
 * the front end's (machine_desc). */
static void uart_irq(void *opaque, int level)
{
    struct machine *m = opaque;
    (void)vm_irq_line(&m->vm, arch_platform()->uart.irq, level);
}

static void uart_out(void *opaque, const uint8_t *data, size_t len)
{
    struct machine *m = opaque;
    m->uart_out(m->uart_opaque, data, len);
}

static void uart_rx_ready(void *opaque)
{
    struct machine *m = opaque;
    m->uart_rx_ready(m->uart_opaque);
}

static void reset_requested(void *opaque)
{
    struct machine *m = opaque;
    vm_request_stop(&m->vm, VM_STOP_GUEST, "guest reset (i8042)", 0);
}

static int add_platform_devices(struct machine *m, const struct machine_desc *d,
                                char *err, size_t err_len)
{
    const struct arch_platform *p = arch_platform();
    m->uart_out = d->console ? d->uart_out : NULL;
    m->uart_rx_ready = d->uart_rx_ready;
    m->uart_opaque = d->uart_opaque;
    struct serial_callbacks cb = {
        .out = m->uart_out ? uart_out : NULL,
        .set_irq = uart_irq,
        .rx_empty = m->uart_rx_ready ? uart_rx_ready : NULL,
        .opaque = m,
    };
    int ret = serial_init(&m->serial, &cb);
    if (ret == 0) {
        add_dev(m, MACHINE_DEV_UART, "uart", &m->serial, NULL);
        ret = add_platform(m, &p->uart, &serial_bus_ops, &m->serial);
    }
    if (ret < 0) {
        snprintf(err, err_len, "serial port: %s", strerror(-ret));
        return ret;
    }
    /* Where the platform has them: a reset line that is not an i8042
     * (PSCI on aarch64) is the arch's own. */
    if (p->reset.bus != ARCH_BUS_NONE) {
        m->i8042 = (struct i8042){.reset = reset_requested, .opaque = m};
        add_dev(m, MACHINE_DEV_RESET, "i8042", &m->i8042, NULL);
        ret = add_platform(m, &p->reset, &i8042_bus_ops, &m->i8042);
    }
    if (ret == 0 && p->boot_timer.bus != ARCH_BUS_NONE) {
        add_dev(m, MACHINE_DEV_BOOT_TIMER, "boot-timer", &m->timer, NULL);
        ret = add_platform(m, &p->boot_timer, &boot_timer_bus_ops, &m->timer);
    }
    if (ret < 0) {
        snprintf(err, err_len, "legacy devices: %s", strerror(-ret));
        return ret;
    }
    return 0;
}

/* ---- virtio devices ---------------------------------------------------- */

/* A client connected to the vconsole's socket: it becomes the console's
 * back-end, and the machine stops listening (one client per VM). */
static void vcon_accept(void *opaque, uint32_t events)
{
    struct machine *m = opaque;
    (void)events;
    int fd = accept4(m->vcon_listen_fd, NULL, NULL, SOCK_CLOEXEC);
    if (fd < 0)
        return;
    int ret = virtio_console_connect(m->vcon, fd, fd);
    if (ret < 0) {
        fprintf(stderr, "runvm: virtio-console: client: %s\n", strerror(-ret));
        close(fd);
        return;
    }
    evloop_del(m->vm.loop, m->vcon_listen_fd);
    close(m->vcon_listen_fd);
    m->vcon_listen_fd = -1;
}

static int vcon_listen(struct machine *m, const char *path, char *err,
                       size_t err_len)
{
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof(addr.sun_path)) {
        snprintf(err, err_len, "virtio-console socket %s: path too long", path);
        return -ENAMETOOLONG;
    }
    memcpy(addr.sun_path, path, strlen(path));
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    int ret = fd < 0 ? -errno : 0;
    if (ret == 0) {
        /* Mode 0600 from the start: the guest's console is runvm's
         * user's alone, with no window where others could connect. */
        mode_t old = umask(0177);
        if (bind(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0 ||
            listen(fd, 1) < 0)
            ret = -errno;
        umask(old);
    }
    if (ret < 0) {
        snprintf(err, err_len, "virtio-console socket %s: %s%s", path,
                 strerror(-ret),
                 ret == -EADDRINUSE ? " (remove the stale "
                                      "socket or pick another path)"
                                    : "");
        if (fd >= 0)
            close(fd);
        return ret;
    }
    m->vcon_listen_fd = fd;
    m->vcon_path = path;
    ret = evloop_add(m->vm.loop, fd, EPOLLIN, vcon_accept, m);
    if (ret < 0)
        snprintf(err, err_len, "virtio-console: event loop: %s",
                 strerror(-ret));
    return ret;
}

static int add_vconsole(struct machine *m, const struct machine_desc *d,
                        char *err, size_t err_len)
{
    struct vm *vm = &m->vm;
    m->vcon = calloc(1, sizeof(*m->vcon));
    if (!m->vcon) {
        snprintf(err, err_len, "virtio-console: out of memory");
        return -ENOMEM;
    }
    vm_virtio_prepare(&m->vcon_slot, vm);
    bool sock = d->vconsole_socket != NULL;
    int ret = virtio_console_init(
        m->vcon, &vm->mem, vm->loop, sock ? -1 : d->vconsole_in,
        sock ? -1 : d->vconsole_out, vm_virtio_irq, &m->vcon_slot);
    if (ret < 0) {
        free(m->vcon);
        m->vcon = NULL;
        snprintf(err, err_len, "virtio-console: %s", strerror(-ret));
        return ret;
    }
    add_dev(m, MACHINE_DEV_VCONSOLE, "virtio-console", m->vcon, &m->vcon_slot);
    ret = vm_virtio_attach(&m->vcon_slot, &m->vcon->vdev, err, err_len);
    if (ret == 0 && sock)
        ret = vcon_listen(m, d->vconsole_socket, err, err_len);
    return ret;
}

static int add_net(struct machine *m, const struct machine_desc *d, char *err,
                   size_t err_len)
{
    struct vm *vm = &m->vm;
    m->tap_fd = virtio_net_open_tap(d->net_tap);
    if (m->tap_fd < 0) {
        int ret = m->tap_fd;
        const char *hint = ret == -ENODEV ? " (create it first: ip tuntap "
                                            "add NAME mode tap)"
                           : ret == -EPERM || ret == -EACCES
                               ? " (needs CAP_NET_ADMIN or a tap "
                                 "owned by this user)"
                               : "";
        snprintf(err, err_len, "tap %s: %s%s", d->net_tap,
                 ret == -ENODEV ? "no such device" : strerror(-ret), hint);
        return ret;
    }
    m->vnet = calloc(1, sizeof(*m->vnet));
    if (!m->vnet) {
        snprintf(err, err_len, "virtio-net: out of memory");
        return -ENOMEM;
    }
    vm_virtio_prepare(&m->vnet_slot, vm);
    int ret = virtio_net_init(m->vnet, &vm->mem, vm->loop, m->tap_fd,
                              d->net_mac, vm_virtio_irq, &m->vnet_slot);
    if (ret < 0) {
        free(m->vnet);
        m->vnet = NULL;
        snprintf(err, err_len, "virtio-net on tap %s: %s", d->net_tap,
                 strerror(-ret));
        return ret;
    }
    add_dev(m, MACHINE_DEV_NET, "virtio-net", m->vnet, &m->vnet_slot);
    return vm_virtio_attach(&m->vnet_slot, &m->vnet->vdev, err, err_len);
}

/* The agent's console port: allocated only when asked for (50 KB, most of
 * it queue state, that a bare boot would otherwise carry). */
static int add_agent_channel(struct machine *m, char *err, size_t err_len)
{
    m->agent = calloc(1, sizeof(*m->agent));
    if (!m->agent) {
        snprintf(err, err_len, "agent channel: out of memory");
        return -ENOMEM;
    }
    int ret = agent_channel_attach(m->agent, &m->vm, err, err_len);
    add_dev(m, MACHINE_DEV_AGENT, "agent channel", m->agent, &m->agent->slot);
    return ret;
}

/* ---- the machine ------------------------------------------------------- */

int machine_create(struct machine **out, const struct machine_desc *d,
                   struct evloop *loop, uint64_t t_start, char *err,
                   size_t err_len)
{
    *out = NULL;
    /* Large (buses, vCPUs): on the heap. */
    struct machine *m = calloc(1, sizeof(*m));
    if (!m) {
        snprintf(err, err_len, "out of memory");
        return -ENOMEM;
    }
    m->vcon_listen_fd = m->tap_fd = -1;
    m->vm.t_start = t_start;
    int ret = vm_create_from(&m->vm, loop, d->mem_bytes, d->cpus, d->ram_file,
                             d->kvm_fd ? *d->kvm_fd : -1, err, err_len);
    if (ret < 0) {
        free(m);
        return ret;
    }
    const char *console = arch_platform()->console_param;
    if ((d->console && console &&
         cmdline_append(&m->vm.cmdline, console) < 0) ||
        (d->cmdline && cmdline_append(&m->vm.cmdline, d->cmdline) < 0)) {
        snprintf(err, err_len,
                 "kernel command line: too long or has control "
                 "characters");
        ret = -EINVAL;
        goto fail;
    }
    if (d->count_exits) /* exits per boot phase, best effort */
        vm_count_exits(&m->vm, &m->timer, !d->sandboxed);
    ret = add_platform_devices(m, d, err, err_len);
    if (ret == 0 && d->vconsole)
        ret = add_vconsole(m, d, err, err_len);
    if (ret == 0 && d->net_tap)
        ret = add_net(m, d, err, err_len);
    if (ret == 0 && d->agent_channel)
        ret = add_agent_channel(m, err, err_len);
    if (ret < 0)
        goto fail;
    *out = m;
    return 0;
fail:
    machine_destroy(m);
    return ret;
}

struct agent_channel *machine_agent(struct machine *m)
{
    for (unsigned int i = 0; i < m->nr_devs; i++)
        if (m->devs[i].kind == MACHINE_DEV_AGENT)
            return m->devs[i].model;
    return NULL;
}

void machine_print_stats(const struct machine *m, FILE *f)
{
    for (unsigned int i = 0; i < m->nr_devs; i++) {
        const struct machine_dev *d = &m->devs[i];
        if (d->kind == MACHINE_DEV_VCONSOLE) {
            const struct virtio_console *c = d->model;
            fprintf(f,
                    "runvm: %s: to guest %llu bytes, to host %llu bytes, "
                    "%llu notifications, %llu interrupts\n",
                    d->name, (unsigned long long)c->bytes_to_guest,
                    (unsigned long long)c->bytes_to_host,
                    (unsigned long long)c->vdev.notifies,
                    (unsigned long long)c->vdev.interrupts);
        } else if (d->kind == MACHINE_DEV_NET) {
            const struct virtio_net *n = d->model;
            fprintf(f,
                    "runvm: %s: rx %llu frames (%llu dropped), tx %llu "
                    "frames (%llu dropped), %llu notifications, %llu "
                    "interrupts\n",
                    d->name, (unsigned long long)n->rx_frames,
                    (unsigned long long)n->rx_dropped,
                    (unsigned long long)n->tx_frames,
                    (unsigned long long)n->tx_dropped,
                    (unsigned long long)n->vdev.notifies,
                    (unsigned long long)n->vdev.interrupts);
        }
    }
}

void machine_dump_queues(const struct machine *m, FILE *f)
{
    for (unsigned int i = 0; i < m->nr_devs; i++)
        if (m->devs[i].kind == MACHINE_DEV_AGENT ||
            m->devs[i].kind == MACHINE_DEV_VCONSOLE ||
            m->devs[i].kind == MACHINE_DEV_NET)
            virtio_mmio_dump(m->devs[i].slot->dev, f);
}

void machine_describe(const struct machine *m, char *buf, size_t len)
{
    size_t o = 0;
    buf[0] = '\0';
    for (unsigned int i = 0; i < m->nr_devs && o < len; i++) {
        int n =
            snprintf(buf + o, len - o, "%s%s", i ? "," : "", m->devs[i].name);
        if (n < 0)
            break;
        o += (size_t)n;
    }
}

/* Layout version of a device section: the device's kind, then its own. */
#define MACHINE_DEV_STATE_VERSION 1

int machine_save_device(struct machine *m, unsigned int i, struct state_w *w,
                        char *err, size_t err_len)
{
    if (i >= m->nr_devs)
        return -EINVAL;
    struct machine_dev *d = &m->devs[i];
    state_put_u32(w, MACHINE_DEV_STATE_VERSION);
    state_put_u32(w, (uint32_t)d->kind);
    int ret = 0;
    switch (d->kind) {
    case MACHINE_DEV_UART: ret = serial_save(&m->serial, w); break;
    case MACHINE_DEV_RESET: ret = i8042_save(&m->i8042, w); break;
    case MACHINE_DEV_BOOT_TIMER: break; /* nothing held between accesses */
    case MACHINE_DEV_AGENT:
        ret = virtio_mmio_save(&m->agent->con.vdev, w);
        break;
    case MACHINE_DEV_VCONSOLE:
    case MACHINE_DEV_NET:
        snprintf(err, err_len,
                 "%s: snapshots of a machine with it are not supported yet",
                 d->name);
        return -ENOTSUP;
    }
    if (ret == 0)
        ret = w->err;
    if (ret < 0)
        snprintf(err, err_len, "saving %s: %s", d->name, strerror(-ret));
    return ret;
}

int machine_restore_device(struct machine *m, unsigned int i, struct state_r *r,
                           char *err, size_t err_len)
{
    if (i >= m->nr_devs)
        return -EINVAL;
    struct machine_dev *d = &m->devs[i];
    int ret = 0;
    if (state_get_u32(r) != MACHINE_DEV_STATE_VERSION ||
        state_get_u32(r) != (uint32_t)d->kind) {
        ret = -EBADMSG;
        goto out;
    }
    switch (d->kind) {
    case MACHINE_DEV_UART: ret = serial_restore(&m->serial, r); break;
    case MACHINE_DEV_RESET: ret = i8042_restore(&m->i8042, r); break;
    case MACHINE_DEV_BOOT_TIMER: break;
    case MACHINE_DEV_AGENT:
        ret = virtio_mmio_restore(&m->agent->con.vdev, r);
        break;
    case MACHINE_DEV_VCONSOLE:
    case MACHINE_DEV_NET: ret = -ENOTSUP; break;
    }
    if (ret == 0)
        ret = state_r_done(r);
out:
    if (ret < 0)
        snprintf(err, err_len, "restoring %s: %s", d->name,
                 ret == -EBADMSG ? "its saved state is malformed"
                                 : strerror(-ret));
    return ret;
}

void machine_destroy(struct machine *m)
{
    if (!m)
        return;
    /* Devices first, newest first, each leaving the event loop (which
     * outlives the machine) and its guest memory before the VM goes. */
    for (unsigned int i = m->nr_devs; i-- > 0;) {
        struct machine_dev *d = &m->devs[i];
        switch (d->kind) {
        case MACHINE_DEV_AGENT:
            agent_channel_free(m->agent);
            free(m->agent);
            m->agent = NULL;
            break;
        case MACHINE_DEV_NET:
            vm_virtio_detach(&m->vnet_slot);
            virtio_net_free(m->vnet);
            free(m->vnet);
            m->vnet = NULL;
            break;
        case MACHINE_DEV_VCONSOLE:
            vm_virtio_detach(&m->vcon_slot);
            virtio_console_free(m->vcon);
            free(m->vcon);
            m->vcon = NULL;
            break;
        case MACHINE_DEV_UART: serial_free(&m->serial); break;
        case MACHINE_DEV_RESET:
        case MACHINE_DEV_BOOT_TIMER: break;
        }
    }
    m->nr_devs = 0;
    if (m->vcon_listen_fd >= 0) {
        evloop_del(m->vm.loop, m->vcon_listen_fd);
        close(m->vcon_listen_fd);
    }
    if (m->vcon_path)
        unlink(m->vcon_path);
    if (m->tap_fd >= 0)
        close(m->tap_fd);
    vm_destroy(&m->vm);
    free(m);
}
