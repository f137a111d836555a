#include "api/serve.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/timerfd.h>
#include <sys/random.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "api/collect.h"
#include "api/httpd.h"
#include "api/judge.h"
#include "api/metrics.h"
#include "api/piston.h"
#include "api/request.h"
#include "core/clock.h"
#include "core/evloop.h"
#include "protocol/msg.h"
#include "session/event.h"
#include "vmm/cgroup.h"

#define RELAY_MAX     (1u << 20) /* events held for a slow reader */
#define KILL_GRACE_MS 5000       /* SIGTERM to SIGKILL */
#define EOF_GRACE_MS  1000       /* a stream's end to its runvm's */
/* A reader that takes nothing for so long while events wait is cut off. */
#define STALL_MS       30000
#define START_FAILS    3     /* children dead before serving */
#define BROKEN_MS      30000 /* a language's pause after that */
#define TOKEN_LEN      32    /* a kept submission's id: 128 random bits, hex */
#define CHILD_API_FD   3
#define MAX_CHILD_ARGS 24
#define EXIT_PREFIX    "{\"type\":\"exit\""

struct serve;
struct sub;

enum vm_state {
    VM_FREE,
    VM_IDLE,     /* started (perhaps still restoring), no submission */
    VM_BUSY,     /* its submission's */
    VM_KEPT,     /* its submission's between runs ("keep"), until deadline */
    VM_STOPPING, /* signalled; its slot frees when it is reaped */
};

struct serve_vm {
    struct serve *sv;
    enum vm_state state;
    size_t lang;
    uint64_t id;
    pid_t pid;
    int pidfd;
    char sock[PATH_MAX];  /* its API socket, in the daemon's directory */
    uint64_t deadline_ns; /* busy: the host watchdog; stopping: SIGKILL */
    bool killed;
    struct sub *sub;
    char token[TOKEN_LEN + 1]; /* its submission's, once one asked "keep" */
};

enum sub_kind {
    SUB_START,  /* POST /start: the events relayed as they come */
    SUB_PISTON, /* POST /api/v2/execute: one answer at the end */
    SUB_JUDGE,  /* POST /judge: a run per case, one answer at the end */
};

/* How a run ended, for GET /metrics. */
enum outcome { OUT_OK, OUT_EXIT, OUT_SIGNAL, OUT_TIMEOUT, OUT_BUILD, OUT_VM };
static const char *const outcome_names[] = {
    "ok", "exit_nonzero", "signal", "time_limit", "build_failed", "vm_error"};
static const char *const verdict_names[] = {
    "accepted",     "wrong_answer", "runtime_error",  "output_limit",
    "memory_limit", "time_limit",   "internal_error", "compile_error"};

/* From the result's phases, never its status alone: a program's exit(124)
 * or (125) shares runvm's statuses. */
static enum outcome outcome_of(const struct collect *r)
{
    return collect_lost(r)                          ? OUT_VM
           : collect_build_failed(r)                ? OUT_BUILD
           : r->run.timed_out                       ? OUT_TIMEOUT
           : r->run.signaled                        ? OUT_SIGNAL
           : r->run.exited && r->run.exit_code != 0 ? OUT_EXIT
                                                    : OUT_OK;
}

/* The same from the text of a final exit event line. */
static enum outcome outcome_of_line(const char *line)
{
    return strstr(line, "\"error\":")            ? OUT_VM
           : strstr(line, "\"phase\":\"build\"") ? OUT_BUILD
           : strstr(line, "\"timed_out\":true")  ? OUT_TIMEOUT
           : !strstr(line, "\"signal\":null")    ? OUT_SIGNAL
           : !strstr(line, "\"exit_code\":0,")   ? OUT_EXIT
                                                 : OUT_OK;
}

static double secs(uint64_t from_ns, uint64_t to_ns)
{
    return to_ns > from_ns ? (double)(to_ns - from_ns) / 1e9 : 0.0;
}

/* One submission: its request, waiting for a VM, then each run of it
 * forwarded to its VM's API and the run's events relayed (SUB_START: to an
 * output socket of the daemon's, or the answer itself over TCP) or
 * gathered (the others). */
struct sub {
    struct serve *sv;
    struct sub *next, **pprev; /* on sv->subs */
    enum sub_kind kind;
    size_t lang;
    bool queued;
    struct serve_vm *vm;  /* NULL before it has one and once it is gone */
    struct httpd_conn *c; /* the client, until answered */
    uint64_t watchdog_ms; /* a run's limits plus SERVE_RUN_SLACK_MS */
    bool keep;            /* SUB_START: the VM stays for the next run */
    char submission[65];  /* the kept one it continues ("submission"), or "" */
    bool continues;       /* it does: its VM was kept for it */
    struct msg_buf body;  /* the next run's /start body */
    char content_type[64];
    /* The run in flight. */
    int fwd_fd;         /* to the VM's API socket */
    struct msg_buf fwd; /* the request, then the VM's answer */
    int in_fd;          /* the VM's output socket */
    bool in_eof, done;  /* its stream ended; its last event is in */
    bool over;          /* run_over was called for it */
    bool answered;      /* SUB_START: the client has its 200 */
    char why[160];      /* why the VM was stopped under the run */
    /* SUB_START. */
    bool stream;           /* over TCP: the answer is the stream */
    int listen_fd, out_fd; /* our output socket, and its one reader */
    char path[PATH_MAX];   /* ours, while it listens */
    struct msg_buf relay;  /* read from in_fd, not yet sent on */
    char line[512];        /* the start of the line being relayed */
    size_t line_len;
    bool last_was_exit;   /* the last whole line was the exit event */
    int last_outcome;     /* how it says the run ended (enum outcome) */
    bool in_paused;       /* in_fd is out of the loop: RELAY_MAX waits */
    uint64_t progress_ns; /* the reader last took bytes (or was answered) */
    uint64_t deadline_ns; /* the reader must connect by then */
    uint64_t t_admit_ns, t_assign_ns; /* for GET /metrics */
    /* SUB_PISTON and SUB_JUDGE: each run's result. */
    struct collect *runs;
    size_t nruns, k; /* the run in flight */
    struct piston_request piston;
    struct judge_request judge;
};

struct serve_lang_state {
    unsigned int fails;    /* children in a row dead before serving */
    uint64_t broken_until; /* no children started before then */
    char why[200];         /* why the last one died */
    uint64_t runs;
};

struct serve {
    const struct serve_config *cfg;
    struct evloop loop;
    struct httpd http;
    char rundir[PATH_MAX];
    bool own_sock;
    int signal_fd, tick_fd;
    bool draining;
    int hard_signal; /* a second signal: stop now */
    uint64_t next_id;
    uint64_t next_run; /* names output sockets: a kept VM has many runs */
    struct serve_vm vms[SERVE_MAX_VMS];
    struct sub **queue; /* cfg->queue slots, FIFO from queue[0] */
    unsigned int queued;
    struct serve_lang_state lang[SERVE_MAX_LANGS];
    struct sub *subs; /* every submission alive */
    /* GET /metrics: seconds waiting for a VM, for the VM to take the
     * first run (its restore, when it was not warm yet), request to
     * answer; builds and runs as the agent timed them (judge, Piston). */
    struct histogram h_queue, h_ready, h_total, h_build, h_run;
    uint64_t outcomes[6]; /* enum outcome */
    uint64_t verdicts[8]; /* judge_verdicts' order */
    uint64_t routes[3];   /* enum sub_kind */
    uint64_t submissions, refused_busy, vm_failures, watchdog_kills, cancelled,
        stalled_readers;
};

/* How long a kept submission's VM waits for its next run. */
static uint64_t keep_ms(const struct serve *sv)
{
    return sv->cfg->keep_ms ? sv->cfg->keep_ms : SERVE_KEEP_MS;
}

static void schedule(struct serve *sv);
static void sub_free(struct sub *sub);
static void run_over(struct sub *sub, const char *why);
static void relay_flush(struct sub *sub);
static void sub_fail(struct sub *sub, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* ---- children ------------------------------------------------------------ */

static unsigned int count_vms(const struct serve *sv, size_t lang,
                              enum vm_state st)
{
    unsigned int n = 0;
    for (unsigned int i = 0; i < sv->cfg->max_vms; i++)
        if (sv->vms[i].state == st &&
            (lang == SIZE_MAX || sv->vms[i].lang == lang))
            n++;
    return n;
}

/* The parent of pid, from /proc (its name may hold spaces and parens:
 * the fields start after the last ')'); -1 if gone. */
static pid_t parent_of(pid_t pid)
{
    char path[64], buf[512];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "re");
    if (!f)
        return -1;
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    char *p = strrchr(buf, ')');
    int ppid;
    return p && sscanf(p + 1, " %*c %d", &ppid) == 1 ? ppid : -1;
}

/* Whether pid is vm's VMM: the child serve started, or under --cgroup
 * that child's own child (it is the supervisor). */
static bool vm_process(const struct serve *sv, const struct serve_vm *vm,
                       pid_t pid)
{
    return pid == vm->pid || (sv->cfg->cgroup && parent_of(pid) == vm->pid);
}

