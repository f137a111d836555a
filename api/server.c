#include "api/server.h"

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "session/event.h"
#include "api/http.h"
#include "vmm/agent_channel.h"
#include "session/session.h"

#define API_MAX_CONNS 16
#define API_MAX_EVENTS_BUFFERED (64u << 20) /* output held for no reader */
#define API_SHUTDOWN_GRACE_MS 2000
#define API_MAX_LIMIT_MS (600u * 1000)
#define API_MAX_FILES 16

struct conn {
    struct api_server *s;
    int fd;
    struct msg_buf in;
    struct msg_buf out;
    bool replying;
    bool drain;       /* after the reply, read the rest of the request */
    size_t drained;
};

struct api_server {
    struct vm *vm;
    struct api_server_config cfg;
    struct agent_channel *ch; /* the machine's */
    struct session session;
    bool stopping; /* PUT /shutdown, or the agent is gone */
    bool shutdown_requested;
    int listen_fd;
    bool own_sock; /* we created cfg.sock_path */
    char rundir[PATH_MAX];
    int timer_fd;
    struct conn conns[API_MAX_CONNS];
    struct conn *pending_start; /* POST /start waiting for HELLO */
    /* The current (or last) run. */
    struct agent_request req; /* the one RUN of this start */
    struct agent_file files[API_MAX_FILES];
    size_t nfiles;
    json_t *json;      /* owns the strings the requests point to */
    char *text_body;   /* text/plain source */
    const char *argv_store[65];
    /* Its output socket. */
    int out_listen_fd;
    int out_fd;
    char out_path[PATH_MAX];
    struct msg_buf events;
    bool events_done;  /* the final event is queued */
    bool events_dropped;
    /* Counters for GET /status. */
    uint64_t requests, runs, rejected;
    uint64_t t_hello_ns;
};

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ---- connections ------------------------------------------------------- */

static void conn_close(struct conn *c)
{
    if (c->fd < 0)
        return;
    if (c->s->pending_start == c)
        c->s->pending_start = NULL;
    evloop_del(c->s->vm->loop, c->fd);
    close(c->fd);
    c->fd = -1;
    msg_buf_free(&c->in);
    msg_buf_free(&c->out);
}

static void conn_flush(struct conn *c)
{
    while (c->out.len > 0) {
        ssize_t n = send(c->fd, c->out.data, c->out.len,
                         MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            (void)evloop_mod(c->s->vm->loop, c->fd, EPOLLOUT);
            return;
        }
        if (n <= 0)
            break;
        msg_buf_consume(&c->out, (size_t)n);
    }
    if (c->out.len == 0 && c->drain) {
        /* A request refused before its body was read: closing now could
         * make the client's write fail before it reads the answer, so
         * discard what it still sends until it closes. */
        shutdown(c->fd, SHUT_WR);
        c->replying = false;
        (void)evloop_mod(c->s->vm->loop, c->fd, EPOLLIN);
        return;
    }
    conn_close(c); /* one request per connection */
}

/* Sends a complete response with a JSON body and closes afterwards. */
static void reply(struct conn *c, int status, const char *body)
{
    char head[256];
    size_t len = strlen(body);
    int n = snprintf(head, sizeof(head),
                     "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\n"
                     "Content-Length: %zu\r\nConnection: close\r\n\r\n",
                     status, http_reason(status), len + 1);
    if (status >= 400)
        c->s->rejected++;
    c->replying = true;
    msg_buf_reset(&c->out);
    msg_buf_append(&c->out, head, (size_t)n);
    msg_buf_append(&c->out, body, len);
    msg_buf_append(&c->out, "\n", 1);
    conn_flush(c);
}

