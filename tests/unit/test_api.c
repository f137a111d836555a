/* API mode's server (api/server.c, api/run.c, api/request.c) driven the
 * way a client drives it: real HTTP over its Unix socket, the real agent
 * core forked on a socketpair behind it, the event loop pumped between
 * writes and reads. No KVM: the server gets a zeroed struct vm whose loop
 * is the test's (it uses the VM only for its loop, vm_request_stop and the
 * boot timeline). Every answer is checked to the status and the message
 * of docs/cli.md's "API mode". */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <jansson.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "api/http.h"
#include "api/server.h"
#include "api/server_int.h"
#include "core/evloop.h"
#include "guest-agent/agent.h"
#include "protocol/msg.h"
#include "session/event.h"
#include "tests/unit/agent_fixture.h"
#include "vmm/agent_channel.h"
#include "vmm/vm.h"

#define CONF        "LANG=sh\nTOOLCHAIN=dash\nSOURCE=main.sh\nRUN=sh main.sh\n"
#define NO_ENDPOINT "no such endpoint: POST /start, GET /status, PUT /shutdown"

struct t {
    struct evloop loop;
    struct vm vm;
    struct agent_channel ch;
    struct api_server *api;
    int peer;                   /* the agent's end until it is forked */
    struct agent_fixture agent; /* the real agent core */
    char base[64];              /* the API socket and XDG_RUNTIME_DIR */
    char sock[128];             /* --api-sock */
    /* The last answer. */
    int status;
    json_t *body;
};

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Serves the loop for about ms. evloop_stop is final for a loop (a
 * vm_request_stop calls it): the test starts it over each time. */
static void pump(struct t *t, int ms)
{
    uint64_t v;
    t->loop.stopping = 0;
    ssize_t n = read(t->loop.stop_fd, &v, sizeof(v));
    (void)n;
    int r = evloop_run(&t->loop, ms);
    assert_true(r == 0 || r == -ETIMEDOUT);
}

static void start_agent(struct t *t)
{
    assert_int_equal(agent_fixture_start(&t->agent, t->peer), 0);
    t->peer = -1;
}

/* Breaks the channel: the agent kills a step still running and ends by
 * itself (agent_fixture_stop says why that matters). */
static void stop_agent(struct t *t)
{
    shutdown(t->ch.host_fd, SHUT_RDWR);
    agent_fixture_stop(&t->agent, NULL);
}

/* run_slack_ms, idle_ms and max_buffered for the next server set up (0:
 * the server's defaults); a test that sets them clears them. */
static struct api_server_config limits;

/* A server for lang (and version, with the versions catalog knows) whose
 * agent reads conf. */
static struct t *setup_full(const char *conf, const char *lang,
                            const char *version, const struct catalog *catalog,
                            bool agent)
{
    struct t *t = calloc(1, sizeof(*t));
    int sv[2];
    assert_non_null(t);
    assert_int_equal(evloop_init(&t->loop), 0);
    t->vm.loop = &t->loop;
    t->vm.t_start = now_ns() - 5000000;          /* 5 ms ago */
    t->vm.t_kvm_ready = t->vm.t_start + 1000000; /* at 1 ms */
    t->vm.t_first_run = t->vm.t_start + 2000000; /* at 2 ms */
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    t->ch.host_fd = sv[0];
    t->ch.guest_fd = -1;
    t->peer = sv[1];
    strcpy(t->base, "/tmp/test_api.XXXXXX");
    assert_non_null(mkdtemp(t->base));
    assert_int_equal(agent_fixture_init(&t->agent, "test_api_work", conf), 0);
    snprintf(t->sock, sizeof(t->sock), "%s/api.sock", t->base);
    assert_int_equal(setenv("XDG_RUNTIME_DIR", t->base, 1), 0);
    struct api_server_config cfg = {
        .sock_path = t->sock,
        .expect = {.lang = lang, .version = version},
        .catalog = catalog,
        .run_slack_ms = limits.run_slack_ms,
        .idle_ms = limits.idle_ms,
        .max_buffered = limits.max_buffered,
        .default_run_ms = 10000,
        .default_build_ms = 10000,
    };
    char err[256] = "";
    assert_int_equal(
        api_server_attach(&t->api, &t->vm, &t->ch, &cfg, err, sizeof(err)), 0);
    struct stat st;
    assert_int_equal(stat(t->sock, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    if (agent)
        start_agent(t);
    return t;
}

static struct t *setup_lang(const char *lang, bool agent)
{
    return setup_full(CONF, lang, NULL, NULL, agent);
}

static void teardown(struct t *t)
{
    api_server_free(t->api);
    /* No socket file is left behind, nor the runtime directory. */
    assert_int_equal(access(t->sock, F_OK), -1);
    assert_int_equal(rmdir(t->base), 0);
    close(t->ch.host_fd);
    if (t->peer >= 0)
        close(t->peer);
    /* The host end is closed: the agent ends by itself. */
    agent_fixture_stop(&t->agent, NULL);
    assert_int_equal(agent_fixture_free(&t->agent), 0);
    evloop_free(&t->loop);
    if (t->body)
        json_decref(t->body);
    free(t);
}

/* ---- a client ----------------------------------------------------------- */

static int connect_to(const char *path)
{
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    assert_true(fd >= 0);
    assert_true(strlen(path) < sizeof(addr.sun_path));
    strcpy(addr.sun_path, path);
    assert_int_equal(connect(fd, (struct sockaddr *)&addr, sizeof(addr)), 0);
    return fd;
}

/* Sends what it can of req[*sent..len) without blocking. */
static void send_some(int fd, const char *req, size_t len, size_t *sent)
{
    while (*sent < len) {
        ssize_t n =
            send(fd, req + *sent, len - *sent, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n <= 0) {
            /* EPIPE, ECONNRESET: the server answered and stopped
             * reading; the answer is still there to read. */
            if (n < 0 && errno != EAGAIN)
                *sent = len;
            return;
        }
        *sent += (size_t)n;
    }
}

/* Reads what is there; true at end of stream. */
static bool recv_some(int fd, struct msg_buf *in)
{
    char buf[65536];
    for (;;) {
        ssize_t n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
        if (n > 0) {
            msg_buf_append(in, buf, (size_t)n);
            continue;
        }
        return n == 0 || errno != EAGAIN;
    }
}

/* Pumps until fd's stream ends (the server closes after each answer). */
static void read_to_end(struct t *t, int fd, const char *req, size_t len,
                        size_t sent, struct msg_buf *in)
{
    uint64_t deadline = now_ns() + 20000000000ull;
    for (;;) {
        send_some(fd, req, len, &sent);
        pump(t, 2);
        if (recv_some(fd, in))
            return;
        assert_true(now_ns() < deadline);
    }
}

/* Takes in as an HTTP answer into t->status and t->body. */
static void take_answer(struct t *t, struct msg_buf *in)
{
    msg_buf_append(in, "", 1);
    const char *p = (const char *)in->data;
    assert_non_null(p);
    assert_int_equal(strncmp(p, "HTTP/1.1 ", 9), 0);
    t->status = atoi(p + 9);
    const char *body = strstr(p, "\r\n\r\n");
    assert_non_null(body);
    body += 4;
    const char *cl = strstr(p, "Content-Length: ");
    assert_non_null(cl);
    assert_true(cl < body);
    assert_int_equal(strtoul(cl + 16, NULL, 10), strlen(body));
    assert_non_null(strstr(p, "Content-Type: application/json\r\n"));
    assert_non_null(strstr(p, "Connection: close\r\n"));
    if (t->body)
        json_decref(t->body);
    json_error_t err;
    t->body = json_loads(body, 0, &err);
    assert_non_null(t->body); /* every answer is JSON */
    assert_true(json_is_object(t->body));
    msg_buf_free(in);
}

/* Sends len bytes of req on a connection of its own and takes the
 * answer; returns its status. */
static int request(struct t *t, const char *req, size_t len)
{
    struct msg_buf in;
    msg_buf_init(&in);
    int fd = connect_to(t->sock);
    read_to_end(t, fd, req, len, 0, &in);
    close(fd);
    take_answer(t, &in);
    return t->status;
}

static int req_str(struct t *t, const char *req)
{
    return request(t, req, strlen(req));
}

static int simple(struct t *t, const char *method, const char *path)
{
    char req[256];
    snprintf(req, sizeof(req), "%s %s HTTP/1.1\r\nHost: runvm\r\n\r\n", method,
             path);
    return req_str(t, req);
}

/* POST /start with body (content type ctype, none when NULL). */
static char *start_request(const char *ctype, const char *body, size_t len)
{
    char head[256];
    int n = snprintf(head, sizeof(head),
                     "POST /start HTTP/1.1\r\nHost: runvm\r\n%s%s%s"
                     "Content-Length: %zu\r\n\r\n",
                     ctype ? "Content-Type: " : "", ctype ? ctype : "",
                     ctype ? "\r\n" : "", len);
    char *req = malloc((size_t)n + len + 1);
    assert_non_null(req);
    memcpy(req, head, (size_t)n);
    memcpy(req + n, body, len);
    req[(size_t)n + len] = '\0';
    return req;
}

static int post(struct t *t, const char *ctype, const char *body)
{
    char *req = start_request(ctype, body, strlen(body));
    int status = req_str(t, req);
    free(req);
    return status;
}

static void expect_error(struct t *t, int status, const char *message)
{
    json_t *e = json_object_get(t->body, "error");
    if (!json_is_string(e) || strcmp(json_string_value(e), message) != 0 ||
        t->status != status) {
        char *s = json_dumps(t->body, 0);
        print_error("want %d %s, got %d %s\n", status, message, t->status, s);
        free(s);
        fail();
    }
}

static const char *body_str(struct t *t, const char *key)
{
    json_t *v = json_object_get(t->body, key);
    assert_true(json_is_string(v));
    return json_string_value(v);
}

static json_int_t body_int(json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);
    assert_true(json_is_integer(v));
    return json_integer_value(v);
}

static double body_num(json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);
    assert_true(json_is_number(v));
    return json_number_value(v);
}

