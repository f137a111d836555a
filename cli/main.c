/* runvm's command line: boot a kernel and initramfs in a KVM microVM. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/signalfd.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <termios.h>
#include <unistd.h>

#include "arch/arch.h"
#include "arch/x86_64/layout.h"
#include "devices/boot_timer.h"
#include "devices/i8042.h"
#include "devices/serial.h"
#include "devices/virtio_console.h"
#include "devices/virtio_net.h"
#include "cli/args.h"
#include "cli/cli.h"
#include "vmm/vm.h"
#include "vmm/vm_virtio.h"

/* Exit statuses (also in --help). */
#define EXIT_GUEST_DONE 0   /* the guest rebooted, shut down or panicked */
#define EXIT_FAILURE_RUN 1  /* set-up failed or KVM failed while running */
#define EXIT_TIMEOUT 124    /* --timeout passed, as timeout(1) */
#define EXIT_SIGNAL_BASE 128 /* + signal number, as a shell reports */
/* 2, a bad command line: ARGS_EXIT_USAGE (cli/args.h). */

#define DEFAULT_MEM_MIB 256
#define MAX_MEM_MIB (64 * 1024)
#define DEFAULT_CMDLINE "reboot=k panic=-1"
#define MAX_TIMEOUT_S (7 * 24 * 3600)
#define CONSOLE_ESCAPE 0x01 /* Ctrl-A, then 'x' quits (as QEMU) */

static const char usage_text[] =
    "usage: runvm --kernel BZIMAGE --initrd CPIO[.gz|.lz4] [options]\n"
    "           [--exec -- ARGV...]\n"
    "       runvm --lang LANG FILE ...   (runvm --help: the one-shot CLI)\n"
    "\n"
    "Boots a Linux bzImage with a standalone initramfs in a KVM microVM.\n"
    "\n"
    "  --kernel PATH    x86-64 bzImage (Linux boot protocol 2.06 or newer)\n"
    "  --initrd PATH    initramfs (cpio newc, optionally gzip or lz4; the\n"
    "                   kernel must support the compression)\n"
    "  --cmdline STR    kernel command line (default \"" DEFAULT_CMDLINE "\")\n"
    "  --mem MiB        guest RAM, 32 to 65536 (default 256); above 3072\n"
    "                   the rest is mapped above 4 GiB\n"
    "  --cpus N         vCPUs, 1 to 32 (default 1)\n"
    "  --console        connect the guest's ttyS0 (8250 UART on COM1, IRQ 4)\n"
    "                   to stdout/stdin and add console=ttyS0; on a terminal\n"
    "                   stdin is raw and Ctrl-A x quits. Without it the\n"
    "                   kernel log goes nowhere\n"
    "  --vconsole stdio|unix:PATH\n"
    "                   a virtio-console (the guest's /dev/hvc0) on runvm's\n"
    "                   stdin and stdout, or on a Unix socket runvm listens\n"
    "                   on at PATH (one client; guest output waits for it)\n"
    "  --net TAP[,mac=MAC]\n"
    "                   a virtio-net card on the existing tap device TAP\n"
    "                   (give the guest an address with ip= in --cmdline)\n"
    "  --timeout S      stop the guest after S seconds (exit status 124)\n"
    "  --boot-timer     on exit, print to stderr the boot timeline in ms since\n"
    "                   runvm started (KVM ready, first KVM_RUN, each guest\n"
    "                   write to port 0x440), how the guest stopped, and\n"
    "                   runvm's peak RSS beside the guest RAM it touched\n"
    "  --exec -- ARGV   the initramfs's /init is runvm-agent: run ARGV in\n"
    "                   the guest through it (on a virtio-console of its\n"
    "                   own), relay its stdout and stderr, power off, and\n"
    "                   exit with ARGV's status: 128+N for signal N, 124\n"
    "                   for --timeout (also ARGV's time limit), 125 when\n"
    "                   the agent or the VM failed\n"
    "  -h, --help       this text\n"
    "\n"
    "The VM ends when the guest reboots (reboot=k: i8042 reset), triple\n"
    "faults, or panics with panic=-1; guest power-off without ACPI halts, so\n"
    "use --timeout for guests that may hang.\n"
    "\n"
    "Exit status: 0 the guest ended itself; 1 set-up or KVM failure;\n"
    "2 bad command line; 124 --timeout passed; 128+N runvm got signal N.\n";