static void reply_error(struct conn *c, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void reply_error(struct conn *c, int status, const char *fmt, ...)
{
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    struct msg_buf b;
    msg_buf_init(&b);
    msg_buf_append(&b, "{\"error\":", 9);
    event_json_string(&b, msg, strlen(msg));
    msg_buf_append(&b, "}", 2); /* with the NUL */
    reply(c, status, b.data ? (const char *)b.data : "{}");
    msg_buf_free(&b);
}

/* ---- output socket ------------------------------------------------------ */

static void out_close(struct api_server *s)
{
    if (s->out_listen_fd >= 0) {
        evloop_del(s->vm->loop, s->out_listen_fd);
        close(s->out_listen_fd);
        s->out_listen_fd = -1;
    }
    if (s->out_path[0]) {
        unlink(s->out_path);
        s->out_path[0] = '\0';
    }
    if (s->out_fd >= 0) {
        evloop_del(s->vm->loop, s->out_fd);
        close(s->out_fd);
        s->out_fd = -1;
    }
    msg_buf_reset(&s->events);
}

static void out_flush(struct api_server *s)
{
    if (s->out_fd < 0)
        return;
    while (s->events.len > 0) {
        ssize_t n = send(s->out_fd, s->events.data, s->events.len,
                         MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            (void)evloop_mod(s->vm->loop, s->out_fd, EPOLLOUT);
            return;
        }
        if (n <= 0) {
            /* The reader left: the run goes on, its events go nowhere. */
            evloop_del(s->vm->loop, s->out_fd);
            close(s->out_fd);
            s->out_fd = -1;
            msg_buf_reset(&s->events);
            return;
        }
        msg_buf_consume(&s->events, (size_t)n);
    }
    (void)evloop_mod(s->vm->loop, s->out_fd, 0);
    if (s->events_done)
        out_close(s);
}

static void out_writable(void *opaque, uint32_t events)
{
    (void)events;
    out_flush(opaque);
}

static void out_accept(void *opaque, uint32_t events)
{
    struct api_server *s = opaque;
    (void)events;
    int fd = accept4(s->out_listen_fd, NULL, NULL,
                     SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (fd < 0)
        return;
    /* One reader per run: stop listening and remove the path now. */
    evloop_del(s->vm->loop, s->out_listen_fd);
    close(s->out_listen_fd);
    s->out_listen_fd = -1;
    unlink(s->out_path);
    s->out_path[0] = '\0';
    s->out_fd = fd;
    if (evloop_add(s->vm->loop, fd, 0, out_writable, s) < 0) {
        close(fd);
        s->out_fd = -1;
        return;
    }
    out_flush(s);
}

static int listen_unix(const char *path, char *err, size_t err_len)
{
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof(addr.sun_path)) {
        snprintf(err, err_len, "%s: socket path too long (max %zu)", path,
                 sizeof(addr.sun_path) - 1);
        return -ENAMETOOLONG;
    }
    memcpy(addr.sun_path, path, strlen(path));
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        goto fail;
    /* Mode 0600 from the start: no window where others could connect. */
    mode_t old = umask(0177);
    int r = bind(fd, (struct sockaddr *)&addr, sizeof(addr));
    umask(old);
    if (r < 0 || listen(fd, 16) < 0)
        goto fail;
    return fd;
fail:;
    int ret = -errno;
    snprintf(err, err_len, "%s: %s%s", path, strerror(-ret),
             ret == -EADDRINUSE ? " (another runvm, or a stale socket: "
             "remove it or pick another path)" : "");
    if (fd >= 0)
        close(fd);
    return ret;
}

static void emit(struct api_server *s)
{
    if (s->events.len > API_MAX_EVENTS_BUFFERED && s->out_fd < 0) {
        s->events_dropped = true;
        msg_buf_reset(&s->events);
    }
    out_flush(s);
}

static void run_over(struct api_server *s)
{
    s->events_done = true;
    emit(s);
}

/* ---- agent callbacks ---------------------------------------------------- */

static void start_run(struct api_server *s, struct conn *c);

static void on_ready(void *opaque, const struct agent_hello *h)
{
    struct api_server *s = opaque;
    (void)h;
    if (s->t_hello_ns)
        return; /* an ANNOUNCE's answer */
    s->t_hello_ns = now_ns();
    if (s->pending_start) {
        struct conn *c = s->pending_start;
        s->pending_start = NULL;
        start_run(s, c);
    }
}

static void on_output(void *opaque, const struct msg_output *o)
{
    struct api_server *s = opaque;
    event_output(&s->events, o);
    emit(s);
}

static void on_exit_msg(void *opaque, const struct msg_exit *e)
{
    struct api_server *s = opaque;
    event_exit(&s->events, e);
    emit(s);
}

static void on_done(void *opaque, int status, const char *why)
{
    struct api_server *s = opaque;
    if (s->session.state == SESSION_FAILED) {
        /* No run: the image serves another language. */
        fprintf(stderr, "runvm: %s\n", why);
        s->stopping = true;
        vm_request_stop(s->vm, VM_STOP_ERROR, "wrong language image", 0);
        return;
    }
    if (why)
        event_failure(&s->events, status, why);
    run_over(s);
}

static void on_closed(void *opaque, int err)
{
    struct api_server *s = opaque;
    (void)err;
    if (!s->shutdown_requested) {
        s->stopping = true;
        vm_request_stop(s->vm, VM_STOP_ERROR, "agent channel closed", 0);
    }
}

static const struct session_sink api_sink = {
    .ready = on_ready, .output = on_output, .exit = on_exit_msg,
    .done = on_done, .closed = on_closed,
};

/* ---- requests ----------------------------------------------------------- */

static void free_request(struct api_server *s)
{
    if (s->json)
        json_decref(s->json);
    s->json = NULL;
    free(s->text_body);
    s->text_body = NULL;
    s->nfiles = 0;
}

static bool file_name_ok(const char *n)
{
    size_t len = strlen(n);
    if (len == 0 || len > 64 || n[0] == '.')
        return false;
    for (size_t i = 0; i < len; i++)
        if (!((n[i] >= 'a' && n[i] <= 'z') || (n[i] >= 'A' && n[i] <= 'Z') ||
              (n[i] >= '0' && n[i] <= '9') || n[i] == '.' || n[i] == '_' ||
              n[i] == '-'))
            return false;
    return true;
}

/* A limit in the request: absent 0, else 1..max. false if malformed. */
static bool get_limit(json_t *limits, const char *key, uint64_t max,
                      uint64_t *out)
{
    json_t *v = limits ? json_object_get(limits, key) : NULL;
    if (!v)
        return true;
    if (!json_is_integer(v) || json_integer_value(v) < 1 ||
        (uint64_t)json_integer_value(v) > max)
        return false;
    *out = (uint64_t)json_integer_value(v);
    return true;
}

/* Fills build_req/run_req from a JSON body. NULL or an error message. */
static const char *parse_json(struct api_server *s, const char *body,
                              size_t len, bool *reuse)
{
    json_error_t jerr;
    s->json = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!s->json || !json_is_object(s->json))
        return "body is not a JSON object";
    json_t *code = json_object_get(s->json, "code");
    json_t *files = json_object_get(s->json, "files");
    json_t *in = json_object_get(s->json, "stdin");
    json_t *args = json_object_get(s->json, "args");
    json_t *limits = json_object_get(s->json, "limits");
    json_t *r = json_object_get(s->json, "reuse");
    if (code && !json_is_string(code))
        return "\"code\" must be a string";
    if (files && !json_is_object(files))
        return "\"files\" must be an object of file name to content";
    if (in && !json_is_string(in))
        return "\"stdin\" must be a string";
    if (args && (!json_is_array(args) || json_array_size(args) == 0 ||
                 json_array_size(args) > 64))
        return "\"args\" must be a list of 1 to 64 strings (the run argv)";
    if (limits && !json_is_object(limits))
        return "\"limits\" must be an object";
    if (r && !json_is_boolean(r))
        return "\"reuse\" must be true or false";
    *reuse = r && json_is_true(r);
    if (!code && !files && !*reuse)
        return "give \"code\" or \"files\"";
    if (code) {
        s->files[s->nfiles++] = (struct agent_file){
            .name = NULL, /* the agent names it: the image's SOURCE */
            .data = json_string_value(code),
            .len = json_string_length(code)};
    }
    const char *name;
    json_t *v;
    json_object_foreach(files, name, v) {
        if (s->nfiles == API_MAX_FILES)
            return "too many files (at most 16)";
        if (!file_name_ok(name))
            return "file names are plain names: letters, digits, . _ -";
        if (!json_is_string(v))
            return "file contents must be strings";
        s->files[s->nfiles++] = (struct agent_file){
            .name = name, .data = json_string_value(v),
            .len = json_string_length(v)};
    }
    if (args) {
        size_t i;
        json_array_foreach(args, i, v) {
            if (!json_is_string(v))
                return "\"args\" must be a list of strings";
            s->argv_store[i] = json_string_value(v);
        }
        s->argv_store[json_array_size(args)] = NULL;
        s->req.run_argv = s->argv_store;
    }
    if (in) {
        s->req.stdin_data = json_string_value(in);
        s->req.stdin_len = json_string_length(in);
    }
    struct msg_limits *rl = &s->req.limits;
    if (!get_limit(limits, "timeout_ms", API_MAX_LIMIT_MS, &rl->wall_ms) ||
        !get_limit(limits, "build_timeout_ms", API_MAX_LIMIT_MS,
                   &s->req.build_limits.wall_ms) ||
        !get_limit(limits, "memory_bytes", 1ull << 40, &rl->mem_bytes) ||
        !get_limit(limits, "max_procs", 100000, &rl->max_procs) ||
        !get_limit(limits, "max_output_bytes", 1ull << 32, &rl->max_output))
        return "limits are positive integers: timeout_ms, build_timeout_ms "
               "(at most 600000), memory_bytes, max_procs, max_output_bytes";
    return NULL;
}