static void wait_state(struct t *t, const char *state)
{
    uint64_t deadline = now_ns() + 20000000000ull;
    for (;;) {
        assert_int_equal(simple(t, "GET", "/status"), 200);
        if (strcmp(body_str(t, "state"), state) == 0)
            return;
        pump(t, 10);
        assert_true(now_ns() < deadline);
    }
}

/* ---- runs --------------------------------------------------------------- */

struct events {
    json_t *list;   /* every event, in order */
    json_t *exit;   /* the last, an exit event */
    char out[4096]; /* the run step's stdout */
};

/* Connects to the output socket of the run just started and reads its
 * events to the end of the stream. */
static void read_events(struct t *t, struct events *ev)
{
    char path[256];
    snprintf(path, sizeof(path), "%s", body_str(t, "output_socket"));
    assert_non_null(strstr(path, t->base)); /* in runvm's own directory */
    struct msg_buf in;
    msg_buf_init(&in);
    int fd = connect_to(path);
    read_to_end(t, fd, "", 0, 0, &in);
    close(fd);
    /* The file goes once its reader connects. */
    assert_int_equal(access(path, F_OK), -1);
    msg_buf_append(&in, "", 1);
    *ev = (struct events){.list = json_array()};
    char *save = NULL;
    for (char *line = strtok_r((char *)in.data, "\n", &save); line;
         line = strtok_r(NULL, "\n", &save)) {
        json_error_t err;
        json_t *e = json_loads(line, 0, &err);
        assert_non_null(e);
        assert_int_equal(json_array_append_new(ev->list, e), 0);
        const char *type = json_string_value(json_object_get(e, "type"));
        assert_non_null(type);
        assert_null(ev->exit); /* nothing after the exit event */
        if (strcmp(type, "exit") == 0)
            ev->exit = e;
        if (strcmp(type, "output") == 0 &&
            strcmp(json_string_value(json_object_get(e, "phase")), "run") ==
                0 &&
            strcmp(json_string_value(json_object_get(e, "stream")), "stdout") ==
                0) {
            const char *d = json_string_value(json_object_get(e, "data"));
            assert_non_null(d);
            strncat(ev->out, d, sizeof(ev->out) - strlen(ev->out) - 1);
        }
    }
    assert_non_null(ev->exit);
    msg_buf_free(&in);
}

static void events_free(struct events *ev)
{
    json_decref(ev->list);
}

/* POST /start with body, then its events; returns the exit status. */
static int run(struct t *t, const char *ctype, const char *body,
               struct events *ev)
{
    assert_int_equal(post(t, ctype, body), 200);
    assert_true(body_int(t->body, "id") >= 1);
    read_events(t, ev);
    return (int)body_int(ev->exit, "status");
}