struct options {
    const char *kernel;
    const char *initrd;
    const char *cmdline;
    unsigned long mem_mib;
    unsigned long cpus;
    unsigned long timeout_s;
    int console;
    int boot_timer;
    const char *vconsole; /* "stdio" or "unix:PATH" */
    const char *net;      /* "TAP[,mac=MAC]" */
    char **exec_argv;     /* --exec -- ARGV */
};

struct runvm {
    struct vm vm;
    struct serial serial;
    struct i8042 i8042;
    int console;
    int stdin_tty;
    int stdin_watched;
    int rx_event_fd;
    int signal_fd;
    int got_signal;
    int saw_escape;
    struct termios saved_termios;
    struct virtio_console *vcon;
    struct vm_virtio vcon_slot;
    int vcon_listen_fd;
    const char *vcon_path; /* socket to unlink at exit */
    struct virtio_net *vnet;
    struct vm_virtio vnet_slot;
    int tap_fd;
};

static void parse_options(int argc, char **argv, struct options *o)
{
    enum { OPT_KERNEL = 256, OPT_INITRD, OPT_CMDLINE, OPT_MEM, OPT_CPUS,
           OPT_CONSOLE, OPT_TIMEOUT, OPT_BOOT_TIMER, OPT_VCONSOLE, OPT_NET,
           OPT_EXEC };
    static const struct option longopts[] = {
        {"kernel", required_argument, NULL, OPT_KERNEL},
        {"initrd", required_argument, NULL, OPT_INITRD},
        {"cmdline", required_argument, NULL, OPT_CMDLINE},
        {"mem", required_argument, NULL, OPT_MEM},
        {"cpus", required_argument, NULL, OPT_CPUS},
        {"console", no_argument, NULL, OPT_CONSOLE},
        {"timeout", required_argument, NULL, OPT_TIMEOUT},
        {"boot-timer", no_argument, NULL, OPT_BOOT_TIMER},
        {"vconsole", required_argument, NULL, OPT_VCONSOLE},
        {"net", required_argument, NULL, OPT_NET},
        {"exec", no_argument, NULL, OPT_EXEC},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    *o = (struct options){.cmdline = DEFAULT_CMDLINE,
                          .mem_mib = DEFAULT_MEM_MIB, .cpus = 1};
    unsigned long min_mem = (unsigned long)(arch_min_mem() >> 20);
    int exec = 0;
    opterr = 0;
    for (;;) {
        int prev = optind;
        int c = getopt_long(argc, argv, ":h", longopts, NULL);
        if (c == -1)
            break;
        switch (c) {
        case OPT_KERNEL: o->kernel = optarg; break;
        case OPT_INITRD: o->initrd = optarg; break;
        case OPT_CMDLINE: o->cmdline = optarg; break;
        case OPT_MEM:
            o->mem_mib = args_number("--mem", optarg, min_mem, MAX_MEM_MIB);
            break;
        case OPT_CPUS:
            o->cpus = args_number("--cpus", optarg, 1, arch_max_cpus());
            break;
        case OPT_CONSOLE: o->console = 1; break;
        case OPT_TIMEOUT:
            o->timeout_s = args_number("--timeout", optarg, 1,
                                        MAX_TIMEOUT_S);
            break;
        case OPT_BOOT_TIMER: o->boot_timer = 1; break;
        case OPT_VCONSOLE:
            if (strcmp(optarg, "stdio") != 0 &&
                (strncmp(optarg, "unix:", 5) != 0 || optarg[5] == '\0'))
                args_usage_error("--vconsole %s: want stdio or unix:PATH", optarg);
            o->vconsole = optarg;
            break;
        case OPT_NET: o->net = optarg; break;
        case OPT_EXEC: exec = 1; break;
        case 'h':
            fputs(usage_text, stdout);
            exit(0);
        case ':':
            args_usage_error("%s needs a value", argv[optind - 1]);
        default:
            args_usage_error("unknown option %s", argv[prev < argc ? prev : argc - 1]);
        }
    }
    if (exec && optind >= argc)
        args_usage_error("--exec needs the program to run: --exec -- ARGV...");
    if (exec)
        o->exec_argv = &argv[optind];
    else if (optind < argc)
        args_usage_error("unexpected argument %s", argv[optind]);
    if (exec && o->vconsole)
        args_usage_error("--exec uses the virtio-console itself; drop "
                    "--vconsole");
    if (!o->kernel)
        args_usage_error("--kernel BZIMAGE is required");
    if (!o->initrd)
        args_usage_error("--initrd CPIO is required");
    if (o->console && o->vconsole && strcmp(o->vconsole, "stdio") == 0)
        args_usage_error("--console and --vconsole stdio both want stdin and "
                    "stdout; use --vconsole unix:PATH");
}

/* Opens a regular file for reading; exits with a clear line if it cannot. */
static int open_input(const char *flag, const char *path, uint64_t *size)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        fprintf(stderr, "runvm: %s %s: %s\n", flag, path, strerror(errno));
        exit(EXIT_FAILURE_RUN);
    }
    struct stat st;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        fprintf(stderr, "runvm: %s %s: not a regular file\n", flag, path);
        exit(EXIT_FAILURE_RUN);
    }
    if (st.st_size == 0) {
        fprintf(stderr, "runvm: %s %s: file is empty\n", flag, path);
        exit(EXIT_FAILURE_RUN);
    }
    *size = (uint64_t)st.st_size;
    return fd;
}