static void start_run(struct api_server *s, struct conn *c)
{
    struct http_request req;
    if (http_parse((const char *)c->in.data, c->in.len, HTTP_MAX_BODY,
                   &req) != 1) {
        reply_error(c, 400, "malformed request");
        return;
    }
    if (s->session.state == SESSION_RUNNING) {
        reply_error(c, 409, "a run is in progress; wait for its exit "
                    "event");
        return;
    }
    free_request(s);
    out_close(s);
    /* The request's limits are the run step's; the build keeps the
     * agent's defaults but for its time limit. */
    s->req = (struct agent_request){
        .limits = {.wall_ms = s->cfg.default_run_ms},
        .has_build_limits = true,
        .build_limits = {.wall_ms = s->cfg.default_build_ms},
    };
    bool reuse = false;
    const char *ct = req.content_type;
    if (strcmp(ct, "application/json") == 0) {
        const char *why = parse_json(s, req.body, req.content_length,
                                     &reuse);
        if (why) {
            free_request(s);
            reply_error(c, 400, "%s", why);
            return;
        }
    } else if (ct[0] == '\0' || strcmp(ct, "text/plain") == 0 ||
               strcmp(ct, "application/octet-stream") == 0 ||
               strcmp(ct, "application/x-www-form-urlencoded") == 0) {
        /* curl --data-binary sends form-urlencoded unless told. */
        if (req.content_length == 0) {
            reply_error(c, 400, "empty body: send the program's source");
            return;
        }
        s->text_body = malloc(req.content_length);
        if (!s->text_body) {
            reply_error(c, 500, "out of memory");
            return;
        }
        memcpy(s->text_body, req.body, req.content_length);
        s->files[s->nfiles++] = (struct agent_file){
            .data = s->text_body, .len = req.content_length};
    } else {
        reply_error(c, 415, "send text/plain (the source) or "
                    "application/json");
        return;
    }
    s->req.files = s->files;
    s->req.nfiles = s->nfiles;
    if (reuse) /* run step only, in the previous RUN's directory */
        s->req.flags = MSG_RUN_REUSE_WORKDIR | MSG_RUN_SKIP_BUILD;

    char err[256];
    snprintf(s->out_path, sizeof(s->out_path), "%.3000s/run-%" PRIu64 ".sock",
             s->rundir, s->runs + 1);
    s->out_listen_fd = listen_unix(s->out_path, err, sizeof(err));
    if (s->out_listen_fd < 0 ||
        evloop_add(s->vm->loop, s->out_listen_fd, EPOLLIN, out_accept,
                   s) < 0) {
        if (s->out_listen_fd < 0)
            s->out_path[0] = '\0';
        out_close(s);
        reply_error(c, 500, "output socket: %s", err);
        return;
    }
    int ret = session_run(&s->session, &s->req);
    if (ret < 0) {
        out_close(s);
        reply_error(c, ret == -EMSGSIZE ? 413 : 500, "%s",
                    ret == -EMSGSIZE ? "request too large for the agent "
                    "(8 MiB)" : strerror(-ret));
        return;
    }
    s->runs++;
    s->events_done = false;
    s->events_dropped = false;
    struct msg_buf b;
    msg_buf_init(&b);
    char head[64];
    snprintf(head, sizeof(head), "{\"id\":%" PRIu64 ",\"output_socket\":",
             s->runs);
    msg_buf_append(&b, head, strlen(head));
    event_json_string(&b, s->out_path, strlen(s->out_path));
    msg_buf_append(&b, "}", 2);
    reply(c, 200, (const char *)b.data);
    msg_buf_free(&b);
}

