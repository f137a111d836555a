/* runvm's main(): parse the command line, build the machine, run it and
 * turn how it ended into runvm's exit status. The front end decides where
 * the UART's output and runvm's own reports go. */
#ifndef RUNVM_VERSION
#define RUNVM_VERSION "0.1.0"
#endif
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
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
#include "cli/cli.h"
#include "cli/options.h"
#include "cli/write.h"
#include "core/clock.h"
#include "devices/boot_timer.h"
#include "protocol/msg.h"
#include "session/event.h"
#include "vmm/kvm.h"
#include "vmm/machine.h"
#include "cli/snapstore.h"
#include "vmm/snapshot.h"
#include "vmm/cgroup.h"
#include "vmm/sandbox.h"

#define CONSOLE_ESCAPE 0x01 /* Ctrl-A, then 'x' quits (as QEMU) */

static const char usage_text[] =
    "usage: runvm --lang LANG FILE... [options]  build and run FILE in a VM\n"
    "       runvm --lang LANG --api-sock PATH    serve the HTTP API\n"
    "       runvm --kernel KERNEL --initrd CPIO [options] [--exec -- ARGV]\n"
    "       runvm --kernel KERNEL --initrd CPIO --snapshot-out DIR\n"
    "       runvm --restore DIR --exec -- ARGV\n"
    "       runvm serve --api-sock PATH [--listen [ADDR:]PORT] [options]\n"
    "       runvm snapshot --lang LANG | --verify DIR\n"
    "       runvm --list-langs | --version | --help\n"
    "\n"
    "Snippets (--lang):\n"
    "  LANG is a language (its default version) or LANG@VERSION: go@1.24,\n"
    "  python@3 (the highest 3.x built); --list-langs shows them all\n"
    "  FILE is the source; more FILEs (up to 16 in all) go beside it under\n"
    "  their own names (examples/multi/)\n"
    "  --stdin FILE       the program's standard input (default: none)\n"
    "  --timeout S        run-step time limit (default 10)\n"
    "  --build-timeout S  build-step time limit (default 60)\n"
    "  --json             print the event stream (NDJSON) instead of the\n"
    "                     program's output\n"
    "  --api-sock PATH    API mode: HTTP/1.1 on a Unix socket (mode 0600)\n"
    "  --api-fd N         API mode on the listening socket N it is handed\n"
    "                     (runvm serve's VMs, socket activation)\n"
    "  --no-snapshot      boot cold: neither restore from the image's\n"
    "                     snapshot nor take it (see below)\n"
    "  The kernel and image are searched for next to the binary\n"
    "  (BIN/../kernel/" ARCH_KERNEL_FILE
    ", BIN/../images/LANG@VERSION.cpio.*), then in\n"
    "  BIN/../share/runvm/, then $RUNVM_KERNEL and $RUNVM_IMAGES.\n"
    "  A run restores a snapshot of the image's VM booted to its agent,\n"
    "  taken by the image's first run (or `runvm snapshot --lang LANG`,\n"
    "  which prints where) in $RUNVM_SNAPSHOTS, else $RUNVM_CACHE/snapshots,\n"
    "  else ~/.cache/runvm/snapshots; `runvm snapshot --verify DIR` checks\n"
    "  one.\n"
    "\n"
    "The daemon (runvm serve --api-sock PATH): every submission in a VM of\n"
    "its own, restored from its language's snapshot and stopped after it;\n"
    "POST /start as in API mode (\"lang\" in JSON or ?lang=), POST /judge,\n"
    "Piston's /api/v2/execute and /api/v2/runtimes, GET /status and\n"
    "GET /metrics (Prometheus).\n"
    "  --listen [ADDR:]PORT  TCP too (ADDR defaults to 127.0.0.1); /start's\n"
    "                     answer there is the event stream itself\n"
    "  --langs L,...      the languages served, each LANG or LANG@VERSION\n"
    "                     (default: every built language's default version)\n"
    "  --max-vms N        VMs alive at once (default: the CPUs, at most 64)\n"
    "  --queue N          requests waiting for a VM; past it 429\n"
    "                     (default 4 x --max-vms)\n"
    "  --warm K           idle VMs kept ready per language (default 1)\n"
    "  --timeout, --build-timeout, --mem, --cpus, --cgroup, --boot-timer:\n"
    "  passed on to every VM's runvm\n"
    "  SIGTERM or SIGINT: refuse new work (503), finish what was taken,\n"
    "  exit 0; a second signal stops everything at once.\n"
    "\n"
    "Any kernel (--kernel, --initrd):\n"
    "  --kernel PATH      " ARCH_KERNEL_HELP "\n"
    "  --initrd PATH      initramfs (cpio newc, optionally gzip or lz4)\n"
    "  --timeout S        stop the guest after S seconds (status 124)\n"
    "  --exec -- ARGV     the initramfs's /init is runvm-agent: run ARGV in\n"
    "                     the guest, relay its output, exit with its status\n"
    "  --snapshot-out DIR boot to the agent's HELLO, write a snapshot of the\n"
    "                     VM to DIR (created; its files state and memory)\n"
    "  --restore DIR      start from that snapshot instead of a kernel: the\n"
    "                     guest's entropy and clock are made fresh first\n"
    "\n"
    "Both:\n"
    "  --cmdline STR      kernel command line (default \"" CLI_DEFAULT_CMDLINE
    "\";\n"
    "                     --lang adds quiet unless --console)\n"
    "  --mem MiB          guest RAM, 32 to 65536 (default 256; --lang: from\n"
    "                     the image's size); above 3072 the rest is mapped\n"
    "                     above 4 GiB\n"
    "  --cpus N           vCPUs, 1 to 32 (default 1)\n"
    "  --console          the guest's ttyS0 (8250 UART) on stdout and stdin,\n"
    "                     with console=ttyS0; on a terminal stdin is raw and\n"
    "                     Ctrl-A x quits\n"
    "  --vconsole stdio|unix:PATH\n"
    "                     a virtio-console (the guest's /dev/hvc0) on stdin\n"
    "                     and stdout, or on a Unix socket runvm listens on\n"
    "  --net TAP[,mac=MAC]\n"
    "                     a virtio-net card on the existing tap device TAP\n"
    "  --user USER        once /dev/kvm, the tap and the files are open,\n"
    "                     become USER (name or uid; root is given up)\n"
    "  --group GROUP      and GROUP (default: USER's own group)\n"
    "  --cgroup PARENT    run in a cgroup v2 of the VM's own, "
    "PARENT/runvm.PID\n"
    "                     (memory: guest RAM + 1/32 + 128 MiB; pids: vCPUs\n"
    "                     + 32; CPU: vCPUs + 1), removed at exit by a\n"
    "                     supervising runvm process that stays outside\n"
    "  --boot-timer       on exit, print the boot timeline (ms since runvm\n"
    "                     started, each guest write to port 0x440), KVM\n"
    "                     exits per phase, how the guest stopped, and\n"
    "                     runvm's peak RSS beside the guest RAM it touched\n"
    "  -h, --help         this text\n"
    "\n"
    "A bare boot ends when the guest reboots (reboot=k), triple faults or\n"
    "panics with panic=-1; use --timeout for guests that may hang.\n"
    "\n"
    "Exit status: the program's own (0 for a bare boot whose guest ended\n"
    "itself); 124 a time limit stopped it; 125 runvm, the VM, the agent, a\n"
    "kernel or an image failed or is missing; 126 the build failed; 128+N\n"
    "a signal N killed the program (or runvm); 2 a bad command line.\n"
    "\n"
    "runvm confines itself before the guest runs (no_new_privs, seccomp\n"
    "allow-lists per thread); RUNVM_SECCOMP=off leaves the filters off.\n"
    "See docs/cli.md.\n";

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

