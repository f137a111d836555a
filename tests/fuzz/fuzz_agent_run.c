/* libFuzzer target: the guest agent's handling of what the host sends
 * (guest-agent/agent.c, job.c, workdir.c, job_step.c: RUN decoding, file
 * names, the work directory and its files, argv, environment, limits,
 * stdin, the steps' output and EXIT), with the process seam, step.h,
 * stubbed: step_spawn forks nothing, it keeps the step's ends of the pipes
 * and the input plays the step (writes output, reads stdin, exits). What
 * agent_run's loop does on each event is done here by operations, without
 * poll or signals. Files go to a temporary work root (in /dev/shm where
 * it is writable), removed at exit but not after a crash.
 *
 * Byte 0: bits 0-1 pick the image's lang.conf (LANG_CONFS: full, no
 * BUILD, malformed, missing); bit 2 makes every step_spawn fail. Then
 * operations, one byte each (mod 10) and their arguments:
 *   0 raw     u8 n, n bytes: channel bytes as they are
 *   1 frame   u8 type, u16 flags, u8 id, u16 n, n payload bytes: a message
 *             the harness frames (tests/fuzz/frame.h)
 *   2 run     a RUN built by msg_build_run from fields in the input
 *             (see read_run)
 *   3, 4      the step writes u8 n bytes to stdout, stderr
 *   5 exit    u8: the step ends (bit 7: killed by signal bits 0-4, else
 *             exit code bits 0-6)
 *   6 stdin   the agent writes pending stdin; the step reads it
 *   7 timeout the step's wall-clock limit passes
 *   8 close   the step closes its stdin
 *   9 (none)
 * Afterwards every message the agent queued must parse, be one an agent
 * sends, and OUTPUT and EXIT only for the RUN in progress; a step starts
 * only with a command, NAME=VALUE environment, its files written as
 * regular files in its own work directory, and nothing else in the work
 * root; and a run leaves no fd and no work directory behind. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <sanitizer/common_interface_defs.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/socket.h>
#include <unistd.h>

#include "guest-agent/agent_int.h"
#include "guest-agent/step.h"
#include "tests/fuzz/check.h"
#include "tests/fuzz/cursor.h"
#include "tests/fuzz/frame.h"

/* Never a real process (pid_max is at most 2^22): waitpid on it fails. */
#define FAKE_PID (INT_MAX - 1)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const LANG_CONFS[] = {
    "LANG=c\nTOOLCHAIN=gcc 12\nSOURCE=main.c\n"
    "BUILD=gcc -O2 -o main main.c\nRUN=./main\nENV=LC_ALL=C\nENV=A=b c\n",
    "LANG=python\nSOURCE=main.py\nRUN=python3 main.py\n",
    "LANG=broken\nthis is not a key\n", NULL, /* no lang.conf in the image */
};

/* The temporary work root and lang.conf files, made once. */
static char root[64];
static char work[96];
static char confs[4][96];

/* The fake step: its ends of the pipes, as the child would hold them. */
static struct {
    int out, err, in;
    bool fail;
    const struct agent *agent;
} step = {-1, -1, -1, false, NULL};

static void close_fd(int *fd)
{
    if (*fd >= 0)
        close(*fd);
    *fd = -1;
}

static void step_close(void)
{
    close_fd(&step.out);
    close_fd(&step.err);
    close_fd(&step.in);
}

static int dup_nonblock(int fd)
{
    int d = fcntl(fd, F_DUPFD_CLOEXEC, 0);
    check_that(d >= 0, "dup failed");
    fcntl(d, F_SETFL, fcntl(d, F_GETFL) | O_NONBLOCK);
    return d;
}