static void shutdown_timer(void *opaque, uint32_t events)
{
    struct api_server *s = opaque;
    (void)events;
    uint64_t n;
    ssize_t r = read(s->timer_fd, &n, sizeof(n));
    (void)r;
    vm_request_stop(s->vm, VM_STOP_GUEST, "PUT /shutdown", 0);
}

static void status_reply(struct api_server *s, struct conn *c)
{
    const struct vm *vm = s->vm;
    enum session_state st = s->session.state;
    const char *state = s->stopping ? "stopping"
                        : st == SESSION_BOOTING ? "booting"
                        : st == SESSION_RUNNING ? "running" : "ready";
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
    double ms = 1e6;
    snprintf(tmp, sizeof(tmp),
             ",\"boot\":{\"kvm_ready_ms\":%.3f,\"first_kvm_run_ms\":%.3f,"
             "\"agent_ready_ms\":%.3f},\"uptime_ms\":%.3f,\"runs\":%" PRIu64
             ",\"requests\":%" PRIu64 ",\"rejected\":%" PRIu64
             ",\"channel\":{\"bytes_in\":%" PRIu64 ",\"bytes_out\":%" PRIu64
             ",\"dropped_frames\":%" PRIu64 "}}",
             (double)(vm->t_kvm_ready - vm->t_start) / ms,
             vm->t_first_run ? (double)(vm->t_first_run - vm->t_start) / ms
                             : 0.0,
             s->t_hello_ns ? (double)(s->t_hello_ns - vm->t_start) / ms : 0.0,
             (double)(now_ns() - vm->t_start) / ms, s->runs, s->requests,
             s->rejected, ac->bytes_in, ac->bytes_out,
             ac->dropped + msg_reader_dropped(&ac->reader));
    msg_buf_append(&b, tmp, strlen(tmp) + 1);
    reply(c, 200, (const char *)b.data);
    msg_buf_free(&b);
}