/* --cgroup: what a VM whose supervisor is gone left there (nothing when it
 * ended itself); a cgroup still busy is removed by a later runvm. */
static void vm_cgroup_release(const struct serve *sv, pid_t pid)
{
    char path[4096];
    if (sv->cfg->cgroup &&
        cgroup_path(sv->cfg->cgroup, pid, path, sizeof(path)) == 0)
        (void)cgroup_release(path);
}

static void vm_stop(struct serve_vm *vm, int sig)
{
    if (vm->state == VM_FREE)
        return;
    if (vm->state != VM_STOPPING) {
        vm->state = VM_STOPPING;
        vm->deadline_ns = clock_now_ns() + KILL_GRACE_MS * 1000000ull;
    }
    if (sig == SIGKILL)
        vm->killed = true;
    kill(vm->pid, sig);
}

/* vm is its submission's until its next run, or keep_ms. */
static void keep_vm(struct serve_vm *vm)
{
    vm->state = VM_KEPT;
    vm->deadline_ns = clock_now_ns() + keep_ms(vm->sv) * 1000000ull;
}

/* A child exited: its slot is free; a submission it held goes on with
 * what its stream still holds. */
static void vm_exited(void *opaque, uint32_t events)
{
    struct serve_vm *vm = opaque;
    struct serve *sv = vm->sv;
    (void)events;
    int st = 0;
    if (waitpid(vm->pid, &st, WNOHANG) == 0)
        return;
    struct serve_lang_state *ls = &sv->lang[vm->lang];
    bool expected = vm->state == VM_STOPPING;
    if (!expected) {
        if (WIFEXITED(st))
            snprintf(ls->why, sizeof(ls->why),
                     "its runvm exited with status %d", WEXITSTATUS(st));
        else
            snprintf(ls->why, sizeof(ls->why),
                     "its runvm was killed by signal %d", WTERMSIG(st));
        fprintf(stderr, "runvm serve: VM %" PRIu64 " (%s): %s\n", vm->id,
                catalog_name(sv->cfg->langs[vm->lang], (char[64]){0}, 64),
                ls->why);
        sv->vm_failures++;
        if (vm->state == VM_IDLE && ++ls->fails >= START_FAILS)
            ls->broken_until = clock_now_ns() + BROKEN_MS * 1000000ull;
    }
    if (vm->sub) {
        struct sub *sub = vm->sub;
        sub->vm = NULL;
        vm->sub = NULL;
        if (!expected && !sub->why[0])
            snprintf(sub->why, sizeof(sub->why), "the VM failed: %s", ls->why);
        /* A run still being asked for, or whose stream ended without its
         * exit event: over now. One still streaming ends when its stream
         * does. */
        if (!sub->over && (sub->fwd_fd >= 0 || sub->in_eof))
            run_over(sub, sub->why[0] ? sub->why : "the VM stopped");
    }
    evloop_del(&sv->loop, vm->pidfd);
    close(vm->pidfd);
    unlink(vm->sock);
    vm_cgroup_release(sv, vm->pid);
    vm->state = VM_FREE;
    vm->sub = NULL;
    schedule(sv);
}

/* A child that could not even start counts as one that died before
 * serving: enough of them pause the language, so waiting requests are
 * answered (503) rather than left waiting for a VM that never comes. */
static struct serve_vm *spawn_failed(struct serve *sv, size_t lang)
{
    struct serve_lang_state *ls = &sv->lang[lang];
    fprintf(stderr, "runvm serve: a VM for %s: %s\n",
            catalog_name(sv->cfg->langs[lang], (char[64]){0}, 64), ls->why);
    if (++ls->fails >= START_FAILS)
        ls->broken_until = clock_now_ns() + BROKEN_MS * 1000000ull;
    return NULL;
}

static int pidfd_of(pid_t pid)
{
    return (int)syscall(SYS_pidfd_open, pid, 0);
}

/* Starts a child for lang in a free slot: its API socket is made here and
 * handed over listening, so a request can be sent to it at once (the
 * child answers once its VM is ready). NULL when it could not start. */
static struct serve_vm *vm_spawn(struct serve *sv, size_t lang)
{
    struct serve_vm *vm = NULL;
    for (unsigned int i = 0; i < sv->cfg->max_vms && !vm; i++)
        if (sv->vms[i].state == VM_FREE)
            vm = &sv->vms[i];
    if (!vm)
        return NULL;
    struct serve_lang_state *ls = &sv->lang[lang];
    *vm = (struct serve_vm){
        .sv = sv, .lang = lang, .id = ++sv->next_id, .pidfd = -1};
    snprintf(vm->sock, sizeof(vm->sock), "%.3000s/vm-%" PRIu64 ".sock",
             sv->rundir, vm->id);
    char err[256], name[64], fd_arg[16];
    int lfd = httpd_listen_unix(vm->sock, err, sizeof(err));
    if (lfd < 0) {
        snprintf(ls->why, sizeof(ls->why), "API socket: %.180s", err);
        return spawn_failed(sv, lang);
    }
    catalog_name(sv->cfg->langs[lang], name, sizeof(name));
    snprintf(fd_arg, sizeof(fd_arg), "%d", CHILD_API_FD);
    /* execv's argv is char *const[]; these strings are never written. */
    char *argv[MAX_CHILD_ARGS + 8];
    size_t n = 0;
    const char *fixed[] = {sv->cfg->exe, "--lang", name, "--api-fd", fd_arg};
    for (size_t i = 0; i < 5; i++)
        argv[n++] = (char *)(uintptr_t)fixed[i];
    for (size_t i = 0;
         sv->cfg->child_args && sv->cfg->child_args[i] && i < MAX_CHILD_ARGS;
         i++)
        argv[n++] = (char *)(uintptr_t)sv->cfg->child_args[i];
    argv[n] = NULL;
    pid_t pid = fork();
    if (pid == 0) {
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        int null = open("/dev/null", O_RDWR | O_CLOEXEC);
        if (null >= 0)
            dup2(null, STDIN_FILENO);
        if (lfd == CHILD_API_FD ? fcntl(lfd, F_SETFD, 0) < 0
                                : dup2(lfd, CHILD_API_FD) < 0)
            _exit(127);
        execv(sv->cfg->exe, argv);
        fprintf(stderr, "runvm serve: exec %s: %s\n", sv->cfg->exe,
                strerror(errno));
        _exit(127);
    }
    int saved = errno;
    close(lfd);
    if (pid < 0) {
        snprintf(ls->why, sizeof(ls->why), "fork: %s", strerror(saved));
        unlink(vm->sock);
        return spawn_failed(sv, lang);
    }
    vm->pid = pid;
    vm->pidfd = pidfd_of(pid);
    if (vm->pidfd < 0 ||
        evloop_add(&sv->loop, vm->pidfd, EPOLLIN, vm_exited, vm) < 0) {
        snprintf(ls->why, sizeof(ls->why), "pidfd: %s", strerror(errno));
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        if (vm->pidfd >= 0)
            close(vm->pidfd);
        unlink(vm->sock);
        return spawn_failed(sv, lang);
    }
    vm->state = VM_IDLE;
    return vm;
}

/* ---- a submission ---------------------------------------------------------
 */

static void sub_free(struct sub *sub)
{
    struct serve *sv = sub->sv;
    if (sub->t_assign_ns)
        histogram_observe(&sv->h_total, secs(sub->t_admit_ns, clock_now_ns()));
    if (sub->next)
        sub->next->pprev = sub->pprev;
    *sub->pprev = sub->next;
    if (sub->queued)
        for (unsigned int i = 0; i < sv->queued; i++)
            if (sv->queue[i] == sub) {
                memmove(&sv->queue[i], &sv->queue[i + 1],
                        (sv->queued - i - 1) * sizeof(sv->queue[0]));
                sv->queued--;
                break;
            }
    int *fds[] = {&sub->fwd_fd, &sub->in_fd, &sub->listen_fd, &sub->out_fd};
    for (size_t i = 0; i < 4; i++)
        if (*fds[i] >= 0) {
            evloop_del(&sv->loop, *fds[i]);
            close(*fds[i]);
            *fds[i] = -1;
        }
    if (sub->path[0])
        unlink(sub->path);
    if (sub->c) {
        /* A streamed answer cut short ends without its last chunk: the
         * client sees it was. */
        struct httpd_conn *c = sub->c;
        sub->c = NULL;
        c->data = NULL;
        if (c->streaming)
            httpd_close(c);
    }
    if (sub->vm) {
        sub->vm->sub = NULL;
        vm_stop(sub->vm, SIGTERM); /* one submission per VM */
    }
    for (size_t i = 0; i < sub->nruns; i++)
        collect_free(&sub->runs[i]);
    free(sub->runs);
    piston_request_free(&sub->piston);
    judge_request_free(&sub->judge);
    msg_buf_free(&sub->body);
    msg_buf_free(&sub->fwd);
    msg_buf_free(&sub->relay);
    free(sub);
}

/* Answers the request still waiting on sub with an error, and ends it.
 * The connection is let go of first: answering may close it. */
