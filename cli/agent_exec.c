#include "cli/agent_exec.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "cli/write.h"
#include "core/clock.h"
#include "protocol/version.h"
#include "session/event.h"
#include "vmm/agent_channel.h"

struct agent_exec {
    struct vm *vm;
    struct agent_exec_config cfg;
    struct agent_channel *ch; /* the machine's */
    struct session session;
    int runs;    /* RUNs completed (repeat benchmark) */
    bool paused; /* pause_at_ready: paused at the agent's HELLO */
    uint64_t sent_ns;
    double *rtt_ms;
    bool done;             /* outcome known */
    int status;            /* valid when done */
    char why[256];         /* failure reported by agent_exec_status */
    struct msg_buf events; /* --json output being written */
    /* RUNVM_EXEC_STATS: where a run's time goes (docs/cli.md). */
    bool stats;
    uint64_t t_attach_ns, t_run_ns, t_first_output_ns, t_exit_ns;
    uint64_t output_bytes, output_msgs;
};

static void flush_events(struct agent_exec *x)
{
    cli_write_all(STDOUT_FILENO, x->events.data, x->events.len);
    msg_buf_reset(&x->events);
}

static void finish(struct agent_exec *x, int status, const char *why)
{
    if (x->done)
        return;
    x->done = true;
    x->status = status;
    if (why)
        snprintf(x->why, sizeof(x->why), "%s", why);
    if (x->cfg.json) {
        if (why)
            event_failure(&x->events, status, why);
        flush_events(x);
    }
    session_power_off(&x->session, (unsigned int)x->cfg.shutdown_grace_ms);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Repeat benchmark: records this round trip; 1 if another RUN went out. */
static int repeat_run(struct agent_exec *x)
{
    int n = x->cfg.repeat;
    if (n <= 1 || !x->rtt_ms)
        return 0;
    x->rtt_ms[x->runs++] = (double)(clock_now_ns() - x->sent_ns) / 1e6;
    if (x->runs < n) {
        x->sent_ns = clock_now_ns();
        if (session_run(&x->session, x->cfg.req) == 0)
            return 1;
    }
    qsort(x->rtt_ms, (size_t)x->runs, sizeof(double), cmp_double);
    fprintf(stderr,
            "runvm: exec-bench: %d RUNs, round trip median %.3f ms, "
            "min %.3f ms, max %.3f ms\n",
            x->runs, x->rtt_ms[x->runs / 2], x->rtt_ms[0],
            x->rtt_ms[x->runs - 1]);
    return 0;
}

/* Sends the one RUN. */
static void send_run(struct agent_exec *x)
{
    x->sent_ns = clock_now_ns();
    x->t_run_ns = x->sent_ns;
    int ret = session_run(&x->session, x->cfg.req);
    if (ret < 0) {
        char why[200];
        snprintf(why, sizeof(why),
                 "could not send the request to the "
                 "agent: %s",
                 ret == -EMSGSIZE ? "request over 8 MiB" : strerror(-ret));
        finish(x, RUNVM_EXIT_INFRA, why);
    }
}

static void on_ready(void *opaque, const struct agent_hello *h)
{
    struct agent_exec *x = opaque;
    /* Once: the session reports the first HELLO only. */
    if (x->cfg.pause_at_ready) {
        if (version_cmp(h->agent_version, MSG_AGENT_REFRESH_VERSION) < 0) {
            char why[200];
            snprintf(why, sizeof(why),
                     "the image's agent (%.20s) is older than %s and would "
                     "not reseed a restored VM's RNG: rebuild the image "
                     "to snapshot it",
                     h->agent_version, MSG_AGENT_REFRESH_VERSION);
            /* A run to do goes on without the snapshot. */
            if (!x->cfg.req) {
                finish(x, RUNVM_EXIT_INFRA, why);
                return;
            }
            fprintf(stderr, "runvm: %s; no snapshot this time\n", why);
            send_run(x);
            return;
        }
        x->paused = true;
        vm_pause(x->vm);
        return;
    }
    send_run(x);
}

bool agent_exec_paused(const struct agent_exec *x)
{
    return x->paused && !x->done;
}

int agent_exec_go_on(struct agent_exec *x, char *err, size_t err_len)
{
    if (!agent_exec_paused(x) || !x->cfg.req) {
        snprintf(err, err_len, "nothing to run after the snapshot");
        return -EINVAL;
    }
    x->paused = false;
    /* The memory file holds this VM's RNG state: from here it has its
     * own. */
    int ret = session_refresh(&x->session);
    if (ret < 0) {
        snprintf(err, err_len, "reseeding the guest: %s", strerror(-ret));
        return ret;
    }
    send_run(x);
    return 0;
}

static void on_output(void *opaque, const struct msg_output *o)
{
    struct agent_exec *x = opaque;
    if (!x->output_msgs++)
        x->t_first_output_ns = clock_now_ns();
    x->output_bytes += o->data.len;
    if (x->cfg.json) {
        event_output(&x->events, o);
        flush_events(x);
        return;
    }
    /* Build output (compiler messages) goes to stderr whatever its
     * stream, so that stdout carries only the program's own output. */
    int fd = o->phase == MSG_PHASE_RUN && o->stream == MSG_STREAM_STDOUT
                 ? STDOUT_FILENO
                 : STDERR_FILENO;
    cli_write_all(fd, o->data.p, o->data.len);
}

/* Says on stderr why a final EXIT is not a plain exit. */
static void explain_exit(const struct msg_exit *e)
{
    if (e->status & MSG_EXIT_TIMED_OUT)
        fprintf(stderr,
                "runvm: %s step stopped at its time limit "
                "(%llu ms)\n",
                e->phase == MSG_PHASE_BUILD ? "build" : "run",
                (unsigned long long)e->wall_ms);
    else if (e->phase == MSG_PHASE_BUILD)
        fprintf(stderr, "runvm: build failed (%s %u)\n",
                e->signaled ? "signal" : "exit status",
                e->signaled ? e->signal : e->code);
    if (e->status & MSG_EXIT_OUTPUT_TRUNCATED)
        fprintf(stderr, "runvm: output cap reached; the step was "
                        "stopped\n");
    if (e->status & MSG_EXIT_OOM_KILLED)
        fprintf(stderr, "runvm: memory limit reached; the step was "
                        "killed\n");
}

static void on_exit_msg(void *opaque, const struct msg_exit *e)
{
    struct agent_exec *x = opaque;
    if (x->cfg.json) {
        event_exit(&x->events, e);
        flush_events(x);
    } else if ((e->status & MSG_EXIT_FINAL) &&
               (event_exit_status(e) != 0 || x->cfg.repeat <= 1)) {
        explain_exit(e);
    }
}

static void on_done(void *opaque, int status, const char *why)
{
    struct agent_exec *x = opaque;
    x->t_exit_ns = clock_now_ns();
    if (!why && status == 0 && repeat_run(x))
        return;
    finish(x, status, why);
}

static void on_closed(void *opaque, int err)
{
    struct agent_exec *x = opaque;
    if (x->done) {
        /* The agent closes the channel as it powers off. */
        return;
    }
    char why[128];
    snprintf(why, sizeof(why),
             "agent channel closed before the run "
             "ended: %s",
             strerror(-err));
    finish(x, RUNVM_EXIT_INFRA, why);
}

static void on_power_off_overdue(void *opaque)
{
    struct agent_exec *x = opaque;
    vm_request_stop(x->vm, VM_STOP_GUEST,
                    "agent finished; guest did not power off in time", 0);
}

static const struct session_sink exec_sink = {
    .ready = on_ready,
    .output = on_output,
    .exit = on_exit_msg,
    .done = on_done,
    .closed = on_closed,
    .power_off_overdue = on_power_off_overdue,
};

int agent_exec_attach(struct agent_exec **out, struct vm *vm,
                      struct agent_channel *ch,
                      const struct agent_exec_config *cfg, char *err,
                      size_t err_len)
{
    struct agent_exec *x = calloc(1, sizeof(*x));
    *out = NULL;
    if (!x) {
        snprintf(err, err_len, "agent: out of memory");
        return -ENOMEM;
    }
    x->vm = vm;
    x->cfg = *cfg;
    x->stats = getenv("RUNVM_EXEC_STATS") != NULL;
    x->t_attach_ns = clock_now_ns();
    if (cfg->repeat > 1)
        x->rtt_ms = calloc((size_t)cfg->repeat, sizeof(double));
    msg_buf_init(&x->events);
    x->ch = ch;
    int ret = session_init(&x->session, vm->loop, ch->host_fd, &cfg->expect,
                           &exec_sink, x);
    if (ret == 0 && cfg->resumed)
        ret = session_resume(&x->session);
    if (ret < 0) {
        snprintf(err, err_len, "agent channel: %s", strerror(-ret));
        goto fail;
    }
    *out = x;
    return 0;
fail:
    agent_exec_free(x);
    return ret;
}

static double ms_between(uint64_t from_ns, uint64_t to_ns)
{
    return from_ns && to_ns >= from_ns ? (double)(to_ns - from_ns) / 1e6 : 0.0;
}

/* One line on stderr: the run's phases and what the channel carried. The
 * transfer (first OUTPUT to final EXIT) is what the channel's throughput
 * is judged on; the boot before it is not the channel's. */
static void print_stats(const struct agent_exec *x)
{
    double xfer_ms = ms_between(x->t_first_output_ns, x->t_exit_ns);
    double mib = (double)x->output_bytes / (1024.0 * 1024.0);
    const struct virtio_dev *vdev = &x->ch->con.vdev;
    fprintf(stderr,
            "runvm: exec-stats: start to RUN %.1f ms, attach to RUN %.1f "
            "ms, RUN to first "
            "OUTPUT %.1f ms, first OUTPUT to EXIT %.1f ms; output %llu bytes "
            "in %llu messages = %.2f MB/s; channel %llu bytes in, %llu "
            "notifications, %llu interrupts (%.1f / %.1f per MiB)\n",
            ms_between(x->vm->t_start, x->t_run_ns),
            ms_between(x->t_attach_ns, x->t_run_ns),
            ms_between(x->t_run_ns, x->t_first_output_ns), xfer_ms,
            (unsigned long long)x->output_bytes,
            (unsigned long long)x->output_msgs,
            xfer_ms > 0 ? (double)x->output_bytes / xfer_ms / 1000.0 : 0.0,
            (unsigned long long)x->session.client.bytes_in,
            (unsigned long long)vdev->notifies,
            (unsigned long long)vdev->interrupts,
            mib > 0 ? (double)vdev->notifies / mib : 0.0,
            mib > 0 ? (double)vdev->interrupts / mib : 0.0);
}

int agent_exec_status(struct agent_exec *x, enum vm_stop stop, int signo)
{
    if (x->stats)
        print_stats(x);
    if (x->done) {
        if (x->why[0] && !x->cfg.json)
            fprintf(stderr, "runvm: %s\n", x->why);
        return x->status;
    }
    /* No outcome from the agent: the VM stopped first. A timeout or a
     * signal keeps the status a bare boot has (124, 128+N). */
    const char *why;
    char buf[200];
    int status = event_stop_status(stop, signo, false);
    switch (stop) {
    case VM_STOP_TIMEOUT: why = "--timeout passed before the run ended"; break;
    case VM_STOP_SIGNAL: why = "interrupted"; break;
    case VM_STOP_PAUSE:
        if (x->paused)
            return 0; /* at the agent's HELLO, for a snapshot */
        why = "the VM paused";
        break;
    case VM_STOP_GUEST:
        /* Say how it stopped (reset, panic, triple fault, ...). */
        snprintf(buf, sizeof(buf), "%s (%s)",
                 x->session.state != SESSION_BOOTING
                     ? "the guest stopped before the run ended"
                     : "the guest stopped before its agent said HELLO; "
                       "is /init runvm-agent? try --console",
                 x->vm->stop_why ? x->vm->stop_why : "no reason given");
        why = buf;
        break;
    default: why = "the VM failed"; break;
    }
    if (x->cfg.json) {
        event_failure(&x->events, status, why);
        flush_events(x);
    } else if (stop != VM_STOP_TIMEOUT) {
        fprintf(stderr, "runvm: %s\n", why);
    }
    return status;
}

void agent_exec_free(struct agent_exec *x)
{
    if (!x)
        return;
    session_free(&x->session);
    msg_buf_free(&x->events);
    free(x->rtt_ms);
    free(x);
}