static void route(struct api_server *s, struct conn *c,
                  const struct http_request *req)
{
    s->requests++;
    bool get = strcmp(req->method, "GET") == 0;
    bool post = strcmp(req->method, "POST") == 0;
    bool put = strcmp(req->method, "PUT") == 0;
    if (strcmp(req->path, "/start") == 0) {
        if (!post)
            {
            reply_error(c, 405, "use POST /start");
            return;
        }
        if (s->stopping)
            {
            reply_error(c, 503, "the VM is shutting down");
            return;
        }
        if (s->session.state == SESSION_BOOTING) {
            if (s->pending_start)
                {
            reply_error(c, 409, "a run is already waiting for "
                                   "the VM to boot");
            return;
        }
            s->pending_start = c; /* answered at HELLO */
            (void)evloop_mod(s->vm->loop, c->fd, 0);
            return;
        }
        {
            start_run(s, c);
            return;
        }
    }
    if (strcmp(req->path, "/status") == 0) {
        if (!get)
            {
            reply_error(c, 405, "use GET /status");
            return;
        }
        {
            status_reply(s, c);
            return;
        }
    }
    if (strcmp(req->path, "/shutdown") == 0) {
        if (!put)
            {
            reply_error(c, 405, "use PUT /shutdown");
            return;
        }
        s->shutdown_requested = true;
        s->stopping = true;
        reply(c, 200, "{\"state\":\"stopping\"}");
        if (session_shutdown(&s->session) == 0) {
            struct itimerspec its = {
                .it_value = {API_SHUTDOWN_GRACE_MS / 1000,
                             (API_SHUTDOWN_GRACE_MS % 1000) * 1000000L}};
            if (timerfd_settime(s->timer_fd, 0, &its, NULL) == 0)
                return;
        }
        vm_request_stop(s->vm, VM_STOP_GUEST, "PUT /shutdown", 0);
        return;
    }
    reply_error(c, 404, "no such endpoint: POST /start, GET /status, "
                "PUT /shutdown");
}