static void sub_fail(struct sub *sub, int status, const char *fmt, ...)
{
    struct httpd_conn *c = sub->c;
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    sub->c = NULL;
    if (c) {
        c->data = NULL;
        if (sub->kind == SUB_PISTON) {
            /* Piston's errors: {"message": ...}. */
            struct msg_buf b;
            msg_buf_init(&b);
            msg_buf_append(&b, "{\"message\":", 11);
            event_json_string(&b, msg, strlen(msg));
            msg_buf_append(&b, "}", 2);
            httpd_reply(c, status, (const char *)b.data);
            msg_buf_free(&b);
        } else {
            httpd_reply_error(c, status, "%s", msg);
        }
    }
    sub_free(sub);
}

/* Answers the client with b (a NUL-terminated JSON document) and ends
 * sub; 500 if b could not be made. */
static void sub_answer(struct sub *sub, int status, const struct msg_buf *b)
{
    if (b->err || !b->data) {
        sub_fail(sub, 500, "out of memory for the answer");
        return;
    }
    struct httpd_conn *c = sub->c;
    sub->c = NULL;
    if (c) {
        c->data = NULL;
        httpd_reply(c, status, (const char *)b->data);
    }
    sub_free(sub);
}

/* The run is over for its reader: it went away (cancelled) or took the
 * last event. */
static void sub_end(struct sub *sub, bool cancelled)
{
    if (cancelled)
        sub->sv->cancelled++;
    sub_free(sub);
}

static void sub_send(struct sub *sub);

/* A PISTON or JUDGE run's result is in: the next run, or the answer. */
static void collected(struct sub *sub)
{
    struct collect *r = &sub->runs[sub->k];
    if (sub->kind == SUB_PISTON) {
        const struct catalog_entry *e = sub->sv->cfg->langs[sub->lang];
        if (collect_lost(r)) {
            sub_fail(sub, 500, "%s",
                     r->error[0] ? r->error : "the run ended without a word");
            return;
        }
        struct msg_buf b;
        msg_buf_init(&b);
        piston_answer(r, e->lang, e->version, sub->sv->cfg->compiled[sub->lang],
                      &b);
        sub_answer(sub, 200, &b);
        msg_buf_free(&b);
        return;
    }
    bool build_failed = sub->k == 0 && collect_build_failed(r);
    bool lost = collect_lost(r);
    if (!build_failed && !lost && sub->vm && sub->k + 1 < sub->nruns) {
        sub->k++;
        msg_buf_reset(&sub->body);
        judge_start_body(&sub->judge, sub->k, &sub->body);
        sub_send(sub);
        return;
    }
    const struct collect **runs = calloc(sub->nruns, sizeof(*runs));
    if (!runs) {
        sub_fail(sub, 500, "out of memory");
        return;
    }
    for (size_t i = 0; i <= sub->k; i++)
        runs[i] = &sub->runs[i];
    for (size_t i = 0; i < sub->nruns; i++) {
        const char *v = judge_verdict(&sub->judge, i, runs[i], &sub->runs[0]);
        for (size_t n = 0; n < 8; n++)
            if (!strcmp(v, verdict_names[n]))
                sub->sv->verdicts[n]++;
    }
    struct msg_buf b;
    msg_buf_init(&b);
    judge_answer(&sub->judge, &sub->runs[0], runs, &b);
    free(runs);
    sub_answer(sub, 200, &b);
    msg_buf_free(&b);
}

/* The run's stream is over: with its last event (why NULL), or without
 * (why: how its VM ended). */
static void run_over(struct sub *sub, const char *why)
{
    struct serve *sv = sub->sv;
    if (sub->in_fd >= 0) {
        evloop_del(&sv->loop, sub->in_fd);
        close(sub->in_fd);
        sub->in_fd = -1;
    }
    if (sub->fwd_fd >= 0) {
        evloop_del(&sv->loop, sub->fwd_fd);
        close(sub->fwd_fd);
        sub->fwd_fd = -1;
    }
    if (sub->over)
        return;
    sub->over = true;
    sub->in_eof = true;
    if (sub->vm) /* what is left is relaying: no run to watch */
        sub->vm->deadline_ns = UINT64_MAX;
    const char *msg = sub->why[0] ? sub->why
                      : why       ? why
                                  : "the VM stopped during the run";
    if (sub->kind != SUB_START) {
        struct collect *r = &sub->runs[sub->k];
        if (why || !r->done)
            collect_fail(r, RUNVM_EXIT_INFRA, msg);
        sv->outcomes[outcome_of(r)]++;
        if (r->build.ended)
            histogram_observe(&sv->h_build, (double)r->build.wall_ms / 1e3);
        if (r->run.ended)
            histogram_observe(&sv->h_run, (double)r->run.wall_ms / 1e3);
        collected(sub);
        return;
    }
    sv->outcomes[why ? OUT_VM : sub->last_outcome]++;
    if (!sub->answered) {
        /* Not answered yet: the VM went before its run started. */
        sub_fail(sub, 503, "%s", msg);
        return;
    }
    sub->done = true;
    if (why) {
        if (sub->line_len) /* the stream ended mid-line */
            msg_buf_append(&sub->relay, "\n", 1);
        event_failure(&sub->relay, RUNVM_EXIT_INFRA, msg);
    }
    /* Everything is read: the VM has served, whatever the reader takes
     * how long; kept for the submission's next run if it asked. */
    if (sub->vm) {
        struct serve_vm *vm = sub->vm;
        vm->sub = NULL;
        sub->vm = NULL;
        /* Not one being stopped (the watchdog), nor one whose runvm
         * said the VM failed: it is going. */
        if (sub->keep && !why && !sub->why[0] && vm->state == VM_BUSY &&
            sub->last_outcome != OUT_VM && !sv->draining)
            keep_vm(vm);
        else
            vm_stop(vm, SIGTERM);
    }
    relay_flush(sub);
}

/* SUB_START's events not yet sent on. */
static size_t pending(const struct sub *sub)
{
    return sub->relay.len + (sub->stream && sub->c ? sub->c->out.len : 0);
}

/* What the VM's stream holds: SUB_START's up to RELAY_MAX waiting, the
 * others' into the run's result. */
static void in_ready(void *opaque, uint32_t events)
{
    struct sub *sub = opaque;
    (void)events;
    bool ended = false;
    while (sub->kind != SUB_START || pending(sub) < RELAY_MAX) {
        char buf[65536];
        ssize_t n = read(sub->in_fd, buf, sizeof(buf));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN)
            break;
        if (n <= 0) {
            ended = true;
            break;
        }
        if (sub->kind != SUB_START) {
            (void)collect_feed(&sub->runs[sub->k], buf, (size_t)n);
            continue;
        }
        /* Follows line starts, to know whether the stream ended with its
         * exit event. */
        for (ssize_t i = 0; i < n; i++) {
            if (buf[i] == '\n') {
                sub->last_was_exit =
                    sub->line_len >= sizeof(EXIT_PREFIX) - 1 &&
                    !memcmp(sub->line, EXIT_PREFIX, sizeof(EXIT_PREFIX) - 1);
                if (sub->last_was_exit) {
                    sub->line[sub->line_len < sizeof(sub->line)
                                  ? sub->line_len
                                  : sizeof(sub->line) - 1] = '\0';
                    sub->last_outcome = outcome_of_line(sub->line);
                }
                sub->line_len = 0;
            } else if (sub->line_len < sizeof(sub->line)) {
                sub->line[sub->line_len++] = buf[i];
            }
        }
        msg_buf_append(&sub->relay, buf, (size_t)n);
    }
    /* The exit event is the stream's last: the run is over at once (a
     * kept VM is ready for the next run before its reader has this
     * one's end, so a client that sends it on reading that end does not
     * find the VM still busy). */
    bool whole = sub->kind == SUB_START ? sub->last_was_exit && !sub->line_len
                                        : sub->runs[sub->k].done;
    if (whole) {
        run_over(sub, NULL);
        return;
    }
    if (!ended) {
        if (sub->kind == SUB_START && pending(sub) >= RELAY_MAX) {
            /* Out of the loop until the reader takes some: epoll would
             * report the stream's end (EPOLLHUP) whatever it is asked. */
            evloop_del(&sub->sv->loop, sub->in_fd);
            sub->in_paused = true;
        }
        relay_flush(sub);
        return;
    }
    /* Ended without its exit event: its runvm is dying, or is stopped
     * shortly (tick); run_over says why once it is reaped. */
    evloop_del(&sub->sv->loop, sub->in_fd);
    close(sub->in_fd);
    sub->in_fd = -1;
    sub->in_eof = true;
    if (sub->vm && sub->vm->state == VM_BUSY)
        sub->vm->deadline_ns = clock_now_ns() + EOF_GRACE_MS * 1000000ull;
    else if (!sub->vm)
        run_over(sub, "the VM stopped during the run");
}

static void out_ready(void *opaque, uint32_t events)
{
    struct sub *sub = opaque;
    if (events & (EPOLLERR | EPOLLHUP)) {
        sub_end(sub, !sub->done); /* the reader went away */
        return;
    }
    relay_flush(sub);
}