/* What a step may start with. */
static void check_spec(const struct step_spec *s)
{
    const struct agent *a = step.agent;
    check_that(s->argv && s->argv[0], "a step without a command");
    for (size_t i = 0; s->envp[i]; i++) {
        const char *eq = strchr(s->envp[i], '=');
        check_that(eq && eq != s->envp[i], "environment not NAME=VALUE");
        check_that(i < MAX_ENV, "environment over MAX_ENV");
    }
    check_that(a->workdir[0] && !strcmp(s->workdir, a->workdir),
               "a step outside the RUN's work directory");
    check_that(!strncmp(s->workdir, work, strlen(work)),
               "a work directory outside the work root");
    for (size_t i = 0; i < a->job.run.nfiles; i++) {
        const struct msg_bytes n = a->job.run.files[i].name;
        char path[PATH_MAX + NAME_MAX + 2];
        struct stat st;
        snprintf(path, sizeof(path), "%s/%.*s", s->workdir, (int)n.len,
                 (const char *)n.p);
        check_that(lstat(path, &st) == 0 && S_ISREG(st.st_mode),
                   "a request file is not a regular file in the work dir");
    }
    /* Nothing but run directories in the work root. */
    DIR *d = opendir(work);
    check_that(d != NULL, "the work root is gone");
    struct dirent *e;
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        check_that(!strncmp(e->d_name, "run", 3) && e->d_type == DT_DIR,
                   "something besides run directories in the work root");
    }
    closedir(d);
}

pid_t step_spawn(const struct step_spec *s)
{
    check_spec(s);
    step_close();
    if (step.fail)
        return -EAGAIN;
    step.out = dup_nonblock(s->stdout_fd);
    step.err = dup_nonblock(s->stderr_fd);
    step.in = dup_nonblock(s->stdin_fd);
    return FAKE_PID;
}

int step_cgroup_create(const char *cg_root, const char *name,
                       const struct step_limits *limits, char *out,
                       size_t outlen, bool *limits_memory)
{
    (void)cg_root;
    (void)name;
    (void)limits;
    (void)out;
    (void)outlen;
    *limits_memory = false;
    return -ENOSYS;
}

int step_cgroup_cpu_usec(const char *cgroup, uint64_t *usec)
{
    (void)cgroup;
    *usec = 0;
    return -ENOSYS;
}

void step_kill(pid_t pgid, const char *cgroup)
{
    (void)cgroup;
    check_that(pgid == FAKE_PID, "killing a process that is not the step");
}

void step_reap_group(pid_t pgid, const char *cgroup, int timeout_ms)
{
    (void)cgroup;
    (void)timeout_ms;
    check_that(pgid == FAKE_PID, "reaping a group that is not the step's");
}

void step_cgroup_usage(const char *cgroup, struct step_usage *u)
{
    (void)cgroup;
    memset(u, 0, sizeof(*u));
}

void step_cgroup_remove(const char *cgroup)
{
    (void)cgroup;
}

static int rm_entry(const char *path, const struct stat *st, int type,
                    struct FTW *ftw)
{
    (void)st;
    (void)ftw;
    if (type == FTW_DP)
        rmdir(path);
    else
        unlink(path);
    return 0;
}