/* A run that must end with status, printing out on stdout. */
static void expect_run(struct t *t, const char *ctype, const char *body,
                       int status, const char *out)
{
    struct events ev;
    int got = run(t, ctype, body, &ev);
    if (got != status || strcmp(ev.out, out) != 0) {
        char *s = json_dumps(ev.list, 0);
        print_error("%s: want %d \"%s\", got %d \"%s\": %s\n", body, status,
                    out, got, ev.out, s);
        free(s);
        fail();
    }
    events_free(&ev);
}

/* ---- the tests ---------------------------------------------------------- */

/* Every method on every endpoint: the right one answers, another gets 405
 * naming the right one; an unknown path gets 404 listing them. */
static void routes(void **state)
{
    (void)state;
    struct t *t = setup_lang("sh", true);
    static const char *const methods[] = {"GET",    "POST", "PUT",
                                          "DELETE", "HEAD", "PATCH"};
    static const struct {
        const char *method, *path;
    } endpoints[] = {
        {"POST", "/start"},
        {"GET", "/status"},
        {"PUT", "/shutdown"},
    };
    for (size_t e = 0; e < 3; e++)
        for (size_t m = 0; m < 6; m++) {
            if (strcmp(methods[m], endpoints[e].method) == 0)
                continue;
            char want[64];
            snprintf(want, sizeof(want), "use %s %s", endpoints[e].method,
                     endpoints[e].path);
            simple(t, methods[m], endpoints[e].path);
            expect_error(t, 405, want);
        }
    static const char *const unknown[] = {"/",        "/nope",  "/start/",
                                          "/status2", "/START", "/run"};
    for (size_t p = 0; p < 6; p++)
        for (size_t m = 0; m < 6; m++) {
            simple(t, methods[m], unknown[p]);
            expect_error(t, 404, NO_ENDPOINT);
        }
    /* The query string plays no part. */
    assert_int_equal(simple(t, "GET", "/status?verbose=1"), 200);
    wait_state(t, "ready");
    expect_run(t, "text/plain", "echo routed", 0, "routed\n");
    assert_int_equal(simple(t, "PUT", "/shutdown"), 200);
    assert_string_equal(body_str(t, "state"), "stopping");
    teardown(t);
}

/* What http_parse refuses, answered with the status and message of each
 * case; the VM stays usable. */
static void malformed_http(void **state)
{
    (void)state;
    struct t *t = setup_lang("sh", true);
    req_str(t, "GARBAGE\r\n\r\n");
    expect_error(t, 400, "malformed HTTP request");
    req_str(t, "GET /status HTTP/2.0\r\n\r\n");
    expect_error(t, 505, "HTTP/1.0 or 1.1 only");
    req_str(t, "LONGMETHOD /status HTTP/1.1\r\n\r\n");
    expect_error(t, 405, "unsupported method");
    char path[300];
    memset(path, 'a', sizeof(path));
    path[0] = '/';
    path[200] = '\0';
    char req[400];
    snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\n\r\n", path);
    req_str(t, req);
    expect_error(t, 414, "path too long");
    req_str(t, "POST /start HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
               "5\r\nhello\r\n0\r\n\r\n");
    expect_error(t, 411,
                 "send a Content-Length (chunked bodies are not accepted)");
    /* Request line and headers over 8 KiB. */
    size_t n = 9000;
    char *big = malloc(n + 64);
    assert_non_null(big);
    int h = sprintf(big, "GET /status HTTP/1.1\r\nX-Pad: ");
    memset(big + h, 'x', n);
    strcpy(big + h + n, "\r\n\r\n");
    req_str(t, big);
    expect_error(t, 431, "headers too large (8 KiB at most)");
    free(big);
    /* A body over 4 MiB: refused from its head, the rest read and
     * dropped so the client sees the answer. */
    size_t len = HTTP_MAX_BODY + 1;
    char *body = malloc(len);
    assert_non_null(body);
    memset(body, 'x', len);
    char *r = start_request("text/plain", body, len);
    request(t, r, strlen(r));
    expect_error(t, 413, "body too large (4 MiB at most)");
    free(r);
    free(body);
    /* Still serving. */
    wait_state(t, "ready");
    expect_run(t, NULL, "echo still here", 0, "still here\n");
    teardown(t);
}