/* ---- console ------------------------------------------------------------ */

static void console_out(void *opaque, const uint8_t *data, size_t len)
{
    (void)opaque;
    while (len > 0) {
        ssize_t n = write(STDOUT_FILENO, data, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return; /* stdout gone: drop output, keep the guest going */
        data += n;
        len -= (size_t)n;
    }
}

static void serial_irq(void *opaque, int level)
{
    struct runvm *r = opaque;
    (void)vm_irq_line(&r->vm, LAYOUT_IRQ_COM1, level);
}

static void serial_rx_empty(void *opaque)
{
    struct runvm *r = opaque;
    uint64_t one = 1;
    ssize_t n = write(r->rx_event_fd, &one, sizeof(one));
    (void)n;
}

static void stdin_ready(void *opaque, uint32_t events)
{
    struct runvm *r = opaque;
    (void)events;
    size_t space = serial_rx_space(&r->serial);
    if (space == 0) {
        /* Wait for the guest to drain the FIFO (rx_event_fd). */
        (void)evloop_mod(&r->vm.loop, STDIN_FILENO, 0);
        return;
    }
    uint8_t buf[SERIAL_RX_FIFO];
    ssize_t n = read(STDIN_FILENO, buf, space < sizeof(buf) ? space
                                                              : sizeof(buf));
    if (n < 0 && (errno == EINTR || errno == EAGAIN))
        return;
    if (n <= 0) {
        evloop_del(&r->vm.loop, STDIN_FILENO);
        r->stdin_watched = 0;
        return;
    }
    size_t len = (size_t)n;
    if (r->stdin_tty) {
        /* Ctrl-A x quits; Ctrl-A Ctrl-A sends one Ctrl-A. */
        size_t out = 0;
        for (size_t i = 0; i < len; i++) {
            if (r->saw_escape) {
                r->saw_escape = 0;
                if (buf[i] == 'x') {
                    vm_request_stop(&r->vm, VM_STOP_SIGNAL,
                                    "console escape (Ctrl-A x)", 0);
                    return;
                }
                if (buf[i] != CONSOLE_ESCAPE)
                    continue;
            } else if (buf[i] == CONSOLE_ESCAPE) {
                r->saw_escape = 1;
                continue;
            }
            buf[out++] = buf[i];
        }
        len = out;
    }
    (void)serial_input(&r->serial, buf, len);
}

static void rx_event(void *opaque, uint32_t events)
{
    struct runvm *r = opaque;
    (void)events;
    uint64_t v;
    ssize_t n = read(r->rx_event_fd, &v, sizeof(v));
    (void)n;
    if (r->stdin_watched)
        (void)evloop_mod(&r->vm.loop, STDIN_FILENO, EPOLLIN);
}

static struct termios *saved_termios_for_exit;

static void restore_terminal(void)
{
    if (saved_termios_for_exit)
        tcsetattr(STDIN_FILENO, TCSANOW, saved_termios_for_exit);
}

static void console_stdin_setup(struct runvm *r)
{
    r->stdin_tty = isatty(STDIN_FILENO);
    if (r->stdin_tty && tcgetattr(STDIN_FILENO, &r->saved_termios) == 0) {
        struct termios raw = r->saved_termios;
        cfmakeraw(&raw);
        /* Keep output processing: the guest's bytes go out as they are
         * either way, but runvm's own messages need \n -> \r\n. */
        raw.c_oflag |= OPOST;
        if (tcsetattr(STDIN_FILENO, TCSANOW, &raw) == 0) {
            saved_termios_for_exit = &r->saved_termios;
            atexit(restore_terminal);
        }
    }
    /* A regular file or /dev/null cannot be polled (EPERM): no input. */
    if (evloop_add(&r->vm.loop, STDIN_FILENO, EPOLLIN, stdin_ready, r) == 0)
        r->stdin_watched = 1;
}

/* ---- signals --------------------------------------------------------------- */

static void signal_ready(void *opaque, uint32_t events)
{
    struct runvm *r = opaque;
    (void)events;
    struct signalfd_siginfo si;
    if (read(r->signal_fd, &si, sizeof(si)) != (ssize_t)sizeof(si))
        return;
    r->got_signal = (int)si.ssi_signo;
    vm_request_stop(&r->vm, VM_STOP_SIGNAL, "runvm got a signal",
                    si.ssi_signo);
}

/* ---- reporting --------------------------------------------------------- */

static double ms_since(uint64_t start, uint64_t t)
{
    return t >= start ? (double)(t - start) / 1e6 : 0.0;
}

/* Peak RSS from /proc/self/status, in KiB; 0 if unknown. */
static unsigned long long peak_rss_kib(void)
{
    FILE *f = fopen("/proc/self/status", "re");
    if (!f)
        return 0;
    char line[256];
    unsigned long long kib = 0;
    while (fgets(line, sizeof(line), f))
        if (sscanf(line, "VmHWM: %llu kB", &kib) == 1)
            break;
    fclose(f);
    return kib;
}

/* Guest RAM pages resident in runvm (the guest touched or runvm loaded). */
static unsigned long long guest_resident_kib(const struct guest_mem *mem)
{
    unsigned char vec[4096];
    unsigned long long pages = 0;
    long page = sysconf(_SC_PAGESIZE);
    for (unsigned int i = 0; i < mem->nr_regions; i++) {
        const struct gm_region *reg = &mem->regions[i];
        for (uint64_t off = 0; off < reg->size;
             off += sizeof(vec) * (uint64_t)page) {
            uint64_t len = reg->size - off;
            if (len > sizeof(vec) * (uint64_t)page)
                len = sizeof(vec) * (uint64_t)page;
            if (mincore(reg->hva + off, len, vec) < 0)
                return 0;
            for (uint64_t p = 0; p < (len + (uint64_t)page - 1) / (uint64_t)page;
                 p++)
                pages += vec[p] & 1;
        }
    }
    return pages * (unsigned long long)page / 1024;
}

static void print_boot_timer(const struct vm *vm)
{
    /* Read HWM first: the report itself must not count. */
    unsigned long long hwm = peak_rss_kib();
    unsigned long long guest = guest_resident_kib(&vm->mem);
    fprintf(stderr, "runvm: boot-timer: vmm-start 0.000 ms, kvm-ready %.3f "
            "ms, first-kvm-run %.3f ms",
            ms_since(vm->t_start, vm->t_kvm_ready),
            ms_since(vm->t_start, vm->t_first_run));
    unsigned int n = __atomic_load_n(&vm->timer.nr_marks, __ATOMIC_ACQUIRE);
    for (unsigned int i = 0; i < n && i < BOOT_TIMER_MAX_MARKS; i++)
        fprintf(stderr, ", guest-marker 0x%02x %.3f ms",
                vm->timer.marks[i].value,
                ms_since(vm->t_start, vm->timer.marks[i].ns));
    if (n == 0)
        fputs(", no guest marker", stderr);
    fputc('\n', stderr);
    /* KVM exits so far at each mark and at the end (none happen before
     * the first KVM_RUN, where the guest enters the kernel). */
    uint64_t end[KVM_STAT_COUNT];
    if (kvm_stats_read(&vm->exit_stats, end) < 0) {
        fprintf(stderr, "runvm: boot-timer: kvm-exits %s\n",
                vm->exit_stats.why ? vm->exit_stats.why : "unavailable");
    } else {
        fprintf(stderr, "runvm: boot-timer: kvm-exits from %s, all vCPUs, "
                "cumulative:", kvm_stats_source_name(&vm->exit_stats));
        for (unsigned int i = 0; i < n && i < BOOT_TIMER_MAX_MARKS; i++) {
            if (!vm->timer.marks[i].have_counters)
                continue;
            fprintf(stderr, " guest-marker 0x%02x", vm->timer.marks[i].value);
            for (int c = 0; c < KVM_STAT_COUNT; c++)
                fprintf(stderr, " %s %" PRIu64, kvm_stat_names[c],
                        vm->timer.marks[i].counters[c]);
            fputc(';', stderr);
        }
        fputs(" stop", stderr);
        for (int c = 0; c < KVM_STAT_COUNT; c++)
            fprintf(stderr, " %s %" PRIu64, kvm_stat_names[c], end[c]);
        fputc('\n', stderr);
    }
    fprintf(stderr, "runvm: stopped: %s\n",
            vm->stop_why ? vm->stop_why : "unknown");
    fprintf(stderr, "runvm: memory: peak RSS %llu KiB, guest RAM resident "
            "%llu KiB, VMM overhead %lld KiB\n", hwm, guest,
            (long long)hwm - (long long)guest);
}

/* ---- virtio devices ---------------------------------------------------- */

/* A client connected to the --vconsole socket: it becomes the console's
 * back-end, and runvm stops listening (one client per VM). */
static void vcon_accept(void *opaque, uint32_t events)
{
    struct runvm *r = opaque;
    (void)events;
    int fd = accept4(r->vcon_listen_fd, NULL, NULL, SOCK_CLOEXEC);
    if (fd < 0)
        return;
    int ret = virtio_console_connect(r->vcon, fd, fd);
    if (ret < 0) {
        fprintf(stderr, "runvm: --vconsole: client: %s\n", strerror(-ret));
        close(fd);
        return;
    }
    evloop_del(&r->vm.loop, r->vcon_listen_fd);
    close(r->vcon_listen_fd);
    r->vcon_listen_fd = -1;
}

static int vcon_listen(struct runvm *r, const char *path, char *err,
                       size_t err_len)
{
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof(addr.sun_path)) {
        snprintf(err, err_len, "--vconsole unix:%s: path too long", path);
        return -ENAMETOOLONG;
    }
    memcpy(addr.sun_path, path, strlen(path));
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0 || bind(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0 ||
        listen(fd, 1) < 0) {
        int ret = -errno;
        snprintf(err, err_len, "--vconsole unix:%s: %s%s", path,
                 strerror(-ret), ret == -EADDRINUSE ? " (remove the stale "
                 "socket or pick another path)" : "");
        if (fd >= 0)
            close(fd);
        return ret;
    }
    r->vcon_listen_fd = fd;
    r->vcon_path = path;
    int ret = evloop_add(&r->vm.loop, fd, EPOLLIN, vcon_accept, r);
    if (ret < 0)
        snprintf(err, err_len, "--vconsole: event loop: %s", strerror(-ret));
    return ret;
}

