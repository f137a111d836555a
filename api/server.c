#include "api/server.h"

#include <errno.h>
#include <jansson.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "api/http.h"
#include "api/run.h"
#include "api/server_int.h"
#include "core/clock.h"
#include "session/event.h"
#include "session/session.h"
#include "vmm/agent_channel.h"

#define API_SHUTDOWN_GRACE_MS 2000

/* ---- GET /status, PUT /shutdown ----------------------------------------- */

/* Serves the agent of vm on its channel ch; resumed: a VM restored from a
 * snapshot, whose agent is re-announced with fresh entropy and time. */
static int serve_agent(struct api_server *s, struct vm *vm,
                       struct agent_channel *ch, bool resumed)
{
    s->vm = vm;
    s->ch = ch;
    s->t_hello_ns = 0;
    int ret = session_init(&s->session, s->loop, ch->host_fd, &s->cfg.expect,
                           &api_run_sink, s);
    if (ret == 0 && resumed)
        ret = session_resume(&s->session);
    if (ret < 0)
        return ret;
    session_set_watchdog(&s->session, s->cfg.run_slack_ms);
    return 0;
}

static void get_status(struct api_server *s, struct httpd_conn *c)
{
    const struct vm *vm = s->vm;
    enum session_state st = s->session.state;
    const char *state = s->stopping             ? "stopping"
                        : s->renewing           ? "renewing"
                        : st == SESSION_BOOTING ? "booting"
                        : st == SESSION_RUNNING ? "running"
                                                : "ready";
    struct msg_buf b;
    msg_buf_init(&b);
    char tmp[512];
    snprintf(tmp, sizeof(tmp), "{\"state\":\"%s\",\"lang\":", state);
    msg_buf_append(&b, tmp, strlen(tmp));
    const struct agent_hello *h = session_hello(&s->session);
    const struct agent_client *ac = &s->session.client;
    event_json_string(&b, h->lang, strlen(h->lang));
    msg_buf_append(&b, ",\"toolchain\":", 13);
    event_json_string(&b, h->toolchain, strlen(h->toolchain));
    msg_buf_append(&b, ",\"agent_version\":", 17);
    event_json_string(&b, h->agent_version, strlen(h->agent_version));
    const char *version = s->cfg.expect.version ? s->cfg.expect.version : "";
    msg_buf_append(&b, ",\"version\":", 11);
    event_json_string(&b, version, strlen(version));
    if (s->cfg.catalog) {
        msg_buf_append(&b, ",\"langs\":", 9);
        catalog_json(s->cfg.catalog, &b);
    }
    double ms = 1e6;
    snprintf(
        tmp, sizeof(tmp),
        ",\"boot\":{\"kvm_ready_ms\":%.3f,\"first_kvm_run_ms\":%.3f,"
        "\"agent_ready_ms\":%.3f},\"uptime_ms\":%.3f,\"runs\":%" PRIu64
        ",\"requests\":%" PRIu64 ",\"rejected\":%" PRIu64
        ",\"idle_closed\":%" PRIu64 ",\"stalled_readers\":%" PRIu64
        ",\"fresh_vms\":%s,\"vms\":%" PRIu64
        ",\"channel\":{\"bytes_in\":%" PRIu64 ",\"bytes_out\":%" PRIu64
        ",\"dropped_frames\":%" PRIu64 "}}",
        (double)(vm->t_kvm_ready - vm->t_start) / ms,
        vm->t_first_run ? (double)(vm->t_first_run - vm->t_start) / ms : 0.0,
        s->t_hello_ns ? (double)(s->t_hello_ns - vm->t_start) / ms : 0.0,
        (double)(clock_now_ns() - vm->t_start) / ms, s->runs, s->http.requests,
        s->http.rejected, s->http.idle_closed, s->stalled_readers,
        s->cfg.fresh_vms ? "true" : "false", s->renewals + 1, ac->bytes_in,
        ac->bytes_out, ac->dropped + msg_reader_dropped(&ac->reader));
    msg_buf_append(&b, tmp, strlen(tmp) + 1);
    httpd_reply(c, 200, (const char *)b.data);
    msg_buf_free(&b);
}