/* Each malformed JSON body gets 400 with the message naming its field. */
static void json_refused(void **state)
{
    (void)state;
    struct t *t = setup_lang("sh", true);
    wait_state(t, "ready");
    static const char limits_msg[] =
        "limits are positive integers: timeout_ms, build_timeout_ms (at "
        "most 600000), memory_bytes, max_procs, max_output_bytes";
    static const char names_msg[] =
        "file names are plain names: letters, digits, . _ - (not first: . or "
        "-)";
    static const char args_msg[] =
        "\"args\" must be a list of 1 to 64 strings (the run argv)";
    static const struct {
        const char *body, *why;
    } cases[] = {
        {"", "body is not a JSON object"},
        {"not json", "body is not a JSON object"},
        {"[1, 2]", "body is not a JSON object"},
        {"\"code\"", "body is not a JSON object"},
        {"{\"code\": \"a\", \"code\": \"b\"}", "body is not a JSON object"},
        {"{\"code\": 1}", "\"code\" must be a string"},
        {"{\"code\": null}", "\"code\" must be a string"},
        {"{\"files\": [\"a\"]}",
         "\"files\" must be an object of file name to content"},
        {"{\"code\": \"x\", \"stdin\": 5}", "\"stdin\" must be a string"},
        {"{\"code\": \"x\", \"keep\": 1}", "\"keep\" must be true or false"},
        {"{\"code\": \"x\", \"submission\": 1}",
         "\"submission\" must be the id a run with \"keep\" answered"},
        {"{\"code\": \"x\", \"submission\": \"\"}",
         "\"submission\" must be the id a run with \"keep\" answered"},
        {"{\"code\": \"x\", \"args\": \"sh\"}", args_msg},
        {"{\"code\": \"x\", \"args\": []}", args_msg},
        {"{\"code\": \"x\", \"args\": [\"sh\", 1]}",
         "\"args\" must be a list of strings"},
        {"{\"code\": \"x\", \"limits\": 5}", "\"limits\" must be an object"},
        {"{\"code\": \"x\", \"reuse\": \"yes\"}",
         "\"reuse\" must be true or false"},
        {"{\"code\": \"x\", \"reuse\": 1}", "\"reuse\" must be true or false"},
        {"{}", "give \"code\" or \"files\""},
        {"{\"stdin\": \"x\", \"reuse\": false}", "give \"code\" or \"files\""},
        {"{\"files\": {\"../x\": \"a\"}}", names_msg},
        {"{\"files\": {\".hidden\": \"a\"}}", names_msg},
        {"{\"files\": {\"\": \"a\"}}", names_msg},
        {"{\"files\": {\"a b\": \"a\"}}", names_msg},
        {"{\"files\": {\"a/b\": \"a\"}}", names_msg},
        {"{\"files\": {\"-o.c\": \"a\"}}", names_msg},
        {"{\"files\": {\"a\": 1}}", "file contents must be strings"},
        {"{\"code\": \"x\", \"limits\": {\"timeout_ms\": 0}}", limits_msg},
        {"{\"code\": \"x\", \"limits\": {\"timeout_ms\": -1}}", limits_msg},
        {"{\"code\": \"x\", \"limits\": {\"timeout_ms\": 600001}}", limits_msg},
        {"{\"code\": \"x\", \"limits\": {\"timeout_ms\": \"5\"}}", limits_msg},
        {"{\"code\": \"x\", \"limits\": {\"timeout_ms\": 1.5}}", limits_msg},
        {"{\"code\": \"x\", \"limits\": {\"build_timeout_ms\": 600001}}",
         limits_msg},
        {"{\"code\": \"x\", \"limits\": {\"memory_bytes\": 1099511627777}}",
         limits_msg},
        {"{\"code\": \"x\", \"limits\": {\"max_procs\": 100001}}", limits_msg},
        {"{\"code\": \"x\", \"limits\": {\"max_output_bytes\": 4294967297}}",
         limits_msg},
        {"{\"code\": \"x\", \"limits\": {\"max_procs\": 0}}", limits_msg},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        post(t, "application/json", cases[i].body);
        expect_error(t, 400, cases[i].why);
    }
    /* 65 args, 17 files. */
    char big[2048] = "{\"code\": \"x\", \"args\": [";
    for (int i = 0; i < 65; i++)
        strcat(big, i ? ", \"a\"" : "\"a\"");
    strcat(big, "]}");
    post(t, "application/json", big);
    expect_error(t, 400, args_msg);
    strcpy(big, "{\"files\": {");
    for (int i = 0; i < 17; i++)
        sprintf(big + strlen(big), "%s\"f%d\": \"\"", i ? ", " : "", i);
    strcat(big, "}}");
    post(t, "application/json", big);
    expect_error(t, 400, "too many files (at most 16)");
    /* Nothing of it reached the agent. */
    assert_int_equal(simple(t, "GET", "/status"), 200);
    assert_int_equal(body_int(t->body, "runs"), 0);
    teardown(t);
}

/* The media types: text and its look-alikes are the source, JSON is
 * parsed (parameters aside), anything else is 415; an empty text body is
 * 400. */
static void content_types(void **state)
{
    (void)state;
    struct t *t = setup_lang("sh", true);
    wait_state(t, "ready");
    post(t, "text/html", "echo x");
    expect_error(t, 415, "send text/plain (the source) or application/json");
    post(t, "multipart/form-data", "echo x");
    expect_error(t, 415, "send text/plain (the source) or application/json");
    post(t, "text/plain", "");
    expect_error(t, 400, "empty body: send the program's source");
    post(t, NULL, "");
    expect_error(t, 400, "empty body: send the program's source");
    expect_run(t, "text/plain", "echo plain", 0, "plain\n");
    expect_run(t, "Text/Plain; charset=utf-8", "echo params", 0, "params\n");
    expect_run(t, NULL, "echo none", 0, "none\n");
    expect_run(t, "application/octet-stream", "echo octets", 0, "octets\n");
    expect_run(t, "application/x-www-form-urlencoded", "echo curl", 0,
               "curl\n");
    expect_run(t, "application/json; charset=utf-8",
               "{\"code\": \"echo json\"}", 0, "json\n");
    /* The program's own exit status is the run's. */
    expect_run(t, "text/plain", "echo three; exit 3", 3, "three\n");
    teardown(t);
}

/* Every JSON field reaches the agent: code, files, stdin, args, limits,
 * reuse. */
static void json_fields(void **state)
{
    (void)state;
    struct t *t = setup_lang("sh", true);
    wait_state(t, "ready");
    expect_run(t, "application/json",
               "{\"code\": \"cat; . ./lib.sh\", \"files\": {\"lib.sh\": "
               "\"echo lib\"}, \"stdin\": \"from stdin\\n\"}",
               0, "from stdin\nlib\n");
    /* files alone, args naming the program. */
    expect_run(t, "application/json",
               "{\"files\": {\"a.sh\": \"echo a $1\"}, \"args\": [\"sh\", "
               "\"a.sh\", \"arg\"]}",
               0, "a arg\n");
    /* args replace the language's run command. */
    expect_run(t, "application/json",
               "{\"code\": \"echo main\", \"args\": [\"echo\", \"args\"]}", 0,
               "args\n");
    /* limits: the time limit stops the run step. */
    struct events ev;
    int status = run(t, "application/json",
                     "{\"code\": \"echo before; sleep 5\", \"limits\": "
                     "{\"timeout_ms\": 300}}",
                     &ev);
    assert_int_equal(status, RUNVM_EXIT_TIMEOUT);
    assert_true(json_is_true(json_object_get(ev.exit, "timed_out")));
    assert_string_equal(ev.out, "before\n");
    events_free(&ev);
    /* Limits at their largest are accepted. */
    expect_run(t, "application/json",
               "{\"code\": \"echo max\", \"limits\": {\"timeout_ms\": 600000, "
               "\"build_timeout_ms\": 600000, \"memory_bytes\": "
               "1099511627776, \"max_output_bytes\": "
               "4294967296}}",
               0, "max\n");
    /* The output cap reaches the agent. */
    status = run(t, "application/json",
                 "{\"code\": \"echo 0123456789abcdef\", \"limits\": "
                 "{\"max_output_bytes\": 4}}",
                 &ev);
    assert_true(json_is_true(json_object_get(ev.exit, "output_truncated")));
    assert_true(strlen(ev.out) <= 4);
    events_free(&ev);
    /* reuse: the same directory, no build; without it a fresh one. */
    expect_run(t, "application/json", "{\"code\": \"echo kept > f.txt\"}", 0,
               "");
    expect_run(t, "application/json",
               "{\"reuse\": true, \"args\": [\"cat\", \"f.txt\"]}", 0,
               "kept\n");
    expect_run(t, "application/json",
               "{\"reuse\": false, \"code\": \"cat f.txt 2>/dev/null || echo "
               "fresh\"}",
               0, "fresh\n");
    teardown(t);
}