static int add_vconsole(struct runvm *r, const char *spec, char *err,
                        size_t err_len)
{
    struct vm *vm = &r->vm;
    r->vcon = calloc(1, sizeof(*r->vcon));
    if (!r->vcon) {
        snprintf(err, err_len, "--vconsole: out of memory");
        return -ENOMEM;
    }
    vm_virtio_prepare(&r->vcon_slot, vm);
    int stdio = strcmp(spec, "stdio") == 0;
    int ret = virtio_console_init(r->vcon, &vm->mem, &vm->loop,
                                  stdio ? STDIN_FILENO : -1,
                                  stdio ? STDOUT_FILENO : -1, vm_virtio_irq,
                                  &r->vcon_slot);
    if (ret < 0) {
        free(r->vcon);
        r->vcon = NULL;
        snprintf(err, err_len, "--vconsole %s: %s", spec, strerror(-ret));
        return ret;
    }
    ret = vm_virtio_attach(&r->vcon_slot, &r->vcon->vdev, err, err_len);
    if (ret == 0 && !stdio)
        ret = vcon_listen(r, spec + 5, err, err_len);
    return ret;
}

static int add_net(struct runvm *r, const char *spec, char *err,
                   size_t err_len)
{
    struct vm *vm = &r->vm;
    char name[64];
    /* A locally administered unicast default, as QEMU's 52:54:00:... */
    uint8_t mac[6] = {0x52, 0x54, 0x00, 0x12, 0x34, 0x56};
    const char *comma = strchr(spec, ',');
    size_t len = comma ? (size_t)(comma - spec) : strlen(spec);
    if (len == 0 || len >= sizeof(name)) {
        snprintf(err, err_len, "--net %s: want TAP[,mac=MAC]", spec);
        return -EINVAL;
    }
    memcpy(name, spec, len);
    name[len] = '\0';
    if (comma && (strncmp(comma + 1, "mac=", 4) != 0 ||
                  virtio_net_parse_mac(comma + 5, mac) < 0)) {
        snprintf(err, err_len, "--net %s: want TAP[,mac=52:54:00:xx:xx:xx] "
                 "(a unicast MAC)", spec);
        return -EINVAL;
    }
    r->tap_fd = virtio_net_open_tap(name);
    if (r->tap_fd < 0) {
        int ret = r->tap_fd;
        const char *hint = ret == -ENODEV ? " (create it first: ip tuntap "
                           "add NAME mode tap)" : ret == -EPERM ||
                           ret == -EACCES ? " (needs CAP_NET_ADMIN or a tap "
                           "owned by this user)" : "";
        snprintf(err, err_len, "--net: tap %s: %s%s", name,
                 ret == -ENODEV ? "no such device" : strerror(-ret), hint);
        return ret;
    }
    r->vnet = calloc(1, sizeof(*r->vnet));
    if (!r->vnet) {
        snprintf(err, err_len, "--net: out of memory");
        return -ENOMEM;
    }
    vm_virtio_prepare(&r->vnet_slot, vm);
    int ret = virtio_net_init(r->vnet, &vm->mem, &vm->loop, r->tap_fd, mac,
                              vm_virtio_irq, &r->vnet_slot);
    if (ret < 0) {
        free(r->vnet);
        r->vnet = NULL;
        snprintf(err, err_len, "--net %s: %s", spec, strerror(-ret));
        return ret;
    }
    return vm_virtio_attach(&r->vnet_slot, &r->vnet->vdev, err, err_len);
}