/* Opens a regular file for reading; exits with a clear line if it cannot. */
static int open_input(const char *flag, const char *path, uint64_t *size)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        fprintf(stderr, "runvm: %s %s: %s\n", flag, path, strerror(errno));
        exit(RUNVM_EXIT_INFRA);
    }
    struct stat st;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        fprintf(stderr, "runvm: %s %s: not a regular file\n", flag, path);
        exit(RUNVM_EXIT_INFRA);
    }
    if (st.st_size == 0) {
        fprintf(stderr, "runvm: %s %s: file is empty\n", flag, path);
        exit(RUNVM_EXIT_INFRA);
    }
    *size = (uint64_t)st.st_size;
    return fd;
}

/* ---- console ------------------------------------------------------------ */

static void console_out(void *opaque, const uint8_t *data, size_t len)
{
    (void)opaque;
    cli_write_all(STDOUT_FILENO, data, len);
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
        (void)evloop_mod(r->m->vm.loop, STDIN_FILENO, 0);
        return;
    }
    uint8_t buf[SERIAL_RX_FIFO];
    ssize_t n =
        read(STDIN_FILENO, buf, space < sizeof(buf) ? space : sizeof(buf));
    if (n < 0 && (errno == EINTR || errno == EAGAIN))
        return;
    if (n <= 0) {
        evloop_del(r->m->vm.loop, STDIN_FILENO);
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
        (void)evloop_mod(r->m->vm.loop, STDIN_FILENO, EPOLLIN);
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
    if (evloop_add(r->m->vm.loop, STDIN_FILENO, EPOLLIN, stdin_ready, r) == 0)
        r->stdin_watched = 1;
}