/* A request may name the language version it was written for: one this
 * process does not serve is refused, since one API-mode runvm is one
 * language version. /status says which versions there are. */
static void lang_field(void **state)
{
    (void)state;
    char dir[] = "/tmp/test_api_langs.XXXXXX", path[128];
    assert_non_null(mkdtemp(dir));
    static const char *const files[][2] = {
        {"sh@5.2.conf", "LANG=sh\nVERSION=5.2\nDEFAULT=5.2\nALIASES=dash\n"},
        {"sh@5.3.conf", "LANG=sh\nVERSION=5.3\nDEFAULT=5.2\nALIASES=dash\n"},
        {"sh@5.2.cpio", "x"},
        {"sh@5.3.cpio", "x"},
    };
    for (size_t i = 0; i < 4; i++) {
        snprintf(path, sizeof(path), "%s/%s", dir, files[i][0]);
        FILE *f = fopen(path, "w");
        assert_non_null(f);
        fputs(files[i][1], f);
        fclose(f);
    }
    struct catalog c;
    const char *dirs[] = {dir};
    assert_int_equal(catalog_load(&c, dirs, 1), 0);
    struct t *t = setup_full("LANG=sh\nTOOLCHAIN=sh 5.2.15\nSOURCE=main.sh\n"
                             "RUN=sh main.sh\n",
                             "sh", "5.2", &c, true);
    wait_state(t, "ready");
    assert_string_equal(body_str(t, "version"), "5.2");
    json_t *langs = json_object_get(t->body, "langs");
    assert_int_equal(json_array_size(langs), 2);
    assert_true(
        json_is_true(json_object_get(json_array_get(langs, 0), "default")));
    /* The name or an alias, and a version that takes 5.2 (sh@5 does,
     * though 5.3 is the highest 5.x built). */
    static const char *const same[] = {"sh", "sh@5.2", "dash", "dash@5.2",
                                       "sh@5"};
    for (size_t i = 0; i < 5; i++) {
        char body[128];
        snprintf(body, sizeof(body),
                 "{\"lang\": \"%s\", \"code\": \"echo ok\"}", same[i]);
        expect_run(t, "application/json", body, 0, "ok\n");
    }
    static const char *const other[] = {"sh@5.3", "go", "sh@6", "dash@5.20"};
    for (size_t i = 0; i < 4; i++) {
        char body[128], want[256];
        snprintf(body, sizeof(body), "{\"lang\": \"%s\", \"code\": \"echo\"}",
                 other[i]);
        snprintf(want, sizeof(want),
                 "this process serves sh@5.2, not %s: one API-mode runvm is "
                 "one language version; start another with --lang %s",
                 other[i], other[i]);
        post(t, "application/json", body);
        expect_error(t, 400, want);
    }
    post(t, "application/json", "{\"lang\": 5, \"code\": \"echo\"}");
    expect_error(t, 400, "\"lang\" must be a string: LANG or LANG@VERSION");
    /* Not a language at all: refused as such, never matched against the
     * aliases (an empty name once looped on them forever). */
    static const char *const bad[] = {"Sh", "", "sh@latest", "@5", "sh@"};
    for (size_t i = 0; i < 5; i++) {
        char body[128], want[256];
        snprintf(body, sizeof(body), "{\"lang\": \"%s\", \"code\": \"echo\"}",
                 bad[i]);
        snprintf(want, sizeof(want),
                 "\"lang\": \"%s\" is not a language: NAME or NAME@VERSION "
                 "(go, go@1.24, python@3)",
                 bad[i]);
        post(t, "application/json", body);
        expect_error(t, 400, want);
    }
    teardown(t);
    catalog_free(&c);
    for (size_t i = 0; i < 4; i++) {
        snprintf(path, sizeof(path), "%s/%s", dir, files[i][0]);
        assert_int_equal(unlink(path), 0);
    }
    assert_int_equal(rmdir(dir), 0);

    /* With no catalogue (a hand-built --initrd): the name alone. */
    t = setup_lang("sh", true);
    wait_state(t, "ready");
    assert_string_equal(body_str(t, "version"), "");
    assert_null(json_object_get(t->body, "langs"));
    expect_run(t, "application/json",
               "{\"lang\": \"sh\", \"code\": \"echo a\"}", 0, "a\n");
    post(t, "application/json", "{\"lang\": \"sh@1\", \"code\": \"echo\"}");
    expect_error(t, 400,
                 "this process serves sh, not sh@1: one API-mode runvm is one "
                 "language version; start another with --lang sh@1");
    post(t, "application/json", "{\"lang\": \"go\", \"code\": \"echo\"}");
    expect_error(t, 400,
                 "this process serves sh, not go: one API-mode runvm is one "
                 "language version; start another with --lang go");
    teardown(t);
}

/* A reader that connects to its output socket and does not read cannot
 * make runvm hold the run's output: past max_buffered it is cut off, the
 * run goes on to its end and the next one works. */
static void stalled_reader_cut_off(void **state)
{
    (void)state;
    limits = (struct api_server_config){.max_buffered = 256 << 10};
    struct t *t = setup_lang("sh", true);
    limits = (struct api_server_config){0};
    wait_state(t, "ready");
    /* 8 MB of control bytes: 48 MB of JSON escapes. */
    assert_int_equal(post(t, "application/json",
                          "{\"code\": \"head -c 8000000 /dev/zero | tr "
                          "'\\\\0' '\\\\1'\", \"limits\": "
                          "{\"max_output_bytes\": 16000000}}"),
                     200);
    int fd = connect_to(body_str(t, "output_socket"));
    int small = 4096;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
    wait_state(t, "ready"); /* the run ends, unread */
    assert_int_equal(body_int(t->body, "stalled_readers"), 1);
    /* What the reader gets ends without an exit event. */
    struct msg_buf in;
    msg_buf_init(&in);
    uint64_t deadline = now_ns() + 5000000000ull;
    while (!recv_some(fd, &in)) {
        pump(t, 2);
        assert_true(now_ns() < deadline);
    }
    close(fd);
    msg_buf_append(&in, "", 1);
    assert_null(strstr((const char *)in.data, "\"type\":\"exit\""));
    assert_true(in.len < (2u << 20));
    msg_buf_free(&in);
    expect_run(t, "text/plain", "echo next", 0, "next\n");
    teardown(t);
}

/* Connections that send nothing hold their slots idle_ms, then get 408:
 * they cannot lock every other client out. */