static void conn_ready(void *opaque, uint32_t events)
{
    struct conn *c = opaque;
    struct api_server *s = c->s;
    if (c->replying) {
        if (events & (EPOLLOUT | EPOLLERR | EPOLLHUP))
            conn_flush(c);
        return;
    }
    char buf[65536];
    ssize_t n = read(c->fd, buf, sizeof(buf));
    if (n < 0 && (errno == EINTR || errno == EAGAIN))
        return;
    if (n <= 0) {
        conn_close(c);
        return;
    }
    if (c->drain) {
        c->drained += (size_t)n;
        if (c->drained > 4 * HTTP_MAX_BODY)
            conn_close(c);
        return;
    }
    msg_buf_append(&c->in, buf, (size_t)n);
    struct http_request req;
    int r = http_parse((const char *)c->in.data, c->in.len, HTTP_MAX_BODY,
                       &req);
    if (r == 0)
        return;
    if (r < 0) {
        s->requests++;
        int status = -r;
        c->drain = true;
        const char *why = status == 413 ? "body too large (4 MiB at most)"
                          : status == 431 ? "headers too large (8 KiB at most)"
                          : status == 411 ? "send a Content-Length (chunked "
                                            "bodies are not accepted)"
                          : status == 405 ? "unsupported method"
                          : status == 414 ? "path too long"
                          : status == 505 ? "HTTP/1.0 or 1.1 only"
                                          : "malformed HTTP request";
        reply_error(c, status, "%s", why);
        return;
    }
    route(s, c, &req);
}