/* Sends SUB_START's relayed events on, to the output socket's reader or
 * as the chunks of a streamed answer; ends the submission once the last
 * is out. */
static void relay_flush(struct sub *sub)
{
    if (sub->kind != SUB_START)
        return;
    size_t left = sub->relay.len;
    if (sub->stream && sub->c) {
        /* Queued on the connection, sent by the loop (drained says when):
         * nothing here closes it under us. */
        left = httpd_stream_write(sub->c, sub->relay.data, sub->relay.len);
        msg_buf_reset(&sub->relay);
        if (sub->done && left == 0) {
            struct httpd_conn *c = sub->c;
            sub->c = NULL;
            c->data = NULL;
            httpd_stream_end(c);
            sub_end(sub, false);
            return;
        }
    } else if (sub->out_fd >= 0) {
        while (sub->relay.len > 0) {
            ssize_t n = send(sub->out_fd, sub->relay.data, sub->relay.len,
                             MSG_NOSIGNAL | MSG_DONTWAIT);
            if (n < 0 && errno == EINTR)
                continue;
            if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
                break;
            if (n <= 0) {
                sub_end(sub, !sub->done);
                return;
            }
            sub->progress_ns = clock_now_ns();
            msg_buf_consume(&sub->relay, (size_t)n);
        }
        left = sub->relay.len;
        if (left == 0 && sub->done) {
            sub_end(sub, false);
            return;
        }
        /* A reader that closes is EPOLLHUP, always reported; one that
         * only shuts its writing side still reads. */
        (void)evloop_mod(&sub->sv->loop, sub->out_fd, left ? EPOLLOUT : 0);
    } else {
        return; /* no reader yet */
    }
    if (sub->in_fd >= 0 && sub->in_paused && left < RELAY_MAX) {
        if (evloop_add(&sub->sv->loop, sub->in_fd, EPOLLIN, in_ready, sub) <
            0) {
            sub_end(sub, true);
            return;
        }
        sub->in_paused = false;
    }
}

/* The reader connects to the daemon's output socket: once. */
static void out_accept(void *opaque, uint32_t events)
{
    struct sub *sub = opaque;
    (void)events;
    int fd = accept4(sub->listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (fd < 0)
        return;
    evloop_del(&sub->sv->loop, sub->listen_fd);
    close(sub->listen_fd);
    sub->listen_fd = -1;
    unlink(sub->path);
    sub->path[0] = '\0';
    sub->out_fd = fd;
    sub->deadline_ns = 0;
    if (evloop_add(&sub->sv->loop, fd, 0, out_ready, sub) < 0) {
        sub_end(sub, true);
        return;
    }
    relay_flush(sub);
}

static int connect_unix(const char *path)
{
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof(addr.sun_path))
        return -ENAMETOOLONG;
    memcpy(addr.sun_path, path, strlen(path));
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    if (connect(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
        int ret = -errno;
        close(fd);
        return ret;
    }
    return fd;
}

/* SUB_START over the Unix socket: the client gets an output socket of the
 * daemon's; over TCP: the answer is the stream. false once answered with
 * an error. */
static bool start_answer(struct sub *sub, uint64_t id)
{
    struct serve *sv = sub->sv;
    struct httpd_conn *c = sub->c;
    sub->answered = true;
    sub->progress_ns = clock_now_ns();
    const char *token = sub->keep && sub->vm ? sub->vm->token : "";
    if (sub->stream) {
        char extra[80] = "";
        if (token[0])
            snprintf(extra, sizeof(extra), "Runvm-Submission: %s\r\n", token);
        httpd_stream_begin(c, 200, "application/x-ndjson", extra);
        return true;
    }
    char err[256];
    snprintf(sub->path, sizeof(sub->path), "%.3000s/run-%" PRIu64 ".sock",
             sv->rundir, ++sv->next_run);
    sub->listen_fd = httpd_listen_unix(sub->path, err, sizeof(err));
    if (sub->listen_fd < 0) {
        sub->path[0] = '\0';
        sub_fail(sub, 500, "output socket: %s", err);
        return false;
    }
    if (evloop_add(&sv->loop, sub->listen_fd, EPOLLIN, out_accept, sub) < 0) {
        sub_fail(sub, 503, "too many open connections");
        return false;
    }
    /* The reader has the idle time to connect, as to send a request. */
    sub->deadline_ns =
        clock_now_ns() + (uint64_t)sv->http.cfg.idle_ms * 1000000;
    struct msg_buf b;
    msg_buf_init(&b);
    char head[64];
    snprintf(head, sizeof(head), "{\"id\":%" PRIu64 ",\"output_socket\":", id);
    msg_buf_append(&b, head, strlen(head));
    event_json_string(&b, sub->path, strlen(sub->path));
    if (token[0]) {
        msg_buf_append(&b, ",\"submission\":", 14);
        event_json_string(&b, token, strlen(token));
    }
    msg_buf_append(&b, "}", 2);
    sub->c = NULL;
    c->data = NULL;
    httpd_reply(c, 200, (const char *)b.data);
    msg_buf_free(&b);
    return true;
}

/* The VM answered the forwarded POST /start (the whole answer: it closes
 * after one). 200: the daemon reads the run's output socket; anything
 * else is the client's answer, or the case's failure. */
static void forwarded(struct sub *sub)
{
    struct serve *sv = sub->sv;
    msg_buf_append(&sub->fwd, "", 1);
    const char *resp = (const char *)sub->fwd.data;
    int status = 0;
    const char *body = strstr(resp, "\r\n\r\n");
    if (sscanf(resp, "HTTP/1.%*d %d", &status) != 1 || !body) {
        run_over(sub, "the VM's runvm answered no HTTP");
        return;
    }
    body += 4;
    json_t *j = json_loads(body, 0, NULL);
    if (status != 200) {
        const char *e = json_string_value(json_object_get(j, "error"));
        char msg[512];
        snprintf(msg, sizeof(msg), "%s", e ? e : "the VM refused the run");
        json_decref(j);
        if (sub->kind == SUB_JUDGE && sub->k > 0) {
            run_over(sub, msg);
            return;
        }
        if (sub->continues && sub->vm && sub->vm->state == VM_BUSY) {
            /* A refused request is no run: the submission keeps its VM. */
            struct serve_vm *vm = sub->vm;
            vm->sub = NULL;
            sub->vm = NULL;
            keep_vm(vm);
        }
        sub_fail(sub, status, "%s", msg); /* as API mode words it */
        return;
    }
    const char *path = json_string_value(json_object_get(j, "output_socket"));
    int fd = path ? connect_unix(path) : -EPROTO;
    json_decref(j);
    /* Its own output socket, not another VM's nor anyone else's: the VM's
     * runvm answered, and a guest may have taken it over. */
    struct ucred cred;
    socklen_t clen = sizeof(cred);
    if (fd >= 0 && (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &clen) < 0 ||
                    !sub->vm || !vm_process(sub->sv, sub->vm, cred.pid))) {
        close(fd);
        fd = -EPERM;
    }
    if (fd < 0) {
        char msg[160];
        snprintf(msg, sizeof(msg), "the VM's output socket: %s", strerror(-fd));
        run_over(sub, msg);
        return;
    }
    sub->in_fd = fd;
    (void)fcntl(fd, F_SETFL, O_NONBLOCK);
    sv->lang[sub->lang].fails = 0; /* its language's VMs do start */
    if (sub->k == 0)
        histogram_observe(&sv->h_ready, secs(sub->t_assign_ns, clock_now_ns()));
    if (evloop_add(&sv->loop, fd, EPOLLIN, in_ready, sub) < 0) {
        close(fd);
        sub->in_fd = -1;
        run_over(sub, "too many open connections");
        return;
    }
    if (sub->kind == SUB_START)
        (void)start_answer(sub, sub->vm->id);
}

static void fwd_ready(void *opaque, uint32_t events)
{
    struct sub *sub = opaque;
    if (events & EPOLLOUT) {
        while (sub->fwd.len > 0) {
            ssize_t n = send(sub->fwd_fd, sub->fwd.data, sub->fwd.len,
                             MSG_NOSIGNAL | MSG_DONTWAIT);
            if (n < 0 && errno == EINTR)
                continue;
            if (n < 0 && errno == EAGAIN)
                return;
            if (n < 0) {
                char msg[160];
                snprintf(msg, sizeof(msg), "the VM's API: %s", strerror(errno));
                run_over(sub, msg);
                return;
            }
            msg_buf_consume(&sub->fwd, (size_t)n);
        }
        (void)evloop_mod(&sub->sv->loop, sub->fwd_fd, EPOLLIN);
        return;
    }
    char buf[16384];
    ssize_t n = read(sub->fwd_fd, buf, sizeof(buf));
    if (n < 0 && (errno == EINTR || errno == EAGAIN))
        return;
    if (n > 0 && sub->fwd.len + (size_t)n <= 65536) {
        msg_buf_append(&sub->fwd, buf, (size_t)n);
        return;
    }
    evloop_del(&sub->sv->loop, sub->fwd_fd);
    close(sub->fwd_fd);
    sub->fwd_fd = -1;
    if (n < 0 || sub->fwd.len == 0) {
        run_over(sub, "the VM's runvm closed its API");
        return;
    }
    forwarded(sub);
}

