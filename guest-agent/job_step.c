/* Running a job's steps: starting each under its limits (step.c does the
 * process itself), pumping its output and stdin, and finishing, reaping or
 * killing it. */
#include "guest-agent/agent_int.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include "guest-agent/step.h"

/* The build step's timer slack: its sleeps and timeouts may end up to one
 * tick (HZ=250) late, so they expire with the tick instead of each
 * programming the timer, and every programming is a VM exit (the TSC
 * deadline MSR) and an interrupt. The toolchain's output does not depend
 * on when its timers fire; Go's runtime sleeps in 20 us steps while busy.
 * Measured nested, `go build` of hello world six times on one VM: KVM
 * exits 43 404 -> 14 448, median round trip 2.11 -> 1.30 s. The program
 * itself (RUN) keeps the kernel's 50 us. */
#define BUILD_TIMER_SLACK_NS 4000000ULL

/* The shortest wait between two looks at a step's CPU time. The looks
 * come when the step could have spent what it had left with every CPU
 * busy, so they thicken only near the limit; this caps how far past it a
 * step gets (ncpus times as much) and what the checks cost. */
#define CPU_CHECK_MIN_MS 10

/* When a step that has used used_us of limit_us could first reach it. */
static uint64_t next_cpu_check(const struct agent *a, uint64_t now,
                               uint64_t used_us, uint64_t limit_us)
{
    uint64_t left_ms = (limit_us - used_us) / 1000 / (uint64_t)a->ncpus;
    return now + (left_ms > CPU_CHECK_MIN_MS ? left_ms : CPU_CHECK_MIN_MS);
}

