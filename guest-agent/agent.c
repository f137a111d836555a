#include "guest-agent/agent.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "guest-agent/step.h"
#include "protocol/langconf.h"

#define MAX_ARGV 256
#define MAX_ENV 256
/* Stop reading the steps' pipes while this much is waiting for the channel:
 * the pipes then fill and the step blocks, which is the backpressure. */
#define OUT_HIGH_WATER (1u << 20)
/* The build step's timer slack: its sleeps and timeouts may end up to one
 * tick (HZ=250) late, so they expire with the tick instead of each
 * programming the timer, and every programming is a VM exit (the TSC
 * deadline MSR) and an interrupt. The toolchain's output does not depend
 * on when its timers fire; Go's runtime sleeps in 20 us steps while busy.
 * Measured nested, `go build` of hello world six times on one VM: KVM
 * exits 43 404 -> 14 448, median round trip 2.11 -> 1.30 s. The program
 * itself (RUN) keeps the kernel's 50 us. */
#define BUILD_TIMER_SLACK_NS 4000000ULL
#define STEP_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

struct job {
    bool active;
    uint32_t id;
    uint8_t *payload; /* copy of the RUN payload; run's fields point here */
    struct msg_run run;
    bool has_build;
    const char *build_argv[MAX_ARGV];
    const char *run_argv[MAX_ARGV];
    const char *env[MAX_ENV + 1];
    char *env_storage[MAX_ENV]; /* the HOME= string we made */
    struct msg_limits limits;       /* the run step's, defaults filled in */
    struct msg_limits build_limits; /* the build step's */
    struct msg_buf stdin_pending;
    bool stdin_eof;

    /* The step in progress. */
    uint8_t phase;
    pid_t pid; /* 0: none */
    int out_fd, err_fd, in_fd;
    uint64_t start_ms, deadline_ms;
    bool reaped;
    int wstatus;
    struct rusage ru;
    uint64_t output;
    bool truncated, timed_out;
    char cgroup[256]; /* "" when the step has none */
};

struct agent {
    struct agent_config cfg;
    struct langconf lang;
    struct msg_reader reader;
    struct msg_buf out;     /* SLIP bytes waiting for the channel */
    struct msg_buf scratch; /* message being built */
    int sigfd;
    bool channel_closed;
    bool shutdown;
    int fatal; /* -errno that ends the loop */
    struct job job;
    char workdir[PATH_MAX]; /* "" when none */
    unsigned seq;
    uint8_t readbuf[MSG_CHUNK];
};