static void api_accept(void *opaque, uint32_t events)
{
    struct api_server *s = opaque;
    (void)events;
    for (;;) {
        int fd = accept4(s->listen_fd, NULL, NULL,
                         SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (fd < 0)
            return;
        struct conn *c = NULL;
        for (int i = 0; i < API_MAX_CONNS && !c; i++)
            if (s->conns[i].fd < 0)
                c = &s->conns[i];
        if (!c) {
            static const char busy[] =
                "HTTP/1.1 503 Service Unavailable\r\nContent-Type: "
                "application/json\r\nContent-Length: 33\r\nConnection: "
                "close\r\n\r\n{\"error\":\"too many connections\"}\n";
            ssize_t w = send(fd, busy, sizeof(busy) - 1,
                             MSG_NOSIGNAL | MSG_DONTWAIT);
            (void)w;
            close(fd);
            continue;
        }
        *c = (struct conn){.s = s, .fd = fd};
        msg_buf_init(&c->in);
        msg_buf_init(&c->out);
        if (evloop_add(s->vm->loop, fd, EPOLLIN, conn_ready, c) < 0) {
            close(fd);
            c->fd = -1;
        }
    }
}

/* ---- set-up ------------------------------------------------------------- */

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
    s->cfg = *cfg;
    s->listen_fd = s->timer_fd = s->out_listen_fd = s->out_fd = -1;
    for (int i = 0; i < API_MAX_CONNS; i++)
        s->conns[i].fd = -1;
    msg_buf_init(&s->events);
    *out = s; /* api_server_free cleans up from here on */

    /* Output sockets live in a private directory of runvm's own. */
    const char *base = getenv("XDG_RUNTIME_DIR");
    struct stat st;
    if (!base || stat(base, &st) < 0 || !S_ISDIR(st.st_mode))
        base = "/tmp";
    snprintf(s->rundir, sizeof(s->rundir), "%.200s/runvm.XXXXXX", base);
    if (!mkdtemp(s->rundir)) {
        int ret = -errno;
        snprintf(err, err_len, "API: runtime directory %s: %s", s->rundir,
                 strerror(-ret));
        s->rundir[0] = '\0';
        return ret;
    }
    s->ch = ch;
    int ret = session_init(&s->session, vm->loop, ch->host_fd, cfg->lang,
                           &api_sink, s);
    if (ret < 0) {
        snprintf(err, err_len, "API: agent channel: %s", strerror(-ret));
        return ret;
    }
    s->timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
    if (s->timer_fd < 0 ||
        evloop_add(vm->loop, s->timer_fd, EPOLLIN, shutdown_timer, s) < 0) {
        ret = -errno;
        snprintf(err, err_len, "API: timer: %s", strerror(-ret));
        return ret;
    }
    char why[200];
    s->listen_fd = listen_unix(cfg->sock_path, why, sizeof(why));
    if (s->listen_fd < 0) {
        snprintf(err, err_len, "--api-sock %s", why);
        return s->listen_fd;
    }
    s->own_sock = true;
    ret = evloop_add(vm->loop, s->listen_fd, EPOLLIN, api_accept, s);
    if (ret < 0) {
        snprintf(err, err_len, "API: event loop: %s", strerror(-ret));
        return ret;
    }
    return 0;
}

int api_server_status(struct api_server *s, enum vm_stop stop, int vm_status)
{
    if (s->shutdown_requested && stop == VM_STOP_GUEST)
        return 0;
    if (stop == VM_STOP_TIMEOUT || stop == VM_STOP_SIGNAL)
        return vm_status;
    fprintf(stderr, "runvm: API mode ended without PUT /shutdown: %s\n",
            s->vm->stop_why ? s->vm->stop_why : "VM stopped");
    return RUNVM_EXIT_INFRA;
}

void api_server_free(struct api_server *s)
{
    if (!s)
        return;
    for (int i = 0; i < API_MAX_CONNS; i++)
        conn_close(&s->conns[i]);
    out_close(s);
    if (s->listen_fd >= 0) {
        evloop_del(s->vm->loop, s->listen_fd);
        close(s->listen_fd);
    }
    if (s->own_sock)
        unlink(s->cfg.sock_path);
    if (s->rundir[0])
        rmdir(s->rundir);
    if (s->timer_fd >= 0) {
        evloop_del(s->vm->loop, s->timer_fd);
        close(s->timer_fd);
    }
    session_free(&s->session);
    free_request(s);
    msg_buf_free(&s->events);
    free(s);
}