int job_step_start(struct agent *a, uint8_t phase)
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
    if ((r = agent_set_nonblock(out[0])) < 0 ||
        (r = agent_set_nonblock(err[0])) < 0 ||
        (in[1] >= 0 && (r = agent_set_nonblock(in[1])) < 0))
        goto fail;

    const struct msg_limits *limits = job_limits(j, phase);
    struct step_limits lim = {
        .cpu_ms = limits->cpu_ms,
        .mem_bytes = limits->mem_bytes,
        .max_procs = limits->max_procs,
    };
    j->cgroup[0] = '\0';
    if (a->cfg.cgroup_root) {
        char name[32];
        snprintf(name, sizeof(name), "step%u-%u", a->seq, phase);
        int cr =
            step_cgroup_create(a->cfg.cgroup_root, name, &lim, j->cgroup,
                               sizeof(j->cgroup), &j->cgroup_limits_memory);
        if (cr < 0) {
            agent_log("cgroup %s/%s: %s; using rlimits only",
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
        .cgroup_limits_memory = j->cgroup_limits_memory,
        .limits = lim,
        .timer_slack_ns = phase == MSG_PHASE_BUILD ? BUILD_TIMER_SLACK_NS : 0,
    };
    j->start_ms = agent_now_ms();
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
    /* The cgroup counts the CPU time of every process of the step; without
     * one only RLIMIT_CPU (per process) is left. */
    uint64_t cpu_us;
    j->cpu_check_ms = 0;
    if (j->cgroup[0] && limits->cpu_ms &&
        !__builtin_mul_overflow(limits->cpu_ms, 1000, &cpu_us))
        j->cpu_check_ms = next_cpu_check(a, j->start_ms, 0, cpu_us);
    j->reaped = false;
    j->output = 0;
    j->truncated = j->timed_out = false;
    return 0;

fail_errno:
    r = -errno;
fail:
    for (int i = 0; i < 2; i++) {
        agent_close_fd(&out[i]);
        agent_close_fd(&err[i]);
        agent_close_fd(&in[i]);
    }
    return r;
}

/* Sends what a pipe holds as OUTPUT; past the output cap, kills the step
 * and discards. Returns 1 after reading, 0 at EOF, -1 when the pipe is
 * empty for now. */
int job_step_pump_output(struct agent *a, int fd, uint8_t stream)
{
    struct job *j = &a->job;
    ssize_t n = read(fd, a->readbuf, sizeof(a->readbuf));
    if (n < 0)
        return (errno == EAGAIN || errno == EINTR) ? -1 : 0;
    if (n == 0)
        return 0;
    if (j->truncated)
        return 1;
    uint64_t room = job_limits(j, j->phase)->max_output - j->output;
    size_t send = (uint64_t)n > room ? (size_t)room : (size_t)n;
    if (send)
        agent_queue_scratch(a, msg_build_output(&a->scratch, j->id, j->phase,
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

void job_step_pump_stdin(struct agent *a)
{
    struct job *j = &a->job;
    while (j->in_fd >= 0 && j->stdin_pending.len) {
        ssize_t n =
            write(j->in_fd, j->stdin_pending.data, j->stdin_pending.len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN)
            return;
        if (n < 0) {
            /* EPIPE: the program closed its stdin; the rest is dropped. */
            msg_buf_reset(&j->stdin_pending);
            agent_close_fd(&j->in_fd);
            return;
        }
        msg_buf_consume(&j->stdin_pending, (size_t)n);
    }
    if (j->in_fd >= 0 && !j->stdin_pending.len && j->stdin_eof)
        agent_close_fd(&j->in_fd);
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

void job_step_finish(struct agent *a)
{
    struct job *j = &a->job;
    const char *cg = j->cgroup[0] ? j->cgroup : NULL;

    step_reap_group(j->pid, cg, 2000);
    if (a->cfg.kill_uid && a->cfg.switch_user)
        kill_uid(a);
    /* All writers are gone: drain what the pipes still hold. The output cap
     * bounds this even if a writer escaped the group. */
    while (j->out_fd >= 0 && !j->truncated &&
           job_step_pump_output(a, j->out_fd, MSG_STREAM_STDOUT) > 0)
        ;
    while (j->err_fd >= 0 && !j->truncated &&
           job_step_pump_output(a, j->err_fd, MSG_STREAM_STDERR) > 0)
        ;
    agent_close_fd(&j->out_fd);
    agent_close_fd(&j->err_fd);
    agent_close_fd(&j->in_fd);

    struct msg_exit e = {.phase = j->phase};
    e.wall_ms = agent_now_ms() - j->start_ms;
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
    agent_queue_scratch(a, msg_build_exit(&a->scratch, j->id, &e));
    if (!more) {
        job_end(a);
        return;
    }
    int r = job_step_start(a, MSG_PHASE_RUN);
    if (r < 0) {
        agent_send_error(a, j->id, MSG_ERR_INTERNAL,
                         "starting the run step: %s", strerror(-r));
        job_end(a);
    }
}

/* Collects exited children; the step leader's status is kept. */
void job_step_reap(struct agent *a)
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

int job_step_poll_timeout(struct agent *a)
{
    const struct job *j = &a->job;
    if (!j->active || j->pid <= 0 || j->timed_out)
        return -1;
    uint64_t next = j->deadline_ms;
    if (j->cpu_check_ms && j->cpu_check_ms < next)
        next = j->cpu_check_ms;
    uint64_t now = agent_now_ms();
    if (now >= next)
        return 0;
    return next - now > INT_MAX ? INT_MAX : (int)(next - now);
}

void job_step_check_time(struct agent *a)
{
    struct job *j = &a->job;
    if (!j->active || j->pid <= 0 || j->timed_out)
        return;
    uint64_t now = agent_now_ms();
    bool over = now >= j->deadline_ms;
    if (!over && j->cpu_check_ms && now >= j->cpu_check_ms) {
        uint64_t used_us, limit_us = job_limits(j, j->phase)->cpu_ms * 1000;
        if (step_cgroup_cpu_usec(j->cgroup, &used_us) < 0)
            j->cpu_check_ms = 0; /* no cpu.stat: RLIMIT_CPU alone */
        else if (used_us >= limit_us)
            over = true;
        else
            j->cpu_check_ms = next_cpu_check(a, now, used_us, limit_us);
    }
    if (over) {
        /* Reported as a time limit either way (MSG_EXIT_TIMED_OUT), as
         * RLIMIT_CPU's SIGXCPU is. */
        j->timed_out = true;
        step_kill(j->pid, j->cgroup[0] ? j->cgroup : NULL);
    }
}

void job_step_kill(struct agent *a)
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
    /* job_end forgets the step's pipes: close them first. */
    agent_close_fd(&j->out_fd);
    agent_close_fd(&j->err_fd);
    agent_close_fd(&j->in_fd);
    job_end(a);
}