static void idle_connections_time_out(void **state)
{
    (void)state;
    limits = (struct api_server_config){.idle_ms = 300};
    struct t *t = setup_lang("sh", true);
    limits = (struct api_server_config){0};
    wait_state(t, "ready");
    int idle[API_MAX_CONNS];
    for (int i = 0; i < API_MAX_CONNS; i++)
        idle[i] = connect_to(t->sock);
    pump(t, 20);
    assert_int_equal(simple(t, "GET", "/status"), 503);
    uint64_t deadline = now_ns() + 5000000000ull;
    while (simple(t, "GET", "/status") != 200) {
        pump(t, 20);
        assert_true(now_ns() < deadline);
    }
    assert_int_equal(body_int(t->body, "idle_closed"), API_MAX_CONNS);
    for (int i = 0; i < API_MAX_CONNS; i++) {
        struct msg_buf in;
        msg_buf_init(&in);
        read_to_end(t, idle[i], "", 0, 0, &in);
        take_answer(t, &in);
        expect_error(t, 408, "no whole request within 300 ms");
        close(idle[i]);
    }
    /* A request sent slowly but within the time is served. */
    int fd = connect_to(t->sock);
    const char *req = "GET /status HTTP/1.1\r\n";
    assert_int_equal(send(fd, req, strlen(req), 0), (ssize_t)strlen(req));
    pump(t, 100);
    struct msg_buf in;
    msg_buf_init(&in);
    read_to_end(t, fd, "\r\n", 2, 0, &in);
    close(fd);
    take_answer(t, &in);
    assert_int_equal(t->status, 200);
    teardown(t);
}

/* A guest that stops keeping a run's limits (here its agent is frozen)
 * does not keep the VM forever: the run fails with 125 at its limits plus
 * the slack, and the VM is stopped. */
static void run_past_deadline_stops_the_vm(void **state)
{
    (void)state;
    limits = (struct api_server_config){.run_slack_ms = 300};
    struct t *t = setup_lang("sh", true);
    limits = (struct api_server_config){0};
    wait_state(t, "ready");
    uint64_t start = now_ns();
    assert_int_equal(post(t, "application/json",
                          "{\"code\": \"sleep 30\", \"limits\": "
                          "{\"timeout_ms\": 200, \"build_timeout_ms\": 100}}"),
                     200);
    kill(t->agent.pid, SIGSTOP);
    struct events ev;
    read_events(t, &ev);
    uint64_t took_ms = (now_ns() - start) / 1000000;
    kill(t->agent.pid, SIGCONT);
    assert_int_equal(body_int(ev.exit, "status"), RUNVM_EXIT_INFRA);
    const char *why = json_string_value(json_object_get(ev.exit, "error"));
    assert_non_null(why);
    assert_non_null(strstr(why, "did not end within its time limits"));
    assert_true(took_ms >= 600 && took_ms < 5000);
    assert_true(vm_stopped(&t->vm));
    assert_int_equal(t->vm.stop_reason, VM_STOP_ERROR);
    assert_string_equal(t->vm.stop_why, "run past its deadline");
    events_free(&ev);
    post(t, "text/plain", "echo no");
    expect_error(t, 503, "the VM is shutting down");
    teardown(t);

    /* A run that ends within its limits is not touched. */
    limits = (struct api_server_config){.run_slack_ms = 300};
    t = setup_lang("sh", true);
    limits = (struct api_server_config){0};
    wait_state(t, "ready");
    expect_run(t, "application/json",
               "{\"code\": \"sleep 0.3; echo in time\", \"limits\": "
               "{\"timeout_ms\": 2000, \"build_timeout_ms\": 100}}",
               0, "in time\n");
    pump(t, 3000);
    assert_false(vm_stopped(&t->vm));
    teardown(t);
}

/* One run at a time: a second POST /start while one runs gets 409, and
 * the first still streams to its exit event. Its id and socket are new
 * for each run, and events wait for a reader that comes late, even past a
 * refused start. */
static void one_run_at_a_time(void **state)
{
    (void)state;
    struct t *t = setup_lang("sh", true);
    wait_state(t, "ready");
    assert_int_equal(post(t, "text/plain", "sleep 1; echo slow"), 200);
    assert_int_equal(body_int(t->body, "id"), 1);
    char first[256];
    snprintf(first, sizeof(first), "%s", body_str(t, "output_socket"));
    json_t *answer = json_incref(t->body);
    assert_int_equal(simple(t, "GET", "/status"), 200);
    assert_string_equal(body_str(t, "state"), "running");
    post(t, "text/plain", "echo second");
    expect_error(t, 409, "a run is in progress; wait for its exit event");
    json_decref(t->body);
    t->body = answer;
    struct events ev;
    read_events(t, &ev);
    assert_int_equal(body_int(ev.exit, "status"), 0);
    assert_string_equal(ev.out, "slow\n");
    events_free(&ev);
    /* A late reader: the run ends first, its events wait. */
    assert_int_equal(post(t, "text/plain", "echo late"), 200);
    assert_int_equal(body_int(t->body, "id"), 2);
    assert_string_not_equal(body_str(t, "output_socket"), first);
    answer = json_incref(t->body);
    wait_state(t, "ready");
    /* A refused start is not a run: the last run's socket stays. */
    post(t, "application/json", "{\"code\": 5}");
    expect_error(t, 400, "\"code\" must be a string");
    json_decref(t->body);
    t->body = answer;
    read_events(t, &ev);
    assert_int_equal(body_int(ev.exit, "status"), 0);
    assert_string_equal(ev.out, "late\n");
    /* Every event is NDJSON of session/event.h. */
    json_t *e0 = json_array_get(ev.list, 0);
    assert_string_equal(json_string_value(json_object_get(e0, "type")),
                        "output");
    assert_true(json_is_integer(json_object_get(ev.exit, "wall_ms")));
    events_free(&ev);
    teardown(t);
}

/* A POST /start that comes while the VM boots waits for the agent's
 * HELLO and is answered then, from the request as it was sent; a second
 * one meanwhile gets 409. */