/* Sends the run in sub->body to sub's VM: a POST /start on its API. */
static void sub_send(struct sub *sub)
{
    struct serve_vm *vm = sub->vm;
    vm->deadline_ns = clock_now_ns() + sub->watchdog_ms * 1000000;
    sub->in_eof = false;
    sub->done = false;
    sub->over = false;
    /* A judge answer holds every case: 1 MiB of each stream a case; a
     * Piston answer one run's, with both streams interleaved too. */
    if (sub->kind == SUB_JUDGE)
        collect_init(&sub->runs[sub->k], RELAY_MAX, false);
    else if (sub->kind == SUB_PISTON)
        collect_init(&sub->runs[sub->k], RELAY_MAX * 16, true);
    char head[256];
    int n = snprintf(head, sizeof(head),
                     "POST /start HTTP/1.1\r\nHost: runvm\r\nContent-Type: "
                     "%s\r\nContent-Length: %zu\r\n\r\n",
                     sub->content_type, sub->body.len);
    msg_buf_reset(&sub->fwd);
    msg_buf_append(&sub->fwd, head, (size_t)n);
    msg_buf_append(&sub->fwd, sub->body.data, sub->body.len);
    int fd = connect_unix(vm->sock);
    if (fd < 0) {
        char msg[160];
        snprintf(msg, sizeof(msg), "the VM's API: %s", strerror(-fd));
        run_over(sub, msg);
        return;
    }
    (void)fcntl(fd, F_SETFL, O_NONBLOCK);
    sub->fwd_fd = fd;
    if (evloop_add(&sub->sv->loop, fd, EPOLLOUT, fwd_ready, sub) < 0) {
        close(fd);
        sub->fwd_fd = -1;
        run_over(sub, "too many open connections");
    }
}

/* A kept submission's id: 128 bits from the kernel's random pool, as
 * hex; "" if it has none to give (the run is then not kept). */
static void make_token(char out[TOKEN_LEN + 1])
{
    unsigned char r[TOKEN_LEN / 2];
    out[0] = '\0';
    if (getrandom(r, sizeof(r), GRND_NONBLOCK) != (ssize_t)sizeof(r))
        return;
    for (size_t i = 0; i < sizeof(r); i++)
        snprintf(out + 2 * i, 3, "%02x", r[i]);
}

/* sub's run on vm: its first, or the next of a kept submission. */
static void assign(struct serve *sv, struct serve_vm *vm, struct sub *sub)
{
    bool next_run = vm->state == VM_KEPT;
    sub->vm = vm;
    sub->queued = false;
    vm->state = VM_BUSY;
    vm->sub = sub;
    sv->lang[vm->lang].runs++;
    sub->t_assign_ns = clock_now_ns();
    if (!next_run) {
        sv->submissions++;
        histogram_observe(&sv->h_queue,
                          secs(sub->t_admit_ns, sub->t_assign_ns));
    }
    if (sub->keep && !vm->token[0])
        make_token(vm->token);
    sub->keep = sub->keep && vm->token[0];
    sub_send(sub);
}

/* The VM of the kept submission token names (kept, or running its next
 * run), or NULL; compared in constant time. */
static struct serve_vm *kept_vm(struct serve *sv, const char *token)
{
    if (strlen(token) != TOKEN_LEN)
        return NULL;
    for (unsigned int i = 0; i < sv->cfg->max_vms; i++) {
        struct serve_vm *vm = &sv->vms[i];
        if ((vm->state != VM_KEPT && vm->state != VM_BUSY) || !vm->token[0])
            continue;
        unsigned char diff = 0;
        for (size_t k = 0; k < TOKEN_LEN; k++)
            diff |= (unsigned char)(vm->token[k] ^ token[k]);
        if (!diff)
            return vm;
    }
    return NULL;
}

/* ---- the queue and the pool ---------------------------------------------- */

static bool lang_broken(struct serve *sv, size_t lang)
{
    return sv->lang[lang].broken_until > clock_now_ns();
}

/* An idle VM for lang (the oldest, the likeliest to be ready), one started
 * for it, or NULL. */
static struct serve_vm *vm_for(struct serve *sv, size_t lang)
{
    struct serve_vm *best = NULL;
    for (unsigned int i = 0; i < sv->cfg->max_vms; i++) {
        struct serve_vm *vm = &sv->vms[i];
        if (vm->state == VM_IDLE && vm->lang == lang &&
            (!best || vm->id < best->id))
            best = vm;
    }
    if (best || lang_broken(sv, lang))
        return best;
    return vm_spawn(sv, lang);
}

/* Stops an idle VM of another language than lang, to make room. */
static bool evict_for(struct serve *sv, size_t lang)
{
    for (unsigned int i = 0; i < sv->cfg->max_vms; i++) {
        struct serve_vm *vm = &sv->vms[i];
        if (vm->state == VM_IDLE && vm->lang != lang) {
            vm_stop(vm, SIGTERM);
            return true;
        }
    }
    return false;
}

/* Stops the kept VM nearest the end of its wait, to make room: requests
 * waiting come before a submission's next run. */
static bool evict_kept(struct serve *sv)
{
    struct serve_vm *oldest = NULL;
    for (unsigned int i = 0; i < sv->cfg->max_vms; i++) {
        struct serve_vm *vm = &sv->vms[i];
        if (vm->state == VM_KEPT &&
            (!oldest || vm->deadline_ns < oldest->deadline_ns))
            oldest = vm;
    }
    if (oldest)
        vm_stop(oldest, SIGTERM);
    return oldest;
}

/* Gives waiting requests their VMs, then tops up each language's idle
 * VMs to cfg->warm; while draining, idle VMs are stopped instead. */
static void schedule(struct serve *sv)
{
    while (sv->queued > 0) {
        struct sub *sub = sv->queue[0];
        if (lang_broken(sv, sub->lang)) {
            sub_fail(sub, 503,
                     "this language's VMs fail to start (%s); see the "
                     "daemon's log",
                     sv->lang[sub->lang].why);
            continue;
        }
        struct serve_vm *vm = vm_for(sv, sub->lang);
        if (!vm) {
            /* Room comes when a VM ends; make some if none will. */
            if (count_vms(sv, SIZE_MAX, VM_STOPPING) == 0 &&
                !evict_for(sv, sub->lang))
                (void)evict_kept(sv);
            return;
        }
        memmove(&sv->queue[0], &sv->queue[1],
                (sv->queued - 1) * sizeof(sv->queue[0]));
        sv->queued--;
        assign(sv, vm, sub);
    }
    for (size_t l = 0; l < sv->cfg->nlangs; l++) {
        if (sv->draining) {
            for (unsigned int i = 0; i < sv->cfg->max_vms; i++)
                if (sv->vms[i].state == VM_IDLE || sv->vms[i].state == VM_KEPT)
                    vm_stop(&sv->vms[i], SIGTERM);
            break;
        }
        while (!lang_broken(sv, l) &&
               count_vms(sv, l, VM_IDLE) < sv->cfg->warm && vm_spawn(sv, l))
            ;
    }
}

/* ---- routes ----------------------------------------------------------- */

/* A submission for the request on c, held until answered. */
static struct sub *sub_new(struct serve *sv, struct httpd_conn *c,
                           enum sub_kind kind)
{
    struct sub *sub = calloc(1, sizeof(*sub));
    if (!sub) {
        httpd_reply_error(c, 500, "out of memory");
        return NULL;
    }
    *sub = (struct sub){.sv = sv,
                        .kind = kind,
                        .c = c,
                        .fwd_fd = -1,
                        .in_fd = -1,
                        .listen_fd = -1,
                        .out_fd = -1};
    snprintf(sub->content_type, sizeof(sub->content_type), "application/json");
    msg_buf_init(&sub->body);
    msg_buf_init(&sub->fwd);
    msg_buf_init(&sub->relay);
    sub->next = sv->subs;
    if (sv->subs)
        sv->subs->pprev = &sub->next;
    sub->pprev = &sv->subs;
    sv->subs = sub;
    c->data = sub;
    return sub;
}

/* The language spec names (NULL: none named) as an index into
 * cfg->langs into sub->lang; false with the answer given. */
static bool request_lang(struct sub *sub, const char *spec)
{
    const struct serve_config *cfg = sub->sv->cfg;
    char served[512] = "";
    size_t n = 0;
    for (size_t l = 0; l < cfg->nlangs && n < sizeof(served); l++) {
        char name[64];
        n += (size_t)snprintf(served + n, sizeof(served) - n, "%s%s",
                              l ? ", " : "",
                              catalog_name(cfg->langs[l], name, sizeof(name)));
    }
    if (!spec) {
        if (cfg->nlangs == 1) {
            sub->lang = 0;
            return true;
        }
        sub_fail(sub, 400,
                 "name the language: \"lang\" in a JSON body, or ?lang= "
                 "with a text one (serving %s)",
                 served);
        return false;
    }
    struct lang_spec ls;
    if (!lang_spec_parse(spec, strlen(spec), &ls)) {
        sub_fail(sub, 400,
                 "lang: not a language: NAME or NAME@VERSION (serving %s)",
                 served);
        return false;
    }
    char why[512];
    const struct catalog_entry *e =
        catalog_find(cfg->catalog, spec, why, sizeof(why));
    for (size_t l = 0; e && l < cfg->nlangs; l++)
        if (cfg->langs[l] == e) {
            sub->lang = l;
            return true;
        }
    sub_fail(sub, 400, "lang %s: %s (this daemon serves %s)", spec,
             e ? "not served here" : why, served);
    return false;
}