static void remove_root(void)
{
    nftw(root, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* The sanitizers start their symbolizer (a process on pipes that stay
 * open) at their first report; a UBSan report within a run would then
 * look like a leak. Start it now, its output thrown away. */
static void start_symbolizer(void)
{
    int saved = dup(2), null = open("/dev/null", O_WRONLY | O_CLOEXEC);
    if (saved < 0 || null < 0)
        return;
    dup2(null, 2);
    __sanitizer_print_stack_trace();
    dup2(saved, 2);
    close(saved);
    close(null);
}

/* The work root and the lang.conf files, and the symbolizer. 0 or -1. */
static int setup_once(void)
{
    start_symbolizer();
    /* tmpfs where there is one: every run makes and removes files. */
    snprintf(root, sizeof(root), "%s/fuzz_agent_run.XXXXXX",
             access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp");
    if (!mkdtemp(root))
        return -1;
    atexit(remove_root);
    snprintf(work, sizeof(work), "%s/work", root);
    if (mkdir(work, 0755) < 0)
        return -1;
    for (int i = 0; i < 4; i++) {
        snprintf(confs[i], sizeof(confs[i]), "%s/lang%d.conf", root, i);
        if (!LANG_CONFS[i])
            continue;
        FILE *f = fopen(confs[i], "w");
        if (!f)
            return -1;
        fputs(LANG_CONFS[i], f);
        fclose(f);
    }
    return 0;
}

/* ---- what the agent sends ------------------------------------------------ */

struct host {
    const struct agent *a;
    uint32_t last_run; /* the id of the RUN last seen active */
};

static void host_got(void *opaque, const struct msg_view *v)
{
    struct host *h = opaque;
    struct msg_hello hello;
    struct msg_output o;
    struct msg_exit e;
    struct msg_error er;
    switch (v->type) {
    case MSG_HELLO:
        check_that(msg_decode_hello(v, &hello) == 0, "a bad HELLO");
        break;
    case MSG_OUTPUT:
        check_that(msg_decode_output(v, &o) == 0, "a bad OUTPUT");
        check_that(v->id == h->last_run, "OUTPUT of no RUN");
        break;
    case MSG_EXIT:
        check_that(msg_decode_exit(v, &e) == 0, "a bad EXIT");
        check_that(v->id == h->last_run, "EXIT of no RUN");
        break;
    case MSG_ERROR:
        check_that(msg_decode_error(v, &er) == 0, "a bad ERROR");
        break;
    default: check_that(false, "the agent sent a host's message");
    }
}

static void host_dropped(void *opaque, int err)
{
    (void)opaque;
    (void)err;
    check_that(false, "the agent sent a frame that does not parse");
}

/* Reads what the agent queued for the channel. */
static void host_read(struct host *h, struct msg_reader *r, struct agent *a)
{
    msg_reader_feed(r, a->out.data, a->out.len);
    msg_buf_reset(&a->out);
    if (a->job.active)
        h->last_run = a->job.id;
}

/* ---- what the host sends ------------------------------------------------- */

/* A RUN from the input: u8 flags, u8 id, u8 nfiles (mod 5), each file u8
 * name length, name, u16 mode, u8 data length, data; u8 lists present
 * (bits: build, run, env), each list u8 length and its bytes (words each
 * ending in NUL, or malformed); u8 stdin length, stdin; u8 limits present
 * (bits: run, build), five u16 limits for each. */
static void read_run(struct cursor *in, struct msg_buf *wire, uint32_t id)
{
    struct msg_run r;
    memset(&r, 0, sizeof(r));
    r.flags = cursor_u8(in) & 7;
    r.nfiles = cursor_u8(in) % 5;
    for (size_t i = 0; i < r.nfiles; i++) {
        const uint8_t *p;
        size_t n = cursor_bytes(in, cursor_u8(in), &p);
        r.files[i].name = (struct msg_bytes){p, (uint32_t)n};
        r.files[i].mode = cursor_u16(in);
        n = cursor_bytes(in, cursor_u8(in), &p);
        r.files[i].data = (struct msg_bytes){p, (uint32_t)n};
    }
    uint8_t lists = cursor_u8(in);
    struct msg_strlist *l[3] = {&r.build_argv, &r.run_argv, &r.env};
    for (int i = 0; i < 3; i++) {
        if (!(lists & (1u << i)))
            continue;
        const uint8_t *p;
        size_t n = cursor_bytes(in, cursor_u8(in), &p);
        *l[i] = (struct msg_strlist){true, p, (uint32_t)n};
    }
    const uint8_t *p;
    size_t n = cursor_bytes(in, cursor_u8(in), &p);
    r.stdin_data = (struct msg_bytes){p, (uint32_t)n};
    uint8_t limits = cursor_u8(in);
    struct msg_limits *lim[2] = {&r.limits, &r.build_limits};
    for (int i = 0; i < 2; i++) {
        if (!(limits & (1u << i)))
            continue;
        lim[i]->wall_ms = cursor_u16(in);
        lim[i]->cpu_ms = cursor_u16(in);
        lim[i]->mem_bytes = cursor_u16(in);
        lim[i]->max_procs = cursor_u16(in);
        lim[i]->max_output = cursor_u16(in);
    }
    r.has_build_limits = limits & 2;
    struct msg_buf m;
    msg_buf_init(&m);
    if (msg_build_run(&m, id, &r) == 0)
        (void)msg_slip_append(wire, m.data, m.len);
    msg_buf_free(&m);
}

/* ---- the step ----------------------------------------------------------- */

static bool step_running(const struct agent *a)
{
    return a->job.active && a->job.pid > 0;
}

static void step_output(struct agent *a, struct cursor *in, bool err)
{
    const uint8_t *p;
    size_t n = cursor_bytes(in, cursor_u8(in), &p);
    int fd = err ? step.err : step.out;
    if (!step_running(a) || fd < 0)
        return;
    if (write(fd, p, n) < 0)
        return;
    /* agent_run on POLLIN of the pipe. */
    int *pipe = err ? &a->job.err_fd : &a->job.out_fd;
    if (*pipe >= 0 &&
        job_step_pump_output(a, *pipe,
                             err ? MSG_STREAM_STDERR : MSG_STREAM_STDOUT) == 0)
        agent_close_fd(pipe);
}

static void step_exit(struct agent *a, uint8_t how)
{
    if (!step_running(a))
        return;
    step_close();
    struct job *j = &a->job;
    j->reaped = true;
    j->wstatus = how & 0x80 ? (how & 0x1f) : (how & 0x7f) << 8;
    job_step_finish(a);
}

static void step_stdin(struct agent *a)
{
    if (!step_running(a))
        return;
    job_step_pump_stdin(a);
    uint8_t buf[4096];
    while (step.in >= 0 && read(step.in, buf, sizeof(buf)) > 0)
        ;
}

static void step_timeout(struct agent *a)
{
    struct job *j = &a->job;
    if (!step_running(a) || j->timed_out)
        return;
    j->timed_out = true;
    step_kill(j->pid, NULL);
}

/* How many fds the process has open: the same after a run as before it,
 * unless the run leaked one. */
static int open_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    int n = 0;
    check_that(d != NULL, "no /proc/self/fd");
    while (readdir(d))
        n++;
    closedir(d);
    return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int channel[2] = {-1, -1};
    if (channel[0] < 0 &&
        (setup_once() < 0 ||
         socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, channel) < 0))
        abort();
    if (size < 1)
        return 0;
    int fds = open_fds();
    struct cursor in;
    cursor_init(&in, data, size);
    uint8_t mode = cursor_u8(&in);
    struct agent_config cfg = {
        .channel_fd = channel[0],
        .lang_conf = confs[mode & 3],
        .work_root = work,
    };
    step.fail = mode & 4;
    struct agent *a = agent_new(&cfg);
    check_that(a != NULL, "the agent did not start");
    step.agent = a;
    struct host h = {.a = a};
    struct msg_reader host;
    check_that(msg_reader_init(&host, host_got, host_dropped, &h) == 0,
               "no reader");
    struct msg_buf wire;
    msg_buf_init(&wire);
    uint32_t next_id = 1;
    while (!cursor_empty(&in) && !a->fatal && !a->shutdown) {
        uint8_t op = cursor_u8(&in);
        msg_buf_reset(&wire);
        switch (op % 10) {
        case 0: {
            const uint8_t *p;
            size_t n = cursor_bytes(&in, cursor_u8(&in), &p);
            if (n)
                msg_buf_append(&wire, p, n);
            break;
        }
        case 1: {
            uint8_t type = cursor_u8(&in);
            uint16_t flags = cursor_u16(&in);
            uint8_t id = cursor_u8(&in);
            const uint8_t *p;
            size_t n = cursor_bytes(&in, cursor_u16(&in) % 4096, &p);
            frame_put(&wire, type % 10, flags, id < 4 ? next_id - id : id, p,
                      n);
            break;
        }
        case 2: read_run(&in, &wire, next_id++); break;
        case 3: step_output(a, &in, false); break;
        case 4: step_output(a, &in, true); break;
        case 5: step_exit(a, cursor_u8(&in)); break;
        case 6: step_stdin(a); break;
        case 7: step_timeout(a); break;
        case 8: close_fd(&step.in); break;
        default: break;
        }
        if (wire.len)
            msg_reader_feed(&a->reader, wire.data, wire.len);
        host_read(&h, &host, a);
        if (!a->job.active)
            check_that(a->job.pid == 0 && a->job.out_fd < 0 &&
                           a->job.err_fd < 0 && a->job.in_fd < 0,
                       "an ended job keeps a step or its pipes");
    }
    msg_buf_free(&wire);
    msg_reader_free(&host);
    /* agent_free ends a job in progress through job_step_kill, which
     * closes the step's pipes (it once forgot them: docs/fuzzing.md). */
    agent_free(a);
    step_close();
    step.agent = NULL;
    DIR *d = opendir(work);
    check_that(d != NULL, "the work root is gone");
    struct dirent *e;
    while ((e = readdir(d)))
        check_that(!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."),
                   "the agent left its work directory behind");
    closedir(d);
    check_that(open_fds() == fds, "an fd leaked");
    return 0;
}