static void start_while_booting(void **state)
{
    (void)state;
    struct t *t = setup_lang("sh", false);
    assert_int_equal(simple(t, "GET", "/status"), 200);
    assert_string_equal(body_str(t, "state"), "booting");
    assert_string_equal(body_str(t, "lang"), "");
    char *req = start_request("application/json",
                              "{\"code\": \"cat\", \"stdin\": \"waited\"}",
                              strlen("{\"code\": \"cat\", \"stdin\": "
                                     "\"waited\"}"));
    size_t len = strlen(req);
    int fd = connect_to(t->sock);
    size_t sent = 0;
    struct msg_buf in;
    msg_buf_init(&in);
    for (int i = 0; i < 50; i++) {
        send_some(fd, req, len, &sent);
        pump(t, 2);
    }
    assert_int_equal(sent, len);
    /* Bytes after the request change nothing. */
    assert_int_equal(send(fd, "trailing", 8, MSG_NOSIGNAL), 8);
    pump(t, 20);
    assert_false(recv_some(fd, &in));
    assert_int_equal(in.len, 0); /* no answer yet */
    post(t, "text/plain", "echo second");
    expect_error(t, 409, "a run is already waiting for the VM to boot");
    start_agent(t);
    read_to_end(t, fd, req, len, sent, &in);
    close(fd);
    free(req);
    take_answer(t, &in);
    assert_int_equal(t->status, 200);
    assert_int_equal(body_int(t->body, "id"), 1);
    struct events ev;
    read_events(t, &ev);
    assert_int_equal(body_int(ev.exit, "status"), 0);
    assert_string_equal(ev.out, "waited");
    events_free(&ev);
    teardown(t);
}

/* A waiting POST /start whose client leaves is forgotten: the next one
 * may wait instead. */
static void waiting_client_leaves(void **state)
{
    (void)state;
    struct t *t = setup_lang("sh", false);
    char *req = start_request("text/plain", "echo gone", 9);
    int fd = connect_to(t->sock);
    size_t sent = 0;
    for (int i = 0; i < 20; i++) {
        send_some(fd, req, strlen(req), &sent);
        pump(t, 2);
    }
    free(req);
    /* What it sends after its request, and its leaving, are no second
     * request: only GET /status itself counts here. */
    assert_int_equal(send(fd, "trailing", 8, MSG_NOSIGNAL), 8);
    close(fd);
    pump(t, 20);
    assert_int_equal(simple(t, "GET", "/status"), 200);
    assert_int_equal(body_int(t->body, "requests"), 2);
    assert_int_equal(body_int(t->body, "rejected"), 0);
    req = start_request("text/plain", "echo stayed", 11);
    fd = connect_to(t->sock);
    sent = 0;
    for (int i = 0; i < 20; i++) {
        send_some(fd, req, strlen(req), &sent);
        pump(t, 2);
    }
    start_agent(t);
    struct msg_buf in;
    msg_buf_init(&in);
    read_to_end(t, fd, req, strlen(req), sent, &in);
    close(fd);
    free(req);
    take_answer(t, &in);
    assert_int_equal(t->status, 200);
    struct events ev;
    read_events(t, &ev);
    assert_string_equal(ev.out, "stayed\n");
    events_free(&ev);
    teardown(t);
}

/* GET /status: every field of docs/cli.md, counting what happened. */
static void status_fields(void **state)
{
    (void)state;
    struct t *t = setup_lang("sh", true);
    wait_state(t, "ready"); /* 1 or more requests */
    json_int_t before = body_int(t->body, "requests");
    assert_true(before >= 1);
    assert_int_equal(body_int(t->body, "rejected"), 0);
    expect_run(t, "text/plain", "echo counted", 0, "counted\n");
    simple(t, "GET", "/nope"); /* rejected */
    req_str(t, "BAD\r\n\r\n"); /* rejected */
    post(t, "text/html", "x"); /* rejected */
    assert_int_equal(simple(t, "GET", "/status"), 200);
    assert_string_equal(body_str(t, "state"), "ready");
    assert_string_equal(body_str(t, "lang"), "sh");
    assert_string_equal(body_str(t, "toolchain"), "dash");
    assert_string_equal(body_str(t, "agent_version"), AGENT_VERSION);
    json_t *boot = json_object_get(t->body, "boot");
    assert_true(json_is_object(boot));
    assert_true(body_num(boot, "kvm_ready_ms") == 1.0);
    assert_true(body_num(boot, "first_kvm_run_ms") == 2.0);
    assert_true(body_num(boot, "agent_ready_ms") > 5.0);
    assert_true(body_num(t->body, "uptime_ms") >=
                body_num(boot, "agent_ready_ms"));
    assert_int_equal(body_int(t->body, "runs"), 1);
    assert_int_equal(body_int(t->body, "requests"), before + 5);
    assert_int_equal(body_int(t->body, "rejected"), 3);
    json_t *ch = json_object_get(t->body, "channel");
    assert_true(json_is_object(ch));
    assert_true(body_int(ch, "bytes_in") > 0);
    assert_true(body_int(ch, "bytes_out") > 0);
    assert_int_equal(body_int(ch, "dropped_frames"), 0);
    teardown(t);
}

/* PUT /shutdown: 200, then every POST /start gets 503 and the state is
 * stopping; the VM stops after the grace period, and runvm's status is
 * 0. */
static void shutdown_then_503(void **state)
{
    (void)state;
    struct t *t = setup_lang("sh", true);
    wait_state(t, "ready");
    /* Without PUT /shutdown a guest stop is a failure. */
    assert_int_equal(api_server_status(t->api, VM_STOP_GUEST, 0),
                     RUNVM_EXIT_INFRA);
    assert_int_equal(simple(t, "PUT", "/shutdown"), 200);
    assert_string_equal(body_str(t, "state"), "stopping");
    post(t, "text/plain", "echo no");
    expect_error(t, 503, "the VM is shutting down");
    post(t, "application/json", "{\"code\": \"echo no\"}");
    expect_error(t, 503, "the VM is shutting down");
    assert_int_equal(simple(t, "GET", "/status"), 200);
    assert_string_equal(body_str(t, "state"), "stopping");
    /* The agent got SHUTDOWN and ended. */
    int wstatus;
    assert_int_equal(agent_fixture_stop(&t->agent, &wstatus), 0);
    assert_true(WIFEXITED(wstatus));
    assert_int_equal(WEXITSTATUS(wstatus), AGENT_END_SHUTDOWN);
    uint64_t deadline = now_ns() + 5000000000ull;
    while (!vm_stopped(&t->vm) && now_ns() < deadline)
        pump(t, 50);
    assert_int_equal(t->vm.stop_reason, VM_STOP_GUEST);
    assert_string_equal(t->vm.stop_why, "PUT /shutdown");
    assert_int_equal(api_server_status(t->api, VM_STOP_GUEST, 0), 0);
    teardown(t);
}

/* 16 connections at once; the 17th gets 503 and is closed, and a slot
 * freed serves again. */