/* Checks sub->body as /start would take it, for the run's host-side
 * deadline (its limits plus SERVE_RUN_SLACK_MS) and an early 400; false
 * with the answer given. */
static bool body_ok(struct sub *sub)
{
    struct api_request r;
    const char *why = NULL;
    int status = api_request_parse(
        &r, sub->content_type, (const char *)sub->body.data, sub->body.len,
        sub->sv->cfg->default_run_ms, sub->sv->cfg->default_build_ms, &why);
    bool reuse = r.run.flags & MSG_RUN_REUSE_WORKDIR;
    sub->watchdog_ms =
        r.run.limits.wall_ms + r.run.build_limits.wall_ms + SERVE_RUN_SLACK_MS;
    sub->keep = r.keep;
    snprintf(sub->submission, sizeof(sub->submission), "%s",
             r.submission ? r.submission : "");
    bool has_submission = r.submission;
    api_request_free(&r);
    if (!status && reuse && !has_submission && sub->kind == SUB_START) {
        status = 400;
        why = "reuse: name the submission whose VM and directory to run in "
              "(\"submission\": the id a run with \"keep\": true "
              "answered), or send every file the run needs";
    }
    if (status) {
        sub_fail(sub, status, "%s", why);
        return false;
    }
    return true;
}

/* Takes sub on: to a VM, or to the queue; 429 past it, 503 while
 * draining or while its language's VMs fail. */
static void admit(struct sub *sub)
{
    struct serve *sv = sub->sv;
    if (sv->draining) {
        sub_fail(sub, 503, "the daemon is draining");
        return;
    }
    if (lang_broken(sv, sub->lang)) {
        sub_fail(sub, 503,
                 "this language's VMs fail to start (%s); see the daemon's "
                 "log",
                 sv->lang[sub->lang].why);
        return;
    }
    if (sv->queued == 0) {
        /* A VM there for it (or started now): no need to queue. */
        struct serve_vm *vm = vm_for(sv, sub->lang);
        if (vm) {
            httpd_hold(sub->c);
            sub->t_admit_ns = clock_now_ns();
            sv->routes[sub->kind]++;
            assign(sv, vm, sub);
            return;
        }
    }
    if (sv->queued >= sv->cfg->queue) {
        sv->refused_busy++;
        struct httpd_conn *c = sub->c;
        sub->c = NULL;
        c->data = NULL;
        httpd_reply_with(c, 429, "Retry-After: 1\r\n",
                         sub->kind == SUB_PISTON
                             ? "{\"message\":\"every VM is busy and the "
                               "queue is full; retry\"}"
                             : "{\"error\":\"every VM is busy and the queue "
                               "is full; retry\"}");
        sub_free(sub);
        return;
    }
    httpd_hold(sub->c);
    sub->t_admit_ns = clock_now_ns();
    sv->routes[sub->kind]++;
    sub->queued = true;
    sv->queue[sv->queued++] = sub;
    schedule(sv);
}

/* A run of a kept submission: on its VM, at once (it waits for no
 * other); its language is the submission's. */
static void next_run(struct sub *sub)
{
    struct serve *sv = sub->sv;
    struct serve_vm *vm = kept_vm(sv, sub->submission);
    if (sv->draining) {
        sub_fail(sub, 503, "the daemon is draining");
        return;
    }
    if (!vm) {
        sub_fail(sub, 404,
                 "submission %.64s: none kept here (it ended with a run "
                 "without \"keep\": true, waited more than %u s for its "
                 "next run, its VM failed, or it made room for waiting "
                 "requests)",
                 sub->submission, (unsigned int)(keep_ms(sv) / 1000));
        return;
    }
    if (vm->state != VM_KEPT) {
        sub_fail(sub, 409,
                 "a run of this submission is in progress; wait for its "
                 "exit event");
        return;
    }
    sub->lang = vm->lang;
    sub->continues = true;
    httpd_hold(sub->c);
    sub->t_admit_ns = clock_now_ns();
    assign(sv, vm, sub);
}

static void post_start(struct serve *sv, struct httpd_conn *c,
                       const struct http_request *req)
{
    struct sub *sub = sub_new(sv, c, SUB_START);
    if (!sub)
        return;
    sub->stream = c->tcp;
    if (req->content_type[0])
        snprintf(sub->content_type, sizeof(sub->content_type), "%s",
                 req->content_type);
    else
        snprintf(sub->content_type, sizeof(sub->content_type), "text/plain");
    msg_buf_append(&sub->body, req->body, req->content_length);
    if (!body_ok(sub))
        return;
    if (sub->submission[0]) {
        next_run(sub);
        return;
    }
    /* The language: "lang" in JSON, else ?lang=. */
    struct api_request r;
    const char *why;
    char spec[LANG_NAME_MAX + LANG_VERSION_MAX + 2] = "";
    if (api_request_parse(&r, req->content_type, req->body, req->content_length,
                          1, 1, &why) == 0 &&
        r.lang)
        snprintf(spec, sizeof(spec), "%.63s", r.lang);
    api_request_free(&r);
    if (!spec[0])
        (void)http_query_param(req, "lang", spec, sizeof(spec));
    if (request_lang(sub, spec[0] ? spec : NULL))
        admit(sub);
}

static void post_piston(struct serve *sv, struct httpd_conn *c,
                        const struct http_request *req)
{
    struct sub *sub = sub_new(sv, c, SUB_PISTON);
    if (!sub)
        return;
    const char *why;
    /* Whatever its Content-Type: Piston's clients send none. */
    if (piston_parse(&sub->piston, req->body, req->content_length, &why)) {
        sub_fail(sub, 400, "%s", why);
        return;
    }
    if (!request_lang(sub, sub->piston.spec))
        return;
    if (piston_start_body(&sub->piston, sv->cfg->run_argv[sub->lang],
                          &sub->body, &why)) {
        sub_fail(sub, 400, "%s", why);
        return;
    }
    sub->runs = calloc(1, sizeof(*sub->runs));
    if (!sub->runs) {
        sub_fail(sub, 500, "out of memory");
        return;
    }
    sub->nruns = 1;
    if (body_ok(sub))
        admit(sub);
}

static void post_judge(struct serve *sv, struct httpd_conn *c,
                       const struct http_request *req)
{
    struct sub *sub = sub_new(sv, c, SUB_JUDGE);
    if (!sub)
        return;
    const char *why;
    if (judge_parse(&sub->judge, req->body, req->content_length, &why)) {
        sub_fail(sub, 400, "%s", why);
        return;
    }
    if (!request_lang(sub, sub->judge.lang))
        return;
    sub->runs = calloc(sub->judge.ncases, sizeof(*sub->runs));
    if (!sub->runs) {
        sub_fail(sub, 500, "out of memory");
        return;
    }
    sub->nruns = sub->judge.ncases;
    /* Every case's run checked now, not a 400 after the build. */
    for (size_t k = sub->nruns; k-- > 0;) {
        msg_buf_reset(&sub->body);
        judge_start_body(&sub->judge, k, &sub->body);
        uint64_t ms = sub->watchdog_ms;
        if (!body_ok(sub))
            return;
        if (ms > sub->watchdog_ms)
            sub->watchdog_ms = ms; /* the longest case's, for every run */
    }
    admit(sub);
}