static void put_shutdown(struct api_server *s, struct httpd_conn *c)
{
    s->shutdown_requested = true;
    s->stopping = true;
    httpd_reply(c, 200, "{\"state\":\"stopping\"}");
    /* The agent powers the VM off; a stop after the grace period
     * otherwise (api_run's power_off_overdue). */
    session_power_off(&s->session, API_SHUTDOWN_GRACE_MS);
}

/* ---- routing ------------------------------------------------------------ */

/* Each endpoint once: a handler answers c now, or keeps it (POST /start
 * while the VM boots). req lives as long as c. */
static const struct httpd_route routes[] = {
    {"POST", "/start"},
    {"GET", "/status"},
    {"PUT", "/shutdown"},
};

static void route(void *opaque, struct httpd_conn *c,
                  const struct http_request *req)
{
    struct api_server *s = opaque;
    switch (httpd_match(c, req, routes, sizeof(routes) / sizeof(routes[0]))) {
    case 0: api_run_post_start(s, c, req); break;
    case 1: get_status(s, c); break;
    case 2: put_shutdown(s, c); break;
    default: break;
    }
}

/* A connection closes: a start waiting for the VM waits no more. */
static void conn_closed(void *opaque, struct httpd_conn *c)
{
    struct api_server *s = opaque;
    if (s->pending_start == c)
        s->pending_start = NULL;
}

/* ---- set-up ------------------------------------------------------------- */

/* fd, handed over listening: made non-blocking and close-on-exec, or
 * -errno with why in err. */
static int listening_fd(int fd, char *err, size_t err_len)
{
    int on = 0;
    socklen_t len = sizeof(on);
    if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &on, &len) < 0 || !on) {
        snprintf(err, err_len, "%d: not a listening socket", fd);
        return -ENOTSOCK;
    }
    if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) < 0 ||
        fcntl(fd, F_SETFD, FD_CLOEXEC) < 0) {
        int ret = -errno;
        snprintf(err, err_len, "%d: %s", fd, strerror(-ret));
        return ret;
    }
    return fd;
}

int api_server_attach(struct api_server **out, struct vm *vm,
                      struct agent_channel *ch,
                      const struct api_server_config *cfg, char *err,
                      size_t err_len)
{
    struct api_server *s = calloc(1, sizeof(*s));
    *out = NULL;
    if (!s) {
        snprintf(err, err_len, "API: out of memory");
        return -ENOMEM;
    }
    s->vm = vm;
    s->loop = vm->loop;
    s->cfg = *cfg;
    if (!s->cfg.run_slack_ms)
        s->cfg.run_slack_ms = API_RUN_SLACK_MS;
    if (!s->cfg.idle_ms)
        s->cfg.idle_ms = API_IDLE_MS;
    if (!s->cfg.max_buffered)
        s->cfg.max_buffered = API_MAX_BUFFERED;
    api_run_init(&s->run);
    *out = s; /* api_server_free cleans up from here on */

    /* Output sockets live in a private directory of runvm's own. */
    char msg[300];
    int ret =
        httpd_rundir("runvm", s->rundir, sizeof(s->rundir), msg, sizeof(msg));
    if (ret < 0) {
        snprintf(err, err_len, "API: %s", msg);
        return ret;
    }
    ret = serve_agent(s, vm, ch, cfg->resumed);
    if (ret < 0) {
        snprintf(err, err_len, "API: agent channel: %s", strerror(-ret));
        return ret;
    }
    /* jansson seeds its hash tables from /dev/urandom on first use: now,
     * while runvm may still open files (it opens none once sandboxed). */
    json_object_seed(0);
    char why[200];
    int fd = cfg->sock_path
                 ? httpd_listen_unix(cfg->sock_path, why, sizeof(why))
                 : listening_fd(cfg->listen_fd, why, sizeof(why));
    if (fd < 0) {
        snprintf(err, err_len, "%s %s",
                 cfg->sock_path ? "--api-sock" : "--api-fd", why);
        return fd;
    }
    s->own_sock = cfg->sock_path != NULL;
    const struct httpd_config http = {
        .max_conns = API_MAX_CONNS,
        .idle_ms = s->cfg.idle_ms,
        .route = route,
        .closed = conn_closed,
        .opaque = s,
    };
    ret = httpd_init(&s->http, s->loop, fd, &http, err, err_len);
    if (ret < 0)
        return ret;
    return 0;
}

