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
#include "cli/args.h"
#include "cli/cli.h"
#include "devices/boot_timer.h"
#include "vmm/machine.h"

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
    struct machine *m;
    int console;
    int stdin_tty;
    int stdin_watched;
    int rx_event_fd;
    int signal_fd;
    int got_signal;
    int saw_escape;
    int termios_saved;
    struct termios saved_termios;
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

static void uart_rx_ready(void *opaque)
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
    size_t space = serial_rx_space(&r->m->serial);
    if (space == 0) {
        /* Wait for the guest to drain the FIFO (rx_event_fd). */
        (void)evloop_mod(&r->m->vm.loop, STDIN_FILENO, 0);
        return;
    }
    uint8_t buf[SERIAL_RX_FIFO];
    ssize_t n = read(STDIN_FILENO, buf, space < sizeof(buf) ? space
                                                              : sizeof(buf));
    if (n < 0 && (errno == EINTR || errno == EAGAIN))
        return;
    if (n <= 0) {
        evloop_del(&r->m->vm.loop, STDIN_FILENO);
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
                    vm_request_stop(&r->m->vm, VM_STOP_SIGNAL,
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
    (void)serial_input(&r->m->serial, buf, len);
}

static void rx_event(void *opaque, uint32_t events)
{
    struct runvm *r = opaque;
    (void)events;
    uint64_t v;
    ssize_t n = read(r->rx_event_fd, &v, sizeof(v));
    (void)n;
    if (r->stdin_watched)
        (void)evloop_mod(&r->m->vm.loop, STDIN_FILENO, EPOLLIN);
}

static void restore_terminal(struct runvm *r)
{
    if (r->termios_saved)
        tcsetattr(STDIN_FILENO, TCSANOW, &r->saved_termios);
    r->termios_saved = 0;
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
        if (tcsetattr(STDIN_FILENO, TCSANOW, &raw) == 0)
            r->termios_saved = 1;
    }
    /* A regular file or /dev/null cannot be polled (EPERM): no input. */
    if (evloop_add(&r->m->vm.loop, STDIN_FILENO, EPOLLIN, stdin_ready, r) == 0)
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
    vm_request_stop(&r->m->vm, VM_STOP_SIGNAL, "runvm got a signal",
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

/* ---- main -------------------------------------------------------------- */

int main(int argc, char **argv)
{
    uint64_t t_start = boot_timer_now_ns();
    struct runvm r = {.rx_event_fd = -1, .signal_fd = -1};
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
    struct machine_desc desc = {
        .mem_bytes = mem,
        .cpus = (unsigned int)o.cpus,
        .cmdline = o.cmdline,
        .console = o.console,
        .uart_out = console_out,
        .uart_rx_ready = uart_rx_ready,
        .uart_opaque = &r,
        .count_exits = o.boot_timer,
        .vconsole = o.vconsole,
        .net = o.net,
        .agent_channel = job != NULL,
    };
    int ret = machine_create(&r.m, &desc, t_start, err, sizeof(err));
    if (ret < 0) {
        fprintf(stderr, "runvm: %s\n", err);
        return cli_failure_status(job, EXIT_FAILURE_RUN);
    }
    struct vm *vm = &r.m->vm;
    int status = cli_failure_status(job, EXIT_FAILURE_RUN);
    if ((job && cli_job_attach(job, vm, machine_agent(r.m), err,
                               sizeof(err)) < 0) ||
        vm_load(vm, &files, err, sizeof(err)) < 0) {
        fprintf(stderr, "runvm: %s\n", err);
        goto out;
    }
    close(files.kernel_fd);
    close(files.initrd_fd);

    r.signal_fd = signalfd(-1, &sigs, SFD_CLOEXEC | SFD_NONBLOCK);
    r.rx_event_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (r.signal_fd < 0 || r.rx_event_fd < 0 ||
        evloop_add(&vm->loop, r.signal_fd, EPOLLIN, signal_ready, &r) < 0 ||
        evloop_add(&vm->loop, r.rx_event_fd, EPOLLIN, rx_event, &r) < 0) {
        fprintf(stderr, "runvm: event loop set-up: %s\n", strerror(errno));
        goto out;
    }
    if (o.console)
        console_stdin_setup(&r);

    /* --timeout counts from runvm's start, as timeout(1) would. */
    int timeout_ms = -1;
    if (o.timeout_s) {
        int64_t left = (int64_t)o.timeout_s * 1000 -
                       (int64_t)((boot_timer_now_ns() - vm->t_start) /
                                 1000000);
        timeout_ms = left > 0 ? (int)left : 0;
    }
    enum vm_stop stop = vm_run(vm, timeout_ms);
    restore_terminal(&r);
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
                vm->stop_why ? vm->stop_why : "unknown error",
                vm->stop_detail);
        status = EXIT_FAILURE_RUN;
        break;
    }
    if (job)
        status = cli_job_status(job, stop, status);
    if (o.boot_timer) {
        print_boot_timer(vm);
        machine_print_stats(r.m, stderr);
        /* A guest stopped from outside (its timeout, or a signal from a
         * caller that gave up) may be waiting on a device: show where
         * each queue stands. */
        if (stop == VM_STOP_TIMEOUT || stop == VM_STOP_SIGNAL)
            machine_dump_queues(r.m, stderr);
    }
out:
    restore_terminal(&r);
    cli_job_free(job); /* before the machine: it frees the event loop */
    machine_destroy(r.m);
    if (r.signal_fd >= 0)
        close(r.signal_fd);
    if (r.rx_event_fd >= 0)
        close(r.rx_event_fd);
    return status;
}