static void get_runtimes(struct serve *sv, struct httpd_conn *c)
{
    struct msg_buf b;
    msg_buf_init(&b);
    msg_buf_append(&b, "[", 1);
    for (size_t l = 0; l < sv->cfg->nlangs; l++) {
        const struct catalog_entry *e = sv->cfg->langs[l];
        piston_runtime(&b, l == 0, e->lang, e->version[0] ? e->version : "*",
                       e->aliases);
    }
    msg_buf_append(&b, "]", 2);
    httpd_reply(c, 200, (const char *)b.data);
    msg_buf_free(&b);
}
static void get_status(struct serve *sv, struct httpd_conn *c)
{
    json_t *langs = json_array();
    for (size_t l = 0; l < sv->cfg->nlangs; l++) {
        const struct catalog_entry *e = sv->cfg->langs[l];
        unsigned int waiting = 0;
        for (unsigned int i = 0; i < sv->queued; i++)
            waiting += sv->queue[i]->lang == l;
        json_array_append_new(
            langs,
            json_pack("{s:s,s:s,s:I,s:I,s:I,s:I,s:I,s:b,s:s}", "lang", e->lang,
                      "version", e->version, "idle",
                      (json_int_t)count_vms(sv, l, VM_IDLE), "busy",
                      (json_int_t)count_vms(sv, l, VM_BUSY), "kept",
                      (json_int_t)count_vms(sv, l, VM_KEPT), "waiting",
                      (json_int_t)waiting, "runs", (json_int_t)sv->lang[l].runs,
                      "failing", lang_broken(sv, l), "last_failure",
                      sv->lang[l].why));
    }
    json_t *j = json_pack(
        "{s:b,s:o,s:{s:I,s:I,s:I,s:I,s:I},s:{s:I,s:I},s:I,s:I,s:I,s:I,s:I,"
        "s:I,"
        "s:I,s:I}",
        "draining", sv->draining, "langs", langs, "vms", "max",
        (json_int_t)sv->cfg->max_vms, "idle",
        (json_int_t)count_vms(sv, SIZE_MAX, VM_IDLE), "busy",
        (json_int_t)count_vms(sv, SIZE_MAX, VM_BUSY), "kept",
        (json_int_t)count_vms(sv, SIZE_MAX, VM_KEPT), "stopping",
        (json_int_t)count_vms(sv, SIZE_MAX, VM_STOPPING), "queue", "length",
        (json_int_t)sv->queued, "max", (json_int_t)sv->cfg->queue,
        "submissions", (json_int_t)sv->submissions, "refused_busy",
        (json_int_t)sv->refused_busy, "cancelled", (json_int_t)sv->cancelled,
        "vm_failures", (json_int_t)sv->vm_failures, "watchdog_kills",
        (json_int_t)sv->watchdog_kills, "stalled_readers",
        (json_int_t)sv->stalled_readers, "requests",
        (json_int_t)sv->http.requests, "refused_connections",
        (json_int_t)sv->http.refused_conns);
    char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    /* A load balancer's health check: not 200 while draining. */
    httpd_reply(c, sv->draining ? 503 : 200, s ? s : "{}");
    free(s);
}

/* The resident memory of process pid ("self" too), bytes; 0 if gone. */
static double rss_of(const char *pid)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%s/statm", pid);
    FILE *f = fopen(path, "r");
    unsigned long size = 0, resident = 0;
    if (f) {
        if (fscanf(f, "%lu %lu", &size, &resident) != 2)
            resident = 0;
        fclose(f);
    }
    return (double)resident * (double)sysconf(_SC_PAGESIZE);
}

static void get_metrics(struct serve *sv, struct httpd_conn *c)
{
    struct msg_buf b;
    msg_buf_init(&b);
    char labels[128];
    static const char *const route_names[] = {"start", "piston", "judge"};
    metrics_head(&b, "runvm_serve_submissions_total", "counter",
                 "Submissions taken on (queued or run), by route.");
    for (size_t i = 0; i < 3; i++) {
        snprintf(labels, sizeof(labels), "route=\"%s\"", route_names[i]);
        metrics_sample(&b, "runvm_serve_submissions_total", labels,
                       (double)sv->routes[i]);
    }
    metrics_head(&b, "runvm_serve_runs_total", "counter",
                 "Runs ended, by how (a judge case is a run).");
    for (size_t i = 0; i < 6; i++) {
        snprintf(labels, sizeof(labels), "outcome=\"%s\"", outcome_names[i]);
        metrics_sample(&b, "runvm_serve_runs_total", labels,
                       (double)sv->outcomes[i]);
    }
    metrics_head(&b, "runvm_serve_verdicts_total", "counter",
                 "POST /judge cases, by verdict.");
    for (size_t i = 0; i < 8; i++) {
        snprintf(labels, sizeof(labels), "verdict=\"%s\"", verdict_names[i]);
        metrics_sample(&b, "runvm_serve_verdicts_total", labels,
                       (double)sv->verdicts[i]);
    }
    metrics_head(&b, "runvm_serve_refused_total", "counter",
                 "Requests refused: busy (429), connections over a cap.");
    metrics_sample(&b, "runvm_serve_refused_total", "reason=\"busy\"",
                   (double)sv->refused_busy);
    metrics_sample(&b, "runvm_serve_refused_total", "reason=\"connections\"",
                   (double)sv->http.refused_conns);
    metrics_head(&b, "runvm_serve_cancelled_total", "counter",
                 "Runs whose client went away.");
    metrics_sample(&b, "runvm_serve_cancelled_total", "",
                   (double)sv->cancelled);
    metrics_head(&b, "runvm_serve_vm_failures_total", "counter",
                 "VM processes that ended unasked.");
    metrics_sample(&b, "runvm_serve_vm_failures_total", "",
                   (double)sv->vm_failures);
    metrics_head(&b, "runvm_serve_watchdog_kills_total", "counter",
                 "VMs the daemon killed for a run past its limits.");
    metrics_sample(&b, "runvm_serve_watchdog_kills_total", "",
                   (double)sv->watchdog_kills);
    metrics_head(&b, "runvm_serve_vms", "gauge", "VMs alive, by state.");
    static const char *const states[] = {"idle", "busy", "kept", "stopping"};
    static const enum vm_state st[] = {VM_IDLE, VM_BUSY, VM_KEPT, VM_STOPPING};
    for (size_t i = 0; i < 4; i++) {
        snprintf(labels, sizeof(labels), "state=\"%s\"", states[i]);
        metrics_sample(&b, "runvm_serve_vms", labels,
                       (double)count_vms(sv, SIZE_MAX, st[i]));
    }
    metrics_head(&b, "runvm_serve_vms_max", "gauge", "--max-vms.");
    metrics_sample(&b, "runvm_serve_vms_max", "", (double)sv->cfg->max_vms);
    metrics_head(&b, "runvm_serve_queue_length", "gauge",
                 "Requests waiting for a VM.");
    metrics_sample(&b, "runvm_serve_queue_length", "", (double)sv->queued);
    metrics_head(&b, "runvm_serve_queue_max", "gauge", "--queue.");
    metrics_sample(&b, "runvm_serve_queue_max", "", (double)sv->cfg->queue);
    metrics_head(&b, "runvm_serve_draining", "gauge",
                 "1 once SIGTERM asked the daemon to drain.");
    metrics_sample(&b, "runvm_serve_draining", "", sv->draining ? 1 : 0);
    /* Memory: the daemon's own and its VMs' (each runvm with its guest's
     * touched RAM). */
    double vms_rss = 0;
    for (unsigned int i = 0; i < sv->cfg->max_vms; i++)
        if (sv->vms[i].state != VM_FREE) {
            char pid[16], path[4096];
            snprintf(pid, sizeof(pid), "%d", (int)sv->vms[i].pid);
            /* --cgroup: the VMM is the supervisor's child; its cgroup
             * counts it (and the supervisor's few pages are left out). */
            if (sv->cfg->cgroup && cgroup_path(sv->cfg->cgroup, sv->vms[i].pid,
                                               path, sizeof(path)) == 0)
                vms_rss += (double)cgroup_memory(path);
            else
                vms_rss += rss_of(pid);
        }
    metrics_head(&b, "runvm_serve_resident_bytes", "gauge",
                 "Resident memory: the daemon, and its VM processes.");
    metrics_sample(&b, "runvm_serve_resident_bytes", "process=\"daemon\"",
                   rss_of("self"));
    metrics_sample(&b, "runvm_serve_resident_bytes", "process=\"vms\"",
                   vms_rss);
    static const struct {
        const char *name, *help;
        size_t off;
    } hs[] = {
        {"runvm_serve_queue_seconds", "Time a request waited for a VM.",
         offsetof(struct serve, h_queue)},
        {"runvm_serve_vm_ready_seconds",
         "Time from a VM given to a request to its run starting (its "
         "restore, when it was not warm yet).",
         offsetof(struct serve, h_ready)},
        {"runvm_serve_build_seconds",
         "Build steps as the agent timed them (judge, Piston).",
         offsetof(struct serve, h_build)},
        {"runvm_serve_run_seconds",
         "Run steps as the agent timed them (judge, Piston).",
         offsetof(struct serve, h_run)},
        {"runvm_serve_request_seconds",
         "Request taken to submission over (answered, or its stream read).",
         offsetof(struct serve, h_total)},
    };
    for (size_t i = 0; i < sizeof(hs) / sizeof(hs[0]); i++) {
        metrics_head(&b, hs[i].name, "histogram", hs[i].help);
        metrics_histogram(
            &b, hs[i].name, "",
            (const struct histogram *)((const char *)sv + hs[i].off));
    }
    msg_buf_append(&b, "", 1);
    httpd_reply_as(c, 200, "text/plain; version=0.0.4", NULL,
                   (const char *)b.data);
    msg_buf_free(&b);
}

static const struct httpd_route routes[] = {
    {"POST", "/start"},          {"POST", "/judge"},
    {"POST", "/api/v2/execute"}, {"GET", "/api/v2/runtimes"},
    {"GET", "/status"},          {"GET", "/metrics"},
};