static void too_many_connections(void **state)
{
    (void)state;
    struct t *t = setup_lang("sh", true);
    int fds[16];
    for (int i = 0; i < 16; i++) {
        fds[i] = connect_to(t->sock);
        pump(t, 2);
    }
    /* All 16 held open, none answered. */
    for (int i = 0; i < 16; i++) {
        struct msg_buf in;
        msg_buf_init(&in);
        assert_false(recv_some(fds[i], &in));
        assert_int_equal(in.len, 0);
    }
    simple(t, "GET", "/status");
    expect_error(t, 503, "too many connections");
    close(fds[0]);
    pump(t, 20);
    assert_int_equal(simple(t, "GET", "/status"), 200);
    for (int i = 1; i < 16; i++)
        close(fds[i]);
    pump(t, 20);
    teardown(t);
}

/* The agent serves another language, or goes away: the VM is stopped as
 * a failure (125), and POST /start is refused from then on. */
static void agent_failures_stop_the_vm(void **state)
{
    (void)state;
    struct t *t = setup_lang("go", true);
    uint64_t deadline = now_ns() + 20000000000ull;
    while (!vm_stopped(&t->vm) && now_ns() < deadline)
        pump(t, 10);
    assert_int_equal(t->vm.stop_reason, VM_STOP_ERROR);
    assert_string_equal(t->vm.stop_why, "wrong language image");
    assert_int_equal(api_server_status(t->api, VM_STOP_ERROR, 0),
                     RUNVM_EXIT_INFRA);
    post(t, "text/plain", "echo no");
    expect_error(t, 503, "the VM is shutting down");
    teardown(t);

    t = setup_lang("sh", true);
    wait_state(t, "ready");
    /* An agent that dies at once, not one that ends: it is idle, so no
     * step of it is left behind. */
    kill(t->agent.pid, SIGKILL);
    assert_int_equal(agent_fixture_stop(&t->agent, NULL), 0);
    deadline = now_ns() + 20000000000ull;
    while (!vm_stopped(&t->vm) && now_ns() < deadline)
        pump(t, 10);
    assert_int_equal(t->vm.stop_reason, VM_STOP_ERROR);
    assert_string_equal(t->vm.stop_why, "agent channel closed");
    assert_int_equal(simple(t, "GET", "/status"), 200);
    assert_string_equal(body_str(t, "state"), "stopping");
    teardown(t);
}

/* A run the agent cannot finish still ends its stream with an exit
 * event: status 125 and why. */
static void failed_run_ends_with_exit(void **state)
{
    (void)state;
    struct t *t = setup_lang("sh", true);
    wait_state(t, "ready");
    assert_int_equal(post(t, "text/plain", "sleep 5"), 200);
    json_t *answer = json_incref(t->body);
    pump(t, 50);
    stop_agent(t); /* the channel breaks mid-run */
    json_decref(t->body);
    t->body = answer;
    struct events ev;
    read_events(t, &ev);
    assert_int_equal(body_int(ev.exit, "status"), RUNVM_EXIT_INFRA);
    assert_true(json_is_string(json_object_get(ev.exit, "error")));
    events_free(&ev);
    teardown(t);
}

/* The VM stops under a run (a guest triple fault, runvm signalled): the
 * run's stream ends with an exit event that says so, not with nothing,
 * and a start waiting for the VM is refused. */
static void vm_stop_ends_the_run(void **state)
{
    (void)state;
    struct t *t = setup_lang("sh", true);
    wait_state(t, "ready");
    assert_int_equal(post(t, "text/plain", "echo started; sleep 5"), 200);
    char path[256];
    snprintf(path, sizeof(path), "%s", body_str(t, "output_socket"));
    int fd = connect_to(path);
    struct timeval tv = {.tv_sec = 5};
    assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)),
                     0);
    pump(t, 300); /* the reader is taken, the step runs */
    vm_request_stop(&t->vm, VM_STOP_ERROR, "guest triple fault (reset)", 0);
    assert_int_equal(api_server_status(t->api, VM_STOP_ERROR, 0),
                     RUNVM_EXIT_INFRA);
    struct msg_buf in;
    msg_buf_init(&in);
    char buf[4096];
    ssize_t n;
    while ((n = recv(fd, buf, sizeof(buf), 0)) > 0) /* sent already */
        msg_buf_append(&in, buf, (size_t)n);
    assert_int_equal(n, 0);
    close(fd);
    msg_buf_append(&in, "", 1);
    const char *last = strrchr((const char *)in.data, '{');
    json_error_t err;
    json_t *e = json_loads(last, 0, &err);
    assert_non_null(e);
    assert_int_equal(body_int(e, "status"), RUNVM_EXIT_INFRA);
    assert_string_equal(json_string_value(json_object_get(e, "error")),
                        "the VM stopped during the run: guest triple fault "
                        "(reset)");
    json_decref(e);
    msg_buf_free(&in);
    teardown(t);

    /* A start waiting for a VM that never comes. */
    t = setup_lang("sh", false);
    char *req = start_request("text/plain", "echo never", 10);
    size_t len = strlen(req), sent = 0;
    fd = connect_to(t->sock);
    for (int i = 0; i < 50 && sent < len; i++) {
        send_some(fd, req, len, &sent);
        pump(t, 2);
    }
    pump(t, 20);
    vm_request_stop(&t->vm, VM_STOP_SIGNAL, "signal", 0);
    api_server_status(t->api, VM_STOP_SIGNAL, SIGTERM);
    msg_buf_init(&in);
    read_to_end(t, fd, req, len, sent, &in);
    close(fd);
    free(req);
    take_answer(t, &in);
    expect_error(t, 503, "the VM stopped: signal");
    teardown(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(routes),
        cmocka_unit_test(malformed_http),
        cmocka_unit_test(json_refused),
        cmocka_unit_test(content_types),
        cmocka_unit_test(json_fields),
        cmocka_unit_test(one_run_at_a_time),
        cmocka_unit_test(lang_field),
        cmocka_unit_test(stalled_reader_cut_off),
        cmocka_unit_test(idle_connections_time_out),
        cmocka_unit_test(run_past_deadline_stops_the_vm),
        cmocka_unit_test(start_while_booting),
        cmocka_unit_test(waiting_client_leaves),
        cmocka_unit_test(status_fields),
        cmocka_unit_test(shutdown_then_503),
        cmocka_unit_test(too_many_connections),
        cmocka_unit_test(agent_failures_stop_the_vm),
        cmocka_unit_test(vm_stop_ends_the_run),
        cmocka_unit_test(failed_run_ends_with_exit),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