static void free_virtio(struct runvm *r)
{
    if (r->vcon) {
        vm_virtio_detach(&r->vcon_slot);
        virtio_console_free(r->vcon);
        free(r->vcon);
        r->vcon = NULL;
    }
    if (r->vcon_listen_fd >= 0)
        close(r->vcon_listen_fd);
    r->vcon_listen_fd = -1;
    if (r->vcon_path)
        unlink(r->vcon_path);
    r->vcon_path = NULL;
    if (r->vnet) {
        vm_virtio_detach(&r->vnet_slot);
        virtio_net_free(r->vnet);
        free(r->vnet);
        r->vnet = NULL;
    }
    if (r->tap_fd >= 0)
        close(r->tap_fd);
    r->tap_fd = -1;
}

static void print_virtio_stats(const struct runvm *r)
{
    if (r->vcon)
        fprintf(stderr, "runvm: virtio-console: to guest %llu bytes, to "
                "host %llu bytes, %llu notifications, %llu interrupts\n",
                (unsigned long long)r->vcon->bytes_to_guest,
                (unsigned long long)r->vcon->bytes_to_host,
                (unsigned long long)r->vcon->vdev.notifies,
                (unsigned long long)r->vcon->vdev.interrupts);
    if (r->vnet)
        fprintf(stderr, "runvm: virtio-net: rx %llu frames (%llu dropped), "
                "tx %llu frames (%llu dropped), %llu notifications, %llu "
                "interrupts\n",
                (unsigned long long)r->vnet->rx_frames,
                (unsigned long long)r->vnet->rx_dropped,
                (unsigned long long)r->vnet->tx_frames,
                (unsigned long long)r->vnet->tx_dropped,
                (unsigned long long)r->vnet->vdev.notifies,
                (unsigned long long)r->vnet->vdev.interrupts);
}