static void logf_(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void logf_(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("runvm-agent: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void close_fd(int *fd)
{
    if (*fd >= 0)
        close(*fd);
    *fd = -1;
}

/* ---- sending ------------------------------------------------------------ */

/* Moves the message built in scratch into the output queue. */
static void queue_scratch(struct agent *a, int built)
{
    if (built == 0 &&
        msg_slip_append(&a->out, a->scratch.data, a->scratch.len) < 0)
        built = -ENOMEM;
    if (built < 0 && !a->fatal) {
        logf_("cannot queue a message: %s", strerror(-built));
        a->fatal = built;
    }
    msg_buf_reset(&a->scratch);
}

static void send_error(struct agent *a, uint32_t id, uint32_t code,
                       const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void send_error(struct agent *a, uint32_t id, uint32_t code,
                       const char *fmt, ...)
{
    char text[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    queue_scratch(a, msg_build_error(&a->scratch, id, code, text));
}

static struct msg_bytes opt_str(const char *s)
{
    return s ? (struct msg_bytes){(const uint8_t *)s, (uint32_t)strlen(s)}
             : (struct msg_bytes){NULL, 0};
}

/* HELLO: at start with id 0, and answering ANNOUNCE with its id. SOURCE
 * stays in it for the host's information; a FILE without a name gets it
 * here anyway. */
static void send_hello(struct agent *a, uint32_t id)
{
    struct msg_hello h = {
        .agent_version = opt_str(AGENT_VERSION),
        .lang = opt_str(a->lang.lang),
        .toolchain = opt_str(a->lang.toolchain),
        .source = opt_str(a->lang.source),
    };
    queue_scratch(a, msg_build_hello(&a->scratch, id, &h));
}

/* Writes what the channel takes now. */
static void flush_out(struct agent *a)
{
    while (a->out.len && !a->channel_closed) {
        ssize_t n = write(a->cfg.channel_fd, a->out.data, a->out.len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN)
            return;
        if (n <= 0) {
            logf_("channel write: %s", n < 0 ? strerror(errno) : "closed");
            a->channel_closed = true;
            return;
        }
        msg_buf_consume(&a->out, (size_t)n);
    }
}

/* Blocks up to timeout_ms until the output queue is written. */
static void flush_out_blocking(struct agent *a, int timeout_ms)
{
    uint64_t deadline = now_ms() + (uint64_t)timeout_ms;
    for (;;) {
        flush_out(a);
        uint64_t now = now_ms();
        if (!a->out.len || a->channel_closed || now >= deadline)
            return;
        struct pollfd p = {.fd = a->cfg.channel_fd, .events = POLLOUT};
        poll(&p, 1, (int)(deadline - now));
    }
}

/* ---- work directory ----------------------------------------------------- */

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

static void remove_workdir(struct agent *a)
{
    if (a->workdir[0])
        nftw(a->workdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    a->workdir[0] = '\0';
}

static int make_workdir(struct agent *a)
{
    remove_workdir(a);
    snprintf(a->workdir, sizeof(a->workdir), "%s/run%u", a->cfg.work_root,
             ++a->seq);
    if (mkdir(a->workdir, 0755) < 0 && errno != EEXIST) {
        int e = -errno;
        a->workdir[0] = '\0';
        return e;
    }
    if (a->cfg.switch_user &&
        chown(a->workdir, a->cfg.uid, a->cfg.gid) < 0) {
        int e = -errno;
        remove_workdir(a);
        return e;
    }
    return 0;
}

static bool valid_file_name(struct msg_bytes n)
{
    if (n.len == 0 || n.len > NAME_MAX)
        return false;
    if (memchr(n.p, '/', n.len) || memchr(n.p, '\0', n.len))
        return false;
    if ((n.len == 1 && n.p[0] == '.') ||
        (n.len == 2 && n.p[0] == '.' && n.p[1] == '.'))
        return false;
    return true;
}

/* Writes one request file into the work directory. Names are plain names
 * (checked), O_NOFOLLOW keeps a symlink left by an earlier step from
 * redirecting the write. */
static int write_file(struct agent *a, const struct msg_file *f)
{
    char name[NAME_MAX + 1];
    memcpy(name, f->name.p, f->name.len);
    name[f->name.len] = '\0';
    mode_t mode = f->mode ? (f->mode & 0777) : 0644;

    int dfd = open(a->workdir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0)
        return -errno;
    int fd = openat(dfd, name,
                    O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC,
                    mode);
    int err = fd < 0 ? -errno : 0;
    close(dfd);
    if (fd < 0)
        return err;
    size_t off = 0;
    while (off < f->data.len) {
        ssize_t n = write(fd, f->data.p + off, f->data.len - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            err = -errno;
            break;
        }
        off += (size_t)n;
    }
    if (!err && fchmod(fd, mode) < 0)
        err = -errno;
    if (!err && a->cfg.switch_user && fchown(fd, a->cfg.uid, a->cfg.gid) < 0)
        err = -errno;
    close(fd);
    return err;
}

/* ---- job set-up --------------------------------------------------------- */

/* Gives a FILE without a name the lang.conf SOURCE name (so the host need
 * not learn it from HELLO first) and checks every name. 0, or -EINVAL
 * with the ERROR sent. */
static int name_files(struct agent *a, struct job *j)
{
    bool unnamed_seen = false;
    for (size_t i = 0; i < j->run.nfiles; i++) {
        struct msg_file *f = &j->run.files[i];
        if (f->name.len == 0) {
            if (unnamed_seen || !a->lang.source) {
                send_error(a, j->id, MSG_ERR_BAD_REQUEST,
                           "file %zu has no name and %s", i,
                           unnamed_seen ? "another one has none either"
                                        : "lang.conf names no SOURCE");
                return -EINVAL;
            }
            unnamed_seen = true;
            f->name = (struct msg_bytes){(const uint8_t *)a->lang.source,
                                         (uint32_t)strlen(a->lang.source)};
        }
        if (!valid_file_name(f->name)) {
            send_error(a, j->id, MSG_ERR_BAD_REQUEST,
                       "file %zu: a name must be a plain file name", i);
            return -EINVAL;
        }
    }
    return 0;
}

static void env_set(const char **env, const char *kv)
{
    size_t kl = strcspn(kv, "=");
    size_t i;
    for (i = 0; env[i]; i++)
        if (!strncmp(env[i], kv, kl) && env[i][kl] == '=') {
            env[i] = kv;
            return;
        }
    if (i < MAX_ENV) {
        env[i] = kv;
        env[i + 1] = NULL;
    }
}

static void job_clear(struct job *j)
{
    free(j->payload);
    for (size_t i = 0; i < MAX_ENV; i++)
        free(j->env_storage[i]);
    msg_buf_free(&j->stdin_pending);
    memset(j, 0, sizeof(*j));
    j->out_fd = j->err_fd = j->in_fd = -1;
}

static uint64_t or_default(uint64_t v, uint64_t def)
{
    return v ? v : def;
}

/* A step's limits: the request's, the agent's default where it says 0. */
static void fill_limits(struct msg_limits *out, const struct msg_limits *in)
{
    out->wall_ms = or_default(in->wall_ms, AGENT_DEFAULT_WALL_MS);
    out->cpu_ms = in->cpu_ms;
    out->mem_bytes = or_default(in->mem_bytes, AGENT_DEFAULT_MEM_BYTES);
    out->max_procs = or_default(in->max_procs, AGENT_DEFAULT_MAX_PROCS);
    out->max_output = or_default(in->max_output, AGENT_DEFAULT_MAX_OUTPUT);
}

/* The limits of a step of the job. */
static const struct msg_limits *step_limits(const struct job *j,
                                            uint8_t phase)
{
    return phase == MSG_PHASE_BUILD ? &j->build_limits : &j->limits;
}

/* Fills the job's argv and environment from the request and lang.conf.
 * Returns 0 or an ERROR code (the message is sent here). */
static int resolve(struct agent *a, struct job *j)
{
    const struct msg_run *r = &j->run;
    int n;

    j->has_build = false;
    if (!(r->flags & MSG_RUN_SKIP_BUILD)) {
        if (r->build_argv.present) {
            n = msg_strlist_split(&r->build_argv, j->build_argv, MAX_ARGV);
            if (n < 0)
                goto bad_argv;
            j->has_build = n > 0;
        } else if (a->lang.has_build) {
            for (n = 0; a->lang.build_argv[n]; n++)
                j->build_argv[n] = a->lang.build_argv[n];
            j->build_argv[n] = NULL;
            j->has_build = true;
        }
    }
    if (r->run_argv.present) {
        n = msg_strlist_split(&r->run_argv, j->run_argv, MAX_ARGV);
        if (n < 0)
            goto bad_argv;
    } else if (a->lang.has_run) {
        for (n = 0; a->lang.run_argv[n]; n++)
            j->run_argv[n] = a->lang.run_argv[n];
        j->run_argv[n] = NULL;
    } else {
        n = 0;
    }
    if (n == 0) {
        send_error(a, j->id, MSG_ERR_NO_COMMAND,
                   "no run command: the request has none and %s has no RUN",
                   a->cfg.lang_conf);
        return MSG_ERR_NO_COMMAND;
    }

    const char *req_env[MAX_ENV];
    n = r->env.present ? msg_strlist_split(&r->env, req_env, MAX_ENV) : 0;
    if (n < 0) {
        send_error(a, j->id, MSG_ERR_BAD_REQUEST, "env: too many entries");
        return MSG_ERR_BAD_REQUEST;
    }
    j->env[0] = NULL;
    env_set(j->env, "PATH=" STEP_PATH);
    env_set(j->env, "TMPDIR=/tmp");
    if (asprintf(&j->env_storage[0], "HOME=%s", a->workdir) < 0) {
        j->env_storage[0] = NULL;
        send_error(a, j->id, MSG_ERR_INTERNAL, "out of memory");
        return MSG_ERR_INTERNAL;
    }
    env_set(j->env, j->env_storage[0]);
    for (int i = 0; a->lang.env[i]; i++)
        env_set(j->env, a->lang.env[i]);
    for (int i = 0; i < n; i++) {
        if (!strchr(req_env[i], '=') || req_env[i][0] == '=') {
            send_error(a, j->id, MSG_ERR_BAD_REQUEST,
                       "env entry %d is not NAME=VALUE", i);
            return MSG_ERR_BAD_REQUEST;
        }
        env_set(j->env, req_env[i]);
    }

    /* Without BUILD_LIMITS the RUN's limits are each step's. */
    fill_limits(&j->limits, &r->limits);
    fill_limits(&j->build_limits,
                r->has_build_limits ? &r->build_limits : &r->limits);
    return 0;

bad_argv:
    send_error(a, j->id, MSG_ERR_BAD_REQUEST,
               "argv: %s", n == -E2BIG ? "too many words" : "malformed");
    return MSG_ERR_BAD_REQUEST;
}

/* ---- steps -------------------------------------------------------------- */

static int set_nonblock(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
        return -errno;
    return 0;
}

static int start_step(struct agent *a, uint8_t phase)
{
    struct job *j = &a->job;
    int out[2] = {-1, -1}, err[2] = {-1, -1}, in[2] = {-1, -1};
    int r = 0;

    if (pipe2(out, O_CLOEXEC) < 0 || pipe2(err, O_CLOEXEC) < 0)
        goto fail_errno;
    if (phase == MSG_PHASE_RUN) {
        if (pipe2(in, O_CLOEXEC) < 0)
            goto fail_errno;
    } else {
        /* The build reads no stdin: the request's stdin is the program's. */
        in[0] = open("/dev/null", O_RDONLY | O_CLOEXEC);
        if (in[0] < 0)
            goto fail_errno;
    }
    if ((r = set_nonblock(out[0])) < 0 || (r = set_nonblock(err[0])) < 0 ||
        (in[1] >= 0 && (r = set_nonblock(in[1])) < 0))
        goto fail;

    const struct msg_limits *limits = step_limits(j, phase);
    struct step_limits lim = {
        .cpu_ms = limits->cpu_ms,
        .mem_bytes = limits->mem_bytes,
        .max_procs = limits->max_procs,
    };
    j->cgroup[0] = '\0';
    if (a->cfg.cgroup_root) {
        char name[32];
        snprintf(name, sizeof(name), "step%u-%u", a->seq, phase);
        int cr = step_cgroup_create(a->cfg.cgroup_root, name, &lim,
                                    j->cgroup, sizeof(j->cgroup));
        if (cr < 0) {
            logf_("cgroup %s/%s: %s; using rlimits only",
                  a->cfg.cgroup_root, name, strerror(-cr));
            j->cgroup[0] = '\0';
        }
    }
    struct step_spec spec = {
        .argv = phase == MSG_PHASE_BUILD ? j->build_argv : j->run_argv,
        .envp = j->env,
        .workdir = a->workdir,
        .stdin_fd = in[0],
        .stdout_fd = out[1],
        .stderr_fd = err[1],
        .switch_user = a->cfg.switch_user,
        .uid = a->cfg.uid,
        .gid = a->cfg.gid,
        .cgroup = j->cgroup[0] ? j->cgroup : NULL,
        .limits = lim,
        .timer_slack_ns = phase == MSG_PHASE_BUILD ? BUILD_TIMER_SLACK_NS : 0,
    };
    j->start_ms = now_ms();
    pid_t pid = step_spawn(&spec);
    if (pid < 0) {
        r = pid;
        if (j->cgroup[0])
            step_cgroup_remove(j->cgroup);
        goto fail;
    }
    close(out[1]);
    close(err[1]);
    close(in[0]);
    j->phase = phase;
    j->pid = pid;
    j->out_fd = out[0];
    j->err_fd = err[0];
    j->in_fd = in[1];
    j->deadline_ms = j->start_ms + limits->wall_ms;
    j->reaped = false;
    j->output = 0;
    j->truncated = j->timed_out = false;
    return 0;

fail_errno:
    r = -errno;
fail:
    for (int i = 0; i < 2; i++) {
        close_fd(&out[i]);
        close_fd(&err[i]);
        close_fd(&in[i]);
    }
    return r;
}

static void end_job(struct agent *a)
{
    job_clear(&a->job);
}

/* Sends what a pipe holds as OUTPUT; past the output cap, kills the step
 * and discards. Returns 1 after reading, 0 at EOF, -1 when the pipe is
 * empty for now. */
static int pump_output(struct agent *a, int fd, uint8_t stream)
{
    struct job *j = &a->job;
    ssize_t n = read(fd, a->readbuf, sizeof(a->readbuf));
    if (n < 0)
        return (errno == EAGAIN || errno == EINTR) ? -1 : 0;
    if (n == 0)
        return 0;
    if (j->truncated)
        return 1;
    uint64_t room = step_limits(j, j->phase)->max_output - j->output;
    size_t send = (uint64_t)n > room ? (size_t)room : (size_t)n;
    if (send)
        queue_scratch(a, msg_build_output(&a->scratch, j->id, j->phase,
                                          stream, a->readbuf, send));
    j->output += send;
    if ((size_t)n > send) {
        /* Over the cap: a program flooding its output is stopped rather
         * than left to run to its timeout. */
        j->truncated = true;
        step_kill(j->pid, j->cgroup[0] ? j->cgroup : NULL);
    }
    return 1;
}

static void pump_stdin(struct agent *a)
{
    struct job *j = &a->job;
    while (j->in_fd >= 0 && j->stdin_pending.len) {
        ssize_t n = write(j->in_fd, j->stdin_pending.data,
                          j->stdin_pending.len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN)
            return;
        if (n < 0) {
            /* EPIPE: the program closed its stdin; the rest is dropped. */
            msg_buf_reset(&j->stdin_pending);
            close_fd(&j->in_fd);
            return;
        }
        msg_buf_consume(&j->stdin_pending, (size_t)n);
    }
    if (j->in_fd >= 0 && !j->stdin_pending.len && j->stdin_eof)
        close_fd(&j->in_fd);
}

/* Kills every process of the step user: catches processes that left the
 * process group (setsid) where no cgroup does. Only safe where the agent
 * owns the machine. */
static void kill_uid(struct agent *a)
{
    pid_t p = fork();
    if (p == 0) {
        if (setuid(a->cfg.uid) == 0)
            kill(-1, SIGKILL);
        _exit(0);
    }
    if (p > 0)
        waitpid(p, NULL, 0);
}

static void finish_step(struct agent *a)
{
    struct job *j = &a->job;
    const char *cg = j->cgroup[0] ? j->cgroup : NULL;

    step_reap_group(j->pid, cg, 2000);
    if (a->cfg.kill_uid && a->cfg.switch_user)
        kill_uid(a);
    /* All writers are gone: drain what the pipes still hold. The output cap
     * bounds this even if a writer escaped the group. */
    while (j->out_fd >= 0 && !j->truncated &&
           pump_output(a, j->out_fd, MSG_STREAM_STDOUT) > 0)
        ;
    while (j->err_fd >= 0 && !j->truncated &&
           pump_output(a, j->err_fd, MSG_STREAM_STDERR) > 0)
        ;
    close_fd(&j->out_fd);
    close_fd(&j->err_fd);
    close_fd(&j->in_fd);

    struct msg_exit e = {.phase = j->phase};
    e.wall_ms = now_ms() - j->start_ms;
    struct step_usage u = {0};
    if (cg)
        step_cgroup_usage(cg, &u);
    e.cpu_ms = u.have_cpu ? u.cpu_ms
                          : (uint64_t)j->ru.ru_utime.tv_sec * 1000 +
                                (uint64_t)j->ru.ru_utime.tv_usec / 1000 +
                                (uint64_t)j->ru.ru_stime.tv_sec * 1000 +
                                (uint64_t)j->ru.ru_stime.tv_usec / 1000;
    e.peak_mem = u.have_peak ? u.peak_mem : (uint64_t)j->ru.ru_maxrss * 1024;
    if (WIFEXITED(j->wstatus)) {
        e.exited = true;
        e.code = (uint32_t)WEXITSTATUS(j->wstatus);
    } else if (WIFSIGNALED(j->wstatus)) {
        e.signaled = true;
        e.signal = (uint32_t)WTERMSIG(j->wstatus);
        if (e.signal == SIGXCPU)
            j->timed_out = true;
    }
    if (j->timed_out)
        e.status |= MSG_EXIT_TIMED_OUT;
    if (j->truncated)
        e.status |= MSG_EXIT_OUTPUT_TRUNCATED;
    if (u.oom_killed)
        e.status |= MSG_EXIT_OOM_KILLED;
    if (cg)
        step_cgroup_remove(cg);
    j->pid = 0;

    bool ok = e.exited && e.code == 0 && !e.status;
    bool more = j->phase == MSG_PHASE_BUILD && ok;
    if (!more)
        e.status |= MSG_EXIT_FINAL;
    queue_scratch(a, msg_build_exit(&a->scratch, j->id, &e));
    if (!more) {
        end_job(a);
        return;
    }
    int r = start_step(a, MSG_PHASE_RUN);
    if (r < 0) {
        send_error(a, j->id, MSG_ERR_INTERNAL, "starting the run step: %s",
                   strerror(-r));
        end_job(a);
    }
}

/* Collects exited children; the step leader's status is kept. */
static void reap(struct agent *a)
{
    struct signalfd_siginfo si;
    while (read(a->sigfd, &si, sizeof(si)) == sizeof(si))
        ;
    for (;;) {
        int st;
        struct rusage ru;
        pid_t p = wait4(-1, &st, WNOHANG, &ru);
        if (p <= 0)
            return;
        if (a->job.active && p == a->job.pid && !a->job.reaped) {
            a->job.reaped = true;
            a->job.wstatus = st;
            a->job.ru = ru;
        }
    }
}

static void kill_job(struct agent *a)
{
    struct job *j = &a->job;
    if (j->active && j->pid > 0) {
        step_kill(j->pid, j->cgroup[0] ? j->cgroup : NULL);
        if (!j->reaped)
            waitpid(j->pid, NULL, 0);
        step_reap_group(j->pid, j->cgroup[0] ? j->cgroup : NULL, 2000);
        if (j->cgroup[0])
            step_cgroup_remove(j->cgroup);
    }
    end_job(a);
}

/* ---- requests ----------------------------------------------------------- */

static void handle_run(struct agent *a, const struct msg_view *v)
{
    struct job *j = &a->job;
    int r;

    if (j->active) {
        send_error(a, v->id, MSG_ERR_BUSY, "RUN %u is still running", j->id);
        return;
    }
    job_clear(j);
    j->id = v->id;
    j->payload = malloc(v->len ? v->len : 1);
    if (!j->payload) {
        send_error(a, v->id, MSG_ERR_INTERNAL, "out of memory");
        return;
    }
    memcpy(j->payload, v->payload, v->len);
    struct msg_view copy = *v;
    copy.payload = j->payload;
    if (msg_decode_run(&copy, &j->run) < 0) {
        send_error(a, v->id, MSG_ERR_BAD_REQUEST, "malformed RUN payload");
        goto drop;
    }
    if (name_files(a, j) < 0)
        goto drop;
    if (!(j->run.flags & MSG_RUN_REUSE_WORKDIR) || !a->workdir[0]) {
        r = make_workdir(a);
        if (r < 0) {
            send_error(a, v->id, MSG_ERR_INTERNAL, "work dir in %s: %s",
                       a->cfg.work_root, strerror(-r));
            goto drop;
        }
    }
    if (resolve(a, j) != 0)
        goto drop;
    for (size_t i = 0; i < j->run.nfiles; i++) {
        r = write_file(a, &j->run.files[i]);
        if (r < 0) {
            send_error(a, v->id, MSG_ERR_INTERNAL, "writing file %zu: %s", i,
                       strerror(-r));
            goto drop;
        }
    }
    msg_buf_append(&j->stdin_pending, j->run.stdin_data.p,
                   j->run.stdin_data.len);
    j->stdin_eof = !(j->run.flags & MSG_RUN_STDIN_OPEN);
    j->active = true;
    r = start_step(a, j->has_build ? MSG_PHASE_BUILD : MSG_PHASE_RUN);
    if (r < 0) {
        send_error(a, v->id, MSG_ERR_INTERNAL, "starting the step: %s",
                   strerror(-r));
        goto drop;
    }
    return;
drop:
    end_job(a);
}

static void handle_stdin(struct agent *a, const struct msg_view *v)
{
    struct job *j = &a->job;
    struct msg_stdin s;

    if (msg_decode_stdin(v, &s) < 0) {
        send_error(a, v->id, MSG_ERR_BAD_REQUEST, "malformed STDIN payload");
        return;
    }
    if (!j->active || j->id != v->id) {
        send_error(a, v->id, MSG_ERR_NO_RUN, "no active RUN %u", v->id);
        return;
    }
    if (j->stdin_eof)
        return; /* after EOF, or the program closed its stdin */
    if (j->stdin_pending.len + s.data.len > AGENT_MAX_STDIN_PENDING) {
        send_error(a, v->id, MSG_ERR_BAD_REQUEST,
                   "stdin backlog over %u bytes; data dropped",
                   AGENT_MAX_STDIN_PENDING);
        return;
    }
    msg_buf_append(&j->stdin_pending, s.data.p, s.data.len);
    if (j->stdin_pending.err) {
        send_error(a, v->id, MSG_ERR_INTERNAL, "out of memory for stdin");
        msg_buf_reset(&j->stdin_pending);
    }
    if (s.eof)
        j->stdin_eof = true;
}

static void on_msg(void *opaque, const struct msg_view *v)
{
    struct agent *a = opaque;

    switch (v->type) {
    case MSG_RUN:
        handle_run(a, v);
        break;
    case MSG_STDIN:
        handle_stdin(a, v);
        break;
    case MSG_SHUTDOWN:
        a->shutdown = true;
        break;
    case MSG_ANNOUNCE:
        /* Whatever runs meanwhile goes on: HELLO says who we are. */
        send_hello(a, v->id);
        break;
    case MSG_ERROR:
        break; /* never answer an ERROR: no ping-pong */
    default:
        send_error(a, v->id, MSG_ERR_UNKNOWN_TYPE,
                   "message type %u not handled by the agent", v->type);
    }
}

static void on_drop(void *opaque, int err)
{
    struct agent *a = opaque;
    send_error(a, 0, MSG_ERR_BAD_FRAME, "dropped a frame: %s (%llu so far)",
               strerror(-err),
               (unsigned long long)msg_reader_dropped(&a->reader));
}

/* ---- life cycle --------------------------------------------------------- */

struct agent *agent_new(const struct agent_config *cfg)
{
    struct agent *a = calloc(1, sizeof(*a));
    char err[300];
    sigset_t set;

    if (!a) {
        logf_("out of memory");
        return NULL;
    }
    a->cfg = *cfg;
    a->sigfd = -1;
    job_clear(&a->job);
    msg_buf_init(&a->out);
    msg_buf_init(&a->scratch);

    int r = langconf_load(cfg->lang_conf, &a->lang, err, sizeof(err));
    if (r < 0 && r != -ENOENT)
        logf_("%s (running without a language config)", err);

    /* SIGCHLD through a signalfd so reaping is one more event; SIGPIPE off
     * so a closed channel or stdin pipe is an error return. */
    sigemptyset(&set);
    sigaddset(&set, SIGCHLD);
    sigprocmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
    a->sigfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
    if (a->sigfd < 0) {
        logf_("signalfd: %s", strerror(errno));
        goto fail;
    }
    /* Orphans of a step come back to us, so a group can be reaped whole. */
    prctl(PR_SET_CHILD_SUBREAPER, 1);
    if (set_nonblock(cfg->channel_fd) < 0) {
        logf_("channel fd %d: %s", cfg->channel_fd, strerror(errno));
        goto fail;
    }
    if (msg_reader_init(&a->reader, on_msg, on_drop, a) < 0) {
        logf_("out of memory");
        goto fail;
    }

    send_hello(a, 0);
    if (a->fatal)
        goto fail;
    return a;
fail:
    agent_free(a);
    return NULL;
}

int agent_run(struct agent *a)
{
    struct job *j = &a->job;

    while (!a->shutdown && !a->channel_closed && !a->fatal) {
        struct pollfd p[5];
        int n = 0, ich = -1, isig, iout = -1, ierr = -1, iin = -1;
        int timeout = -1;

        ich = n;
        p[n++] = (struct pollfd){a->cfg.channel_fd,
                                 POLLIN | (a->out.len ? POLLOUT : 0), 0};
        isig = n;
        p[n++] = (struct pollfd){a->sigfd, POLLIN, 0};
        if (j->active && j->pid > 0) {
            bool room = a->out.len < OUT_HIGH_WATER;
            if (j->out_fd >= 0 && room) {
                iout = n;
                p[n++] = (struct pollfd){j->out_fd, POLLIN, 0};
            }
            if (j->err_fd >= 0 && room) {
                ierr = n;
                p[n++] = (struct pollfd){j->err_fd, POLLIN, 0};
            }
            if (j->in_fd >= 0 && j->stdin_pending.len) {
                iin = n;
                p[n++] = (struct pollfd){j->in_fd, POLLOUT, 0};
            }
            if (!j->timed_out) {
                uint64_t now = now_ms();
                timeout = now >= j->deadline_ms
                              ? 0
                              : (int)(j->deadline_ms - now);
            }
        }

        int r = poll(p, (nfds_t)n, timeout);
        if (r < 0 && errno != EINTR) {
            logf_("poll: %s", strerror(errno));
            return -errno;
        }
        if (r < 0)
            continue;

        if (j->active && j->pid > 0 && !j->timed_out &&
            now_ms() >= j->deadline_ms) {
            j->timed_out = true;
            step_kill(j->pid, j->cgroup[0] ? j->cgroup : NULL);
        }
        if (p[isig].revents)
            reap(a);
        if (iout >= 0 && p[iout].revents &&
            pump_output(a, j->out_fd, MSG_STREAM_STDOUT) == 0)
            close_fd(&j->out_fd);
        if (ierr >= 0 && p[ierr].revents &&
            pump_output(a, j->err_fd, MSG_STREAM_STDERR) == 0)
            close_fd(&j->err_fd);
        if (iin >= 0 && p[iin].revents)
            pump_stdin(a);
        if (p[ich].revents & (POLLIN | POLLHUP | POLLERR)) {
            ssize_t got = read(a->cfg.channel_fd, a->readbuf,
                               sizeof(a->readbuf));
            if (got > 0)
                msg_reader_feed(&a->reader, a->readbuf, (size_t)got);
            else if (got == 0 || (errno != EAGAIN && errno != EINTR))
                a->channel_closed = true;
        }
        /* New stdin may have arrived, or EOF with nothing pending. */
        if (j->active && j->pid > 0)
            pump_stdin(a);
        if (j->active && j->pid > 0 && j->reaped)
            finish_step(a);
        flush_out(a);
    }
    if (a->job.active)
        kill_job(a);
    if (!a->channel_closed)
        flush_out_blocking(a, 2000);
    if (a->fatal)
        return a->fatal;
    return a->shutdown ? AGENT_END_SHUTDOWN : AGENT_END_CHANNEL_CLOSED;
}

void agent_report_fatal(struct agent *a, const char *message)
{
    send_error(a, 0, MSG_ERR_INTERNAL, "agent failed: %s", message);
    flush_out_blocking(a, 1000);
}

void agent_free(struct agent *a)
{
    if (!a)
        return;
    if (a->job.active)
        kill_job(a);
    job_clear(&a->job);
    remove_workdir(a);
    msg_reader_free(&a->reader);
    msg_buf_free(&a->out);
    msg_buf_free(&a->scratch);
    langconf_free(&a->lang);
    if (a->sigfd >= 0)
        close(a->sigfd);
    free(a);
}