bool api_server_paused(const struct api_server *s)
{
    return s->paused && !s->stopping;
}

void api_server_go_on(struct api_server *s)
{
    s->paused = false;
    /* The memory file holds this VM's RNG state: from here it has its
     * own (an agent that cannot take it answers with an ERROR, which
     * no run waits for). */
    if (session_refresh(&s->session) < 0)
        fprintf(stderr, "runvm: could not reseed the guest the snapshot "
                        "was taken of\n");
    api_run_ready(s);
}

void api_server_no_fresh_vms(struct api_server *s)
{
    s->cfg.fresh_vms = false;
}

bool api_server_wants_renewal(const struct api_server *s)
{
    return s->renewing && !s->stopping;
}

void api_server_detach(struct api_server *s)
{
    session_free(&s->session);
    s->vm = NULL;
    s->ch = NULL;
}

int api_server_renewed(struct api_server *s, struct vm *vm,
                       struct agent_channel *ch, bool resumed, char *err,
                       size_t err_len)
{
    int ret = serve_agent(s, vm, ch, resumed);
    if (ret < 0) {
        snprintf(err, err_len, "API: agent channel: %s", strerror(-ret));
        api_server_renewal_failed(s, err);
        return ret;
    }
    s->renewing = false;
    s->renewals++;
    return 0;
}

void api_server_renewal_failed(struct api_server *s, const char *why)
{
    s->renewing = false;
    s->stopping = true;
    if (s->pending_start) {
        struct httpd_conn *c = s->pending_start;
        s->pending_start = NULL;
        httpd_reply_error(c, 500, "no fresh VM for this submission: %s", why);
    }
}

int api_server_chown(struct api_server *s, uid_t uid, gid_t gid, char *err,
                     size_t err_len)
{
    /* Never through a symlink: the socket's directory may be USER's. */
    const char *paths[] = {s->rundir, s->cfg.sock_path};
    for (size_t i = 0; i < (s->own_sock ? 2u : 1u); i++) {
        struct stat st;
        int ret = lstat(paths[i], &st) < 0 ? -errno : 0;
        if (!ret && !(i == 1 ? S_ISSOCK(st.st_mode) : S_ISDIR(st.st_mode)))
            ret = -EINVAL;
        if (!ret &&
            fchownat(AT_FDCWD, paths[i], uid, gid, AT_SYMLINK_NOFOLLOW) < 0)
            ret = -errno;
        if (ret < 0) {
            snprintf(err, err_len, "--user: chown %s: %s", paths[i],
                     ret == -EINVAL ? "not what runvm made there"
                                    : strerror(-ret));
            return ret;
        }
    }
    return 0;
}

int api_server_status(struct api_server *s, enum vm_stop stop, int signo)
{
    int status = event_stop_status(stop, signo, s->shutdown_requested);
    const char *why = s->vm && s->vm->stop_why ? s->vm->stop_why : "VM stopped";
    if (status == RUNVM_EXIT_INFRA)
        fprintf(stderr, "runvm: API mode ended without PUT /shutdown: %s\n",
                why);
    api_run_vm_stopped(s, why);
    return status;
}

void api_server_free(struct api_server *s)
{
    if (!s)
        return;
    httpd_free(&s->http);
    api_run_free(s);
    if (s->own_sock)
        unlink(s->cfg.sock_path);
    if (s->rundir[0])
        rmdir(s->rundir);
    session_free(&s->session);
    free(s);
}