/* ---- main -------------------------------------------------------------- */

static void i8042_reset(void *opaque)
{
    struct runvm *r = opaque;
    vm_request_stop(&r->vm, VM_STOP_GUEST, "guest reset (i8042)", 0);
}

static int add_devices(struct runvm *r, const struct options *o, char *err,
                       size_t err_len)
{
    struct vm *vm = &r->vm;
    struct serial_callbacks cb = {
        .out = r->console ? console_out : NULL,
        .set_irq = serial_irq,
        .rx_empty = serial_rx_empty,
        .opaque = r,
    };
    int ret = serial_init(&r->serial, &cb);
    if (ret == 0)
        ret = vm_add_pio(vm, LAYOUT_PORT_COM1, SERIAL_NR_PORTS,
                         &serial_bus_ops, &r->serial);
    if (ret < 0) {
        snprintf(err, err_len, "serial port: %s", strerror(-ret));
        return ret;
    }
    r->i8042 = (struct i8042){.reset = i8042_reset, .opaque = r};
    ret = vm_add_pio(vm, LAYOUT_PORT_I8042_DATA, I8042_NR_PORTS,
                     &i8042_bus_ops, &r->i8042);
    if (o->boot_timer)
        vm_count_exits(vm); /* exits per boot phase, best effort */
    if (ret == 0)
        ret = vm_add_pio(vm, LAYOUT_PORT_BOOT_TIMER, 1, &boot_timer_bus_ops,
                         &vm->timer);
    if (ret < 0) {
        snprintf(err, err_len, "legacy devices: %s", strerror(-ret));
        return ret;
    }
    if (o->vconsole && (ret = add_vconsole(r, o->vconsole, err, err_len)) < 0)
        return ret;
    if (o->net && (ret = add_net(r, o->net, err, err_len)) < 0)
        return ret;
    return 0;
}