static void route(void *opaque, struct httpd_conn *c,
                  const struct http_request *req)
{
    struct serve *sv = opaque;
    switch (httpd_match(c, req, routes, sizeof(routes) / sizeof(routes[0]))) {
    case 0: post_start(sv, c, req); break;
    case 1: post_judge(sv, c, req); break;
    case 2: post_piston(sv, c, req); break;
    case 3: get_runtimes(sv, c); break;
    case 4: get_status(sv, c); break;
    case 5: get_metrics(sv, c); break;
    default: break;
    }
}

/* A client hung up: its submission is cancelled (out of the queue, or its
 * VM stopped). */
static void conn_closed(void *opaque, struct httpd_conn *c)
{
    (void)opaque;
    struct sub *sub = c->data;
    if (!sub)
        return;
    sub->c = NULL;
    sub_end(sub, true);
}

/* A streamed answer's chunks went out: more can be read for it. */
static void conn_drained(void *opaque, struct httpd_conn *c)
{
    (void)opaque;
    if (c->data)
        relay_flush(c->data);
}

/* ---- signals, the watchdog, set-up ----------------------------------------
 */

static void tick(void *opaque, uint32_t events)
{
    struct serve *sv = opaque;
    uint64_t expirations, now = clock_now_ns();
    (void)events;
    if (read(sv->tick_fd, &expirations, sizeof(expirations)) < 0 &&
        errno != EAGAIN)
        return;
    for (unsigned int i = 0; i < sv->cfg->max_vms; i++) {
        struct serve_vm *vm = &sv->vms[i];
        if (vm->state == VM_BUSY && now > vm->deadline_ns && vm->sub &&
            vm->sub->in_eof && !vm->sub->over) {
            snprintf(vm->sub->why, sizeof(vm->sub->why),
                     "the VM's runvm ended the run's stream without its "
                     "exit event");
            vm_stop(vm, SIGTERM);
        } else if (vm->state == VM_BUSY && now > vm->deadline_ns) {
            /* The child's own watchdog should have ended it: it is not
             * trusted to. */
            sv->watchdog_kills++;
            if (vm->sub)
                snprintf(vm->sub->why, sizeof(vm->sub->why),
                         "runvm serve's watchdog stopped the VM: the run "
                         "went %u s past its time limits",
                         SERVE_RUN_SLACK_MS / 1000);
            vm_stop(vm, SIGKILL);
        } else if (vm->state == VM_STOPPING && !vm->killed &&
                   now > vm->deadline_ns) {
            vm_stop(vm, SIGKILL);
        } else if (vm->state == VM_KEPT && now > vm->deadline_ns) {
            vm_stop(vm, SIGTERM); /* its next run did not come */
        }
    }
    for (struct sub *sub = sv->subs, *next; sub; sub = next) {
        next = sub->next;
        if (sub->deadline_ns && now > sub->deadline_ns) {
            sub_end(sub, true); /* its reader never came */
            continue;
        }
        /* A reader that takes nothing while events wait for it. */
        uint64_t last = sub->progress_ns;
        if (sub->stream && sub->c && sub->c->sent_ns > last)
            last = sub->c->sent_ns;
        if (sub->kind == SUB_START && sub->answered && pending(sub) > 0 &&
            now > last + STALL_MS * 1000000ull) {
            sv->stalled_readers++;
            sub_end(sub, true);
        }
    }
    schedule(sv); /* VMs that could not start are tried again */
    /* Drained: nothing runs, waits or is still being read. */
    if (sv->draining && !sv->subs && sv->queued == 0 &&
        count_vms(sv, SIZE_MAX, VM_FREE) == sv->cfg->max_vms)
        evloop_stop(&sv->loop);
}

static void signal_ready(void *opaque, uint32_t events)
{
    struct serve *sv = opaque;
    struct signalfd_siginfo si;
    (void)events;
    if (read(sv->signal_fd, &si, sizeof(si)) != sizeof(si))
        return;
    if (sv->draining) {
        sv->hard_signal = (int)si.ssi_signo;
        evloop_stop(&sv->loop);
        return;
    }
    fprintf(stderr,
            "runvm serve: draining: %u running, %u waiting; a second "
            "signal stops them\n",
            count_vms(sv, SIZE_MAX, VM_BUSY), sv->queued);
    sv->draining = true;
    schedule(sv);
}

/* More open files for connections: the soft limit raised to the hard. */
static void raise_nofile(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        (void)setrlimit(RLIMIT_NOFILE, &rl);
    }
}

static int setup(struct serve *sv, sigset_t *sigs, char *err, size_t err_len)
{
    if (httpd_rundir("runvm-serve", sv->rundir, sizeof(sv->rundir), err,
                     err_len) < 0)
        return -1;
    sv->queue = calloc(sv->cfg->queue ? sv->cfg->queue : 1, sizeof(*sv->queue));
    if (!sv->queue || evloop_init(&sv->loop) < 0) {
        snprintf(err, err_len, "set-up: %s", strerror(errno));
        return -1;
    }
    sv->signal_fd = signalfd(-1, sigs, SFD_CLOEXEC | SFD_NONBLOCK);
    sv->tick_fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
    struct itimerspec its = {.it_interval = {0, 250000000},
                             .it_value = {0, 250000000}};
    if (sv->signal_fd < 0 || sv->tick_fd < 0 ||
        timerfd_settime(sv->tick_fd, 0, &its, NULL) < 0 ||
        evloop_add(&sv->loop, sv->signal_fd, EPOLLIN, signal_ready, sv) < 0 ||
        evloop_add(&sv->loop, sv->tick_fd, EPOLLIN, tick, sv) < 0) {
        snprintf(err, err_len, "set-up: %s", strerror(errno));
        return -1;
    }
    char why[300];
    int fd = httpd_listen_unix(sv->cfg->sock_path, why, sizeof(why));
    if (fd < 0) {
        snprintf(err, err_len, "--api-sock %s", why);
        return -1;
    }
    sv->own_sock = true;
    const struct httpd_config http = {
        .max_conns = SERVE_MAX_CONNS,
        .max_per_client = SERVE_CLIENT_CONNS,
        .idle_ms = 10000,
        .route = route,
        .closed = conn_closed,
        .drained = conn_drained,
        .opaque = sv,
    };
    if (httpd_init(&sv->http, &sv->loop, fd, &http, err, err_len) < 0)
        return -1;
    if (sv->cfg->listen) {
        fd = httpd_listen_tcp(sv->cfg->listen, why, sizeof(why));
        if (fd < 0) {
            snprintf(err, err_len, "--listen %s", why);
            return -1;
        }
        if (httpd_add_listener(&sv->http, fd) < 0) {
            close(fd);
            snprintf(err, err_len, "--listen: event loop full");
            return -1;
        }
    }
    return 0;
}

int serve_main(const struct serve_config *cfg)
{
    struct serve *sv = calloc(1, sizeof(*sv));
    if (!sv) {
        fprintf(stderr, "runvm serve: out of memory\n");
        return RUNVM_EXIT_INFRA;
    }
    sv->cfg = cfg;
    sv->signal_fd = sv->tick_fd = -1;
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    sigprocmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);
    raise_nofile();
    json_object_seed(0);
    char err[512];
    int status = RUNVM_EXIT_INFRA;
    if (setup(sv, &sigs, err, sizeof(err)) < 0) {
        fprintf(stderr, "runvm serve: %s\n", err);
        goto out;
    }
    schedule(sv); /* the warm VMs */
    fprintf(stderr,
            "runvm serve: listening on %s, %zu language%s, up to %u "
            "VMs\n",
            cfg->sock_path, cfg->nlangs, cfg->nlangs == 1 ? "" : "s",
            cfg->max_vms);
    int ret = evloop_run(&sv->loop, -1);
    status = ret < 0           ? RUNVM_EXIT_INFRA
             : sv->hard_signal ? 128 + sv->hard_signal
                               : 0;
out:
    /* What still runs is stopped; nothing is left behind. */
    for (unsigned int i = 0; i < SERVE_MAX_VMS; i++) {
        struct serve_vm *vm = &sv->vms[i];
        if (vm->state == VM_FREE)
            continue;
        if (vm->sub) {
            vm->sub->vm = NULL;
            vm->sub = NULL;
        }
        kill(vm->pid, SIGKILL);
        waitpid(vm->pid, NULL, 0);
        close(vm->pidfd);
        unlink(vm->sock);
        if (cfg->cgroup) { /* its VMM dies with it: wait for that */
            char path[4096], why[512];
            if (cgroup_path(cfg->cgroup, vm->pid, path, sizeof(path)) == 0 &&
                cgroup_remove(path, why, sizeof(why)) < 0)
                fprintf(stderr, "runvm serve: %s\n", why);
        }
    }
    while (sv->subs)
        sub_free(sv->subs);
    httpd_free(&sv->http);
    if (sv->own_sock)
        unlink(cfg->sock_path);
    if (sv->signal_fd >= 0)
        close(sv->signal_fd);
    if (sv->tick_fd >= 0)
        close(sv->tick_fd);
    if (sv->loop.epfd > 0)
        evloop_free(&sv->loop);
    if (sv->rundir[0])
        rmdir(sv->rundir);
    free(sv->queue);
    free(sv);
    return status;
}