/* ---- signals ---------------------------------------------------------------
 */

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

/* Peak RSS (VmHWM), in KiB; 0 if unknown. getrusage, not /proc: runvm
 * opens no file once it is sandboxed. */
static unsigned long long peak_rss_kib(void)
{
    struct rusage ru;
    return getrusage(RUSAGE_SELF, &ru) == 0 ? (unsigned long long)ru.ru_maxrss
                                            : 0;
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
            for (uint64_t p = 0;
                 p < (len + (uint64_t)page - 1) / (uint64_t)page; p++)
                pages += vec[p] & 1;
        }
    }
    return pages * (unsigned long long)page / 1024;
}

static void print_boot_timer(const struct machine *m)
{
    const struct vm *vm = &m->vm;
    const struct boot_timer *timer = &m->timer;
    /* Read HWM first: the report itself must not count. */
    unsigned long long hwm = peak_rss_kib();
    unsigned long long guest = guest_resident_kib(&vm->mem);
    fprintf(stderr,
            "runvm: boot-timer: vmm-start 0.000 ms, kvm-ready %.3f "
            "ms, first-kvm-run %.3f ms",
            ms_since(vm->t_start, vm->t_kvm_ready),
            ms_since(vm->t_start, vm->t_first_run));
    unsigned int n = __atomic_load_n(&timer->nr_marks, __ATOMIC_ACQUIRE);
    for (unsigned int i = 0; i < n && i < BOOT_TIMER_MAX_MARKS; i++)
        fprintf(stderr, ", guest-marker 0x%02x %.3f ms", timer->marks[i].value,
                ms_since(vm->t_start, timer->marks[i].ns));
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
        fprintf(stderr,
                "runvm: boot-timer: kvm-exits from %s, all vCPUs, "
                "cumulative:",
                kvm_stats_source_name(&vm->exit_stats));
        for (unsigned int i = 0; i < n && i < BOOT_TIMER_MAX_MARKS; i++) {
            if (!timer->marks[i].have_counters)
                continue;
            fprintf(stderr, " guest-marker 0x%02x", timer->marks[i].value);
            for (int c = 0; c < KVM_STAT_COUNT; c++)
                fprintf(stderr, " %s %" PRIu64, kvm_stat_names[c],
                        timer->marks[i].counters[c]);
            fputc(';', stderr);
        }
        fputs(" stop", stderr);
        for (int c = 0; c < KVM_STAT_COUNT; c++)
            fprintf(stderr, " %s %" PRIu64, kvm_stat_names[c], end[c]);
        fputc('\n', stderr);
    }
    fprintf(stderr, "runvm: stopped: %s\n",
            vm->stop_why ? vm->stop_why : "unknown");
    fprintf(stderr,
            "runvm: memory: peak RSS %llu KiB, guest RAM resident "
            "%llu KiB, VMM overhead %lld KiB\n",
            hwm, guest, (long long)hwm - (long long)guest);
}