int main(int argc, char **argv)
{
    static struct runvm r; /* large (buses, vCPUs): not on the stack */
    r.vm.t_start = boot_timer_now_ns();
    r.rx_event_fd = r.signal_fd = -1;
    r.vcon_listen_fd = r.tap_fd = -1;
    struct options o;
    struct cli_boot cb;
    struct cli_job *job = NULL; /* --lang or --exec: the agent's exchange */
    if (cli_parse(argc, argv, &cb, &job)) {
        o = (struct options){.kernel = cb.kernel, .initrd = cb.initrd,
                             .cmdline = cb.cmdline, .mem_mib = cb.mem_mib,
                             .cpus = cb.cpus, .timeout_s = cb.timeout_s,
                             .console = cb.console};
    } else {
        parse_options(argc, argv, &o);
        if (o.exec_argv && !(job = cli_exec_job(o.exec_argv, o.timeout_s))) {
            fprintf(stderr, "runvm: out of memory\n");
            return EXIT_FAILURE_RUN;
        }
    }
    signal(SIGPIPE, SIG_IGN);

    struct arch_boot_files files = {.kernel_path = o.kernel,
                                    .initrd_path = o.initrd};
    files.kernel_fd = open_input("--kernel", o.kernel, &files.kernel_size);
    files.initrd_fd = open_input("--initrd", o.initrd, &files.initrd_size);
    char err[512];
    if (arch_check_kernel(files.kernel_fd, files.kernel_size, o.kernel, err,
                          sizeof(err)) < 0) {
        fprintf(stderr, "runvm: %s\n", err);
        return cli_failure_status(job, EXIT_FAILURE_RUN);
    }
    uint64_t mem = (uint64_t)o.mem_mib << 20;
    if (files.initrd_size >= mem) {
        fprintf(stderr, "runvm: --initrd %s: %llu MiB does not fit in "
                "--mem %lu MiB of guest RAM; raise --mem\n", o.initrd,
                (unsigned long long)(files.initrd_size >> 20), o.mem_mib);
        return cli_failure_status(job, EXIT_FAILURE_RUN);
    }

    /* SIGINT/SIGTERM become events on the loop; every thread created
     * later inherits the mask, so none is interrupted by them. */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);

    r.console = o.console;
    int ret = vm_create(&r.vm, mem, (unsigned int)o.cpus, err, sizeof(err));
    if (ret < 0) {
        fprintf(stderr, "runvm: %s\n", err);
        return cli_failure_status(job, EXIT_FAILURE_RUN);
    }
    int status = cli_failure_status(job, EXIT_FAILURE_RUN);
    if ((o.console && cmdline_append(&r.vm.cmdline, "console=ttyS0") < 0) ||
        cmdline_append(&r.vm.cmdline, o.cmdline) < 0) {
        fprintf(stderr, "runvm: --cmdline: too long or has control "
                "characters\n");
        goto out;
    }
    if (add_devices(&r, &o, err, sizeof(err)) < 0 ||
        (job && cli_job_attach(job, &r.vm, err, sizeof(err)) < 0) ||
        vm_load(&r.vm, &files, err, sizeof(err)) < 0) {
        fprintf(stderr, "runvm: %s\n", err);
        goto out;
    }
    close(files.kernel_fd);
    close(files.initrd_fd);

    r.signal_fd = signalfd(-1, &sigs, SFD_CLOEXEC | SFD_NONBLOCK);
    r.rx_event_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (r.signal_fd < 0 || r.rx_event_fd < 0 ||
        evloop_add(&r.vm.loop, r.signal_fd, EPOLLIN, signal_ready, &r) < 0 ||
        evloop_add(&r.vm.loop, r.rx_event_fd, EPOLLIN, rx_event, &r) < 0) {
        fprintf(stderr, "runvm: event loop set-up: %s\n", strerror(errno));
        goto out;
    }
    if (o.console)
        console_stdin_setup(&r);

    /* --timeout counts from runvm's start, as timeout(1) would. */
    int timeout_ms = -1;
    if (o.timeout_s) {
        int64_t left = (int64_t)o.timeout_s * 1000 -
                       (int64_t)((boot_timer_now_ns() - r.vm.t_start) /
                                 1000000);
        timeout_ms = left > 0 ? (int)left : 0;
    }
    enum vm_stop stop = vm_run(&r.vm, timeout_ms);
    restore_terminal();
    switch (stop) {
    case VM_STOP_GUEST:
        status = EXIT_GUEST_DONE;
        break;
    case VM_STOP_TIMEOUT:
        fprintf(stderr, "runvm: guest still running after --timeout %lu s; "
                "stopped it\n", o.timeout_s);
        status = EXIT_TIMEOUT;
        break;
    case VM_STOP_SIGNAL:
        status = r.got_signal ? EXIT_SIGNAL_BASE + r.got_signal
                              : EXIT_GUEST_DONE;
        break;
    default:
        fprintf(stderr, "runvm: guest stopped: %s (0x%llx)\n",
                r.vm.stop_why ? r.vm.stop_why : "unknown error",
                r.vm.stop_detail);
        status = EXIT_FAILURE_RUN;
        break;
    }
    if (job)
        status = cli_job_status(job, stop, status);
    if (o.boot_timer) {
        print_boot_timer(&r.vm);
        print_virtio_stats(&r);
        /* A guest stopped from outside (its timeout, or a signal from a
         * caller that gave up) may be waiting on a device: show where
         * each queue stands. */
        bool stopped = stop == VM_STOP_TIMEOUT || stop == VM_STOP_SIGNAL;
        if (stopped && r.vcon)
            virtio_mmio_dump(&r.vcon->vdev, stderr);
        if (stopped && r.vnet)
            virtio_mmio_dump(&r.vnet->vdev, stderr);
    }
out:
    cli_job_free(job); /* before vm_destroy: it frees the event loop */
    free_virtio(&r); /* before vm_destroy: it frees the event loop */
    vm_destroy(&r.vm);
    serial_free(&r.serial);
    if (r.signal_fd >= 0)
        close(r.signal_fd);
    if (r.rx_event_fd >= 0)
        close(r.rx_event_fd);
    return status;
}