/* ---- main -------------------------------------------------------------- */

/* What is left of --timeout S, counted from runvm's start as timeout(1)
 * would; -1 for none. */
static int timeout_left(const struct vm *vm, unsigned long timeout_s)
{
    if (!timeout_s)
        return -1;
    int64_t left = (int64_t)timeout_s * 1000 -
                   (int64_t)((clock_now_ns() - vm->t_start) / 1000000);
    return left > 0 ? (int)left : 0;
}

/* The machine, its guest from the snapshot from (restored) or from the
 * kernel and initramfs in files (loaded). 0, or -errno with a message in
 * err and no machine left. */
static int make_machine(struct runvm *r, const struct machine_desc *desc,
                        struct evloop *loop, uint64_t t_start,
                        const struct snapshot *from,
                        struct arch_boot_files *files, char *err,
                        size_t err_len)
{
    int ret = machine_create(&r->m, desc, loop, t_start, err, err_len);
    if (ret < 0)
        return ret;
    ret = from ? snapshot_restore(r->m, from, err, err_len)
               : vm_load(&r->m->vm, files, err, err_len);
    if (ret < 0) {
        machine_destroy(r->m);
        r->m = NULL;
    }
    return ret;
}

int main(int argc, char **argv)
{
    uint64_t t_start = clock_now_ns();
    struct runvm r = {.rx_event_fd = -1, .signal_fd = -1};
    struct cli_config o;
    char err[512];
    if (argc <= 1) {
        fputs(usage_text, stderr);
        return RUNVM_EXIT_USAGE;
    }
    if (cli_parse_args(argc, argv, &o, err, sizeof(err)) < 0) {
        fprintf(stderr, "runvm: %s (see runvm --help)\n", err);
        return RUNVM_EXIT_USAGE;
    }
    switch (o.mode) {
    case CLI_HELP: fputs(usage_text, stdout); return 0;
    case CLI_VERSION:
        printf("runvm %s (agent protocol %d)\n", RUNVM_VERSION, MSG_VERSION);
        return 0;
    case CLI_LIST_LANGS: return cli_list_langs();
    case CLI_SNAPSHOT_VERIFY: return snapstore_verify(o.verify);
    case CLI_SERVE: return cli_serve(&o);
    default: break;
    }
    /* --lang or --exec: the agent's exchange. */
    struct cli_job *job = cli_job_new(&o);
    signal(SIGPIPE, SIG_IGN);

    struct arch_boot_files files = {.kernel_path = o.kernel,
                                    .initrd_path = o.initrd,
                                    .kernel_fd = -1,
                                    .initrd_fd = -1};
    /* --restore: the snapshot is the kernel, the memory and the vCPUs. */
    struct snapshot snap = {.mem_fd = -1};
    struct snapshot_out snap_out = {.state_fd = -1, .mem_fd = -1};
    if (o.restore && snapshot_open(&snap, o.restore, err, sizeof(err)) < 0) {
        fprintf(stderr, "runvm: --restore: %s\n", err);
        return RUNVM_EXIT_INFRA;
    }
    if (!o.restore) {
        files.kernel_fd = open_input("--kernel", o.kernel, &files.kernel_size);
        files.initrd_fd = open_input("--initrd", o.initrd, &files.initrd_size);
        if (arch_check_kernel(files.kernel_fd, files.kernel_size, o.kernel, err,
                              sizeof(err)) < 0) {
            fprintf(stderr, "runvm: %s\n", err);
            return RUNVM_EXIT_INFRA;
        }
    }
    uint64_t mem = (uint64_t)o.mem_mib << 20;
    if (!o.restore && files.initrd_size >= mem) {
        fprintf(stderr,
                "runvm: --initrd %s: %llu MiB does not fit in "
                "--mem %lu MiB of guest RAM; raise --mem\n",
                o.initrd, (unsigned long long)(files.initrd_size >> 20),
                o.mem_mib);
        return RUNVM_EXIT_INFRA;
    }
    /* From here a run that fails removes what it wrote of DIR. */
    if (o.snapshot_out &&
        snapshot_out_open(&snap_out, o.snapshot_out, files.kernel_fd,
                          files.initrd_fd, err, sizeof(err)) < 0) {
        fprintf(stderr, "runvm: --snapshot-out: %s\n", err);
        return RUNVM_EXIT_INFRA;
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
        .vconsole = o.vconsole_stdio || o.vconsole_path,
        .vconsole_in = STDIN_FILENO,
        .vconsole_out = STDOUT_FILENO,
        .vconsole_socket = o.vconsole_path,
        .net_tap = o.net_tap[0] ? o.net_tap : NULL,
        .agent_channel = job != NULL,
    };
    /* --lang: its image's snapshot, restored from or taken at boot. */
    struct snapstore store = {.snap.mem_fd = -1,
                              .out = {.state_fd = -1, .mem_fd = -1}};
    /* Runs as --user may restore from the store but not write to it;
     * machines with devices a snapshot cannot hold yet do without, and so
     * does an arch without snapshots. */
    bool can_take = !o.user && !o.group;
    bool savable = ARCH_SNAPSHOTS && !o.net_tap[0] && !o.vconsole_stdio &&
                   !o.vconsole_path;
    if ((((o.mode == CLI_ONESHOT || o.mode == CLI_API) && !o.no_snapshot) ||
         o.mode == CLI_SNAPSHOT_LANG) &&
        savable) {
        snapstore_plan(&store, &files, mem, (unsigned int)o.cpus, o.cmdline,
                       can_take);
        if (o.mode == CLI_SNAPSHOT_LANG && (store.restore || !store.take)) {
            /* There already, or cannot be: nothing to boot. */
            if (store.restore)
                printf("%s\n", store.dir);
            snapstore_free(&store);
            cli_job_free(job);
            return store.restore ? 0 : RUNVM_EXIT_INFRA;
        }
        cli_job_snapshot(job, store.restore, store.take);
    }
    /* API mode makes a VM per submission once sandboxed, on a /dev/kvm
     * it holds (it opens nothing then). */
    int kvm_keep = -1;
    if (o.mode == CLI_API && (store.restore || store.take)) {
        kvm_keep = kvm_open(err, sizeof(err));
        if (kvm_keep < 0) {
            fprintf(stderr, "runvm: %s\n", err);
            snapstore_free(&store);
            return RUNVM_EXIT_INFRA;
        }
        desc.kvm_fd = &kvm_keep;
    }
    struct snapshot *from = o.restore       ? &snap
                            : store.restore ? &store.snap
                                            : NULL;
    if (from)
        snapshot_desc(from, &desc);
    /* --cgroup: from here on runvm is the VM's process, in a cgroup of
     * its own; what it opened so far comes along. */
    pid_t supervisor = 0;
    struct cgroup_limits lim = {.mem_bytes = desc.mem_bytes, .cpus = desc.cpus};
    struct evloop loop;
    memcpy(desc.net_mac, o.net_mac, sizeof(desc.net_mac));
    int ret = o.cgroup
                  ? cgroup_enter(o.cgroup, &lim, &supervisor, err, sizeof(err))
                  : 0;
    if (ret < 0)
        fprintf(stderr, "runvm: %s\n", err);
    else if ((ret = evloop_init(&loop)) < 0)
        fprintf(stderr, "runvm: event loop: %s\n", strerror(-ret));
    if (ret < 0) {
        snapstore_free(&store);
        if (kvm_keep >= 0)
            close(kvm_keep);
        if (o.snapshot_out)
            snapshot_remove(o.snapshot_out);
        return RUNVM_EXIT_INFRA;
    }
    int status = RUNVM_EXIT_INFRA;
    ret =
        make_machine(&r, &desc, &loop, t_start, from, &files, err, sizeof(err));
    if (ret < 0 && from == &store.snap) {
        /* The image's snapshot did not restore: boot cold, taking it. */
        snapstore_fallback(&store, &files, ret, err, can_take);
        cli_job_snapshot(job, false, store.take);
        desc.mem_bytes = mem;
        desc.cpus = (unsigned int)o.cpus;
        desc.ram_file = NULL;
        ret = make_machine(&r, &desc, &loop, t_start, NULL, &files, err,
                           sizeof(err));
    }
    if (ret < 0) {
        fprintf(stderr, "runvm: %s%s\n", o.restore ? "--restore: " : "", err);
        goto out;
    }
    struct vm *vm = &r.m->vm;
    if (job &&
        cli_job_attach(job, vm, machine_agent(r.m), err, sizeof(err)) < 0) {
        fprintf(stderr, "runvm: %s\n", err);
        goto out;
    }
    if (files.kernel_fd >= 0)
        close(files.kernel_fd);
    if (files.initrd_fd >= 0)
        close(files.initrd_fd);
    files.kernel_fd = files.initrd_fd = -1;

    r.signal_fd = signalfd(-1, &sigs, SFD_CLOEXEC | SFD_NONBLOCK);
    r.rx_event_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (r.signal_fd < 0 || r.rx_event_fd < 0 ||
        evloop_add(vm->loop, r.signal_fd, EPOLLIN, signal_ready, &r) < 0 ||
        evloop_add(vm->loop, r.rx_event_fd, EPOLLIN, rx_event, &r) < 0) {
        fprintf(stderr, "runvm: event loop set-up: %s\n", strerror(errno));
        goto out;
    }
    if (o.console)
        console_stdin_setup(&r);
    /* Everything is open: become --user, confine runvm, before the guest
     * runs. */
    if (o.user || o.group) {
        uid_t uid;
        gid_t gid;
        if (cli_resolve_ids(o.user, o.group, &uid, &gid, err, sizeof(err)) <
                0 ||
            cli_job_chown(job, uid, gid, err, sizeof(err)) < 0 ||
            (o.vconsole_path &&
             fchownat(AT_FDCWD, o.vconsole_path, uid, gid,
                      AT_SYMLINK_NOFOLLOW) < 0 &&
             snprintf(err, sizeof(err), "--user: chown %s: %s", o.vconsole_path,
                      strerror(errno)) > 0) ||
            sandbox_drop(uid, gid, err, sizeof(err)) < 0) {
            fprintf(stderr, "runvm: %s\n", err);
            goto out;
        }
        /* The uid change cleared the parent-death signal. */
        if (o.cgroup && cgroup_rearm(supervisor) < 0) {
            fprintf(stderr, "runvm: --cgroup: the supervisor is gone\n");
            goto out;
        }
    }
    if (sandbox_process(err, sizeof(err)) < 0 ||
        sandbox_seccomp(kvm_keep >= 0 ? SANDBOX_LOOP_VMS : SANDBOX_LOOP, err,
                        sizeof(err)) < 0) {
        fprintf(stderr, "runvm: %s\n", err);
        goto out;
    }

    enum vm_stop stop;
    /* vm_run returns VM_STOP_PAUSE where the front end has something to
     * do before the guest goes on: a snapshot at the agent's HELLO, or a
     * fresh VM for API mode's next submission. */
    for (;;) {
        stop = vm_run(vm, timeout_left(vm, o.timeout_s));
        if (stop != VM_STOP_PAUSE)
            break;
        if (cli_job_paused(job) && o.snapshot_out) {
            /* --snapshot-out: the snapshot, then nothing more. */
            restore_terminal(&r);
            if (snapshot_save(r.m, &snap_out, err, sizeof(err)) < 0) {
                fprintf(stderr, "runvm: --snapshot-out %s: %s\n",
                        o.snapshot_out, err);
                goto out;
            }
            status = 0;
            goto out;
        }
        if (cli_job_paused(job) && store.take) {
            /* The image's first boot: its snapshot, then the run (or, for
             * `runvm snapshot`, nothing more). */
            int took = snapstore_take(&store, r.m);
            if (o.mode == CLI_SNAPSHOT_LANG) {
                restore_terminal(&r);
                if (took == 0) {
                    printf("%s\n", store.dir);
                    status = 0;
                }
                goto out;
            }
            if (took < 0)
                cli_job_no_fresh_vms(job);
            if (cli_job_go_on(job, err, sizeof(err)) < 0) {
                fprintf(stderr, "runvm: %s\n", err);
                goto out;
            }
            continue;
        }
        if (cli_job_wants_vm(job) && store.restore) {
            /* API mode's next submission: a VM of its own, restored from
             * the image's snapshot; the last one's is gone. */
            cli_job_detach(job);
            machine_destroy(r.m);
            r.m = NULL;
            snapshot_desc(&store.snap, &desc);
            desc.sandboxed = true;
            if (make_machine(&r, &desc, &loop, clock_now_ns(), &store.snap,
                             NULL, err, sizeof(err)) < 0 ||
                cli_job_reattach(job, &r.m->vm, machine_agent(r.m), err,
                                 sizeof(err)) < 0) {
                fprintf(stderr,
                        "runvm: a fresh VM for the next submission: "
                        "%s\n",
                        err);
                cli_job_no_vm(job, err);
                goto out;
            }
            vm = &r.m->vm;
            continue;
        }
        break;
    }
    restore_terminal(&r);
    if (stop == VM_STOP_TIMEOUT)
        fprintf(stderr,
                "runvm: guest still running after --timeout %lu s; "
                "stopped it\n",
                o.timeout_s);
    if (stop == VM_STOP_ERROR)
        fprintf(stderr, "runvm: guest stopped: %s (0x%llx)\n",
                vm->stop_why ? vm->stop_why : "unknown error", vm->stop_detail);
    status = job ? cli_job_status(job, stop, r.got_signal)
                 : event_stop_status(stop, r.got_signal, true);
    if (o.boot_timer) {
        print_boot_timer(r.m);
        machine_print_stats(r.m, stderr);
        /* A guest stopped from outside (its timeout, or a signal from a
         * caller that gave up) may be waiting on a device: show where
         * each queue stands. */
        if (stop == VM_STOP_TIMEOUT || stop == VM_STOP_SIGNAL ||
            stop == VM_STOP_ERROR)
            machine_dump_queues(r.m, stderr);
    }
out:
    restore_terminal(&r);
    if (o.snapshot_out && status != 0)
        snapshot_remove(o.snapshot_out); /* half a snapshot is none */
    snapshot_out_close(&snap_out);
    snapshot_close(&snap);
    snapstore_free(&store);
    cli_job_free(job); /* before the machine: its channel serves the job */
    machine_destroy(r.m);
    if (kvm_keep >= 0)
        close(kvm_keep);
    evloop_free(&loop);
    if (r.signal_fd >= 0)
        close(r.signal_fd);
    if (r.rx_event_fd >= 0)
        close(r.rx_event_fd);
    return status;
}
