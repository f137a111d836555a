/* runvm serve (api/serve.c) driven over its socket, with this binary as
 * its children: started as `--lang LANG --api-fd 3 ...`, it plays an
 * API-mode runvm that answers one POST /start and streams a scripted run
 * (no KVM here; tests/integration/39-serve.t runs real VMs). The body of
 * a request is the script: "echo TEXT", "sleep MS TEXT" (the exit event
 * comes MS later), "die" (the child dies mid-run, no exit event). A child
 * of the language "broken" exits at once, as a runvm without its image. */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "api/judge.h"
#include "api/serve.h"

/* ---- the fake child -------------------------------------------------- */

static void put_all(int fd, const char *s, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, s, len);
        if (n <= 0)
            _exit(9);
        s += n;
        len -= (size_t)n;
    }
}

/* One POST /start on the API socket: the body into body (NUL-ended). */
static bool fake_request(int lfd, char *req, size_t cap, char **body)
{
    int c = accept(lfd, NULL, NULL);
    if (c < 0)
        return false;
    size_t len = 0;
    for (;;) {
        ssize_t n = read(c, req + len, cap - 1 - len);
        if (n <= 0)
            _exit(2);
        len += (size_t)n;
        req[len] = '\0';
        char *end = strstr(req, "\r\n\r\n");
        if (!end)
            continue;
        char *cl = strstr(req, "Content-Length: ");
        size_t clen = cl ? strtoul(cl + 16, NULL, 10) : 0;
        if (len >= (size_t)(end + 4 - req) + clen) {
            *body = end + 4;
            (*body)[clen] = '\0';
            break;
        }
    }
    /* A body naming "refuseme" is refused, as API mode refuses a bad one. */
    if (strstr(*body, "refuseme")) {
        static const char no[] =
            "HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\n"
            "Content-Length: 21\r\nConnection: close\r\n\r\n"
            "{\"error\":\"refused\"}\n";
        put_all(c, no, sizeof(no) - 1);
        close(c);
        return fake_request(lfd, req, cap, body);
    }
    /* The answer: an output socket, as API mode's. */
    static int seq;
    char dir[] = "/tmp/fake-serve-XXXXXX";
    if (!mkdtemp(dir))
        _exit(3);
    char path[128], resp[512], json[256];
    snprintf(path, sizeof(path), "%s/out-%d.sock", dir, ++seq);
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    snprintf(a.sun_path, sizeof(a.sun_path), "%.100s", path);
    int ofd = socket(AF_UNIX, SOCK_STREAM, 0);
    if (bind(ofd, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(ofd, 1) < 0)
        _exit(4);
    int jl = snprintf(json, sizeof(json),
                      "{\"id\":%d,\"output_socket\":\"%s\"}\n", seq, path);
    int rl = snprintf(resp, sizeof(resp),
                      "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                      "Content-Length: %d\r\nConnection: close\r\n\r\n%s",
                      jl, json);
    put_all(c, resp, (size_t)rl);
    close(c);
    int r = accept(ofd, NULL, NULL);
    unlink(path);
    rmdir(dir);
    close(ofd);
    if (r < 0)
        _exit(5);
    if (r != 4) { /* the stream, for fake_run */
        dup2(r, 4);
        close(r);
    }
    return true;
}

static void emit(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void emit(const char *fmt, ...)
{
    char ev[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(ev, sizeof(ev), fmt, ap);
    va_end(ap);
    put_all(4, ev, (size_t)n);
}

#define STEP_FIELDS "\"wall_ms\":5,\"cpu_ms\":1,\"peak_memory_bytes\":4096,"
#define FLAGS(to, trunc, oom)                                                  \
    "\"timed_out\":" to ",\"output_truncated\":" trunc ",\"oom_killed\":" oom

/* Plays one run of script (what was sent as the program) with stdin in
 * on the stream at fd 4: "echo TEXT", "sleep MS TEXT", "die" (no exit
 * event: the child dies), "cat" (stdin to stdout), "args" (the argv it
 * was given), "crash" (signal 11), "tle" (timed out), "oom",
 * "buildfail" (a failed build), "dieon:X" (dies when stdin is X, else
 * cat). reused: no build step. */
static void fake_run(const char *script, const char *in, json_t *args,
                     bool reused)
{
    if (!reused && !strcmp(script, "buildtle")) {
        emit("{\"type\":\"exit\",\"phase\":\"build\",\"exit_code\":null,"
             "\"signal\":9," STEP_FIELDS FLAGS("true", "false",
                                               "false") ",\"status\":124}\n");
        return;
    }
    unsigned int code;
    if (sscanf(script, "exit%u", &code) == 1) {
        if (!reused)
            emit("{\"type\":\"step\",\"phase\":\"build\",\"exit_code\":0,"
                 "\"signal\":null," STEP_FIELDS FLAGS("false", "false",
                                                      "false") "}\n");
        emit("{\"type\":\"exit\",\"phase\":\"run\",\"exit_code\":%u,"
             "\"signal\":null," STEP_FIELDS FLAGS("false", "false",
                                                  "false") ",\"status\":%u}\n",
             code, code);
        return;
    }
    if (!reused && !strcmp(script, "buildfail")) {
        emit("{\"type\":\"output\",\"phase\":\"build\",\"stream\":"
             "\"stderr\",\"data\":\"syntax error\\n\"}\n");
        emit("{\"type\":\"exit\",\"phase\":\"build\",\"exit_code\":1,"
             "\"signal\":null," STEP_FIELDS FLAGS(
                 "false", "false", "false") ",\"status\":126}\n");
        return;
    }
    if (!reused)
        emit("{\"type\":\"step\",\"phase\":\"build\",\"exit_code\":0,"
             "\"signal\":null," STEP_FIELDS FLAGS("false", "false",
                                                  "false") "}\n");
    char text[256] = "";
    unsigned int ms = 0;
    if (!strcmp(script, "die") ||
        (!strncmp(script, "dieon:", 6) && !strcmp(in, script + 6))) {
        emit("{\"type\":\"output\",\"stream\":\"stdout\",\"data\":"
             "\"?\"}\n");
        _exit(7);
    }
    if (!strncmp(script, "echo ", 5))
        snprintf(text, sizeof(text), "%.200s", script + 5);
    else if (!strcmp(script, "cat") || !strncmp(script, "dieon:", 6))
        snprintf(text, sizeof(text), "%.200s", in);
    else if (!strcmp(script, "args")) {
        size_t i;
        json_t *a;
        json_array_foreach(args, i, a)
        {
            size_t l = strlen(text);
            snprintf(text + l, sizeof(text) - l, "%s%s", i ? " " : "",
                     json_string_value(a));
        }
    } else if (sscanf(script, "sleep %u %200s", &ms, text) < 1)
        snprintf(text, sizeof(text), "%s", script);
    char esc[600];
    size_t e = 0;
    for (size_t i = 0; text[i] && e < sizeof(esc) - 3; i++) {
        if (text[i] == '\n') {
            esc[e++] = '\\';
            esc[e++] = 'n';
        } else {
            esc[e++] = text[i];
        }
    }
    esc[e] = '\0';
    emit("{\"type\":\"output\",\"phase\":\"run\",\"stream\":\"stdout\","
         "\"data\":\"%s\"}\n",
         esc);
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
    if (!strcmp(script, "crash"))
        emit("{\"type\":\"exit\",\"phase\":\"run\",\"exit_code\":null,"
             "\"signal\":11," STEP_FIELDS FLAGS("false", "false",
                                                "false") ",\"status\":139}\n");
    else if (!strcmp(script, "tle"))
        emit("{\"type\":\"exit\",\"phase\":\"run\",\"exit_code\":null,"
             "\"signal\":9," STEP_FIELDS FLAGS("true", "false",
                                               "false") ",\"status\":124}\n");
    else if (!strcmp(script, "oom"))
        emit("{\"type\":\"exit\",\"phase\":\"run\",\"exit_code\":null,"
             "\"signal\":9," STEP_FIELDS FLAGS("false", "false",
                                               "true") ",\"status\":137}\n");
    else
        emit("{\"type\":\"exit\",\"phase\":\"run\",\"exit_code\":0,"
             "\"signal\":null," STEP_FIELDS FLAGS("false", "false",
                                                  "false") ",\"status\":0}\n");
}

static int fake_child(const char *lang)
{
    if (!strncmp(lang, "broken", 6))
        return 125;
    (void)fcntl(3, F_SETFL, 0); /* blocking */
    static char req[1 << 20];
    char *body, *script = NULL;
    while (fake_request(3, req, sizeof(req), &body)) {
        json_t *j = body[0] == '{' ? json_loads(body, 0, NULL) : NULL;
        const char *code = json_string_value(json_object_get(j, "code"));
        const char *in = json_string_value(json_object_get(j, "stdin"));
        bool reuse = json_is_true(json_object_get(j, "reuse"));
        if (!reuse) {
            free(script);
            script = strdup(j ? (code ? code : "") : body);
        }
        fake_run(script, in ? in : "", json_object_get(j, "args"), reuse);
        close(4);
        json_decref(j);
    }
    return 1;
}

/* ---- the daemon under test -------------------------------------------- */

static char exe[PATH_MAX];

struct t {
    char dir[64];
    char sock[128];
    pid_t pid;
    struct catalog cat;
    struct catalog_entry e[2];
};

static char listen_spec[32]; /* start()'s --listen, "" for none */
static uint64_t keep_ms;     /* start()'s keep_ms, 0 for the default */

static struct t *start(unsigned int max_vms, unsigned int queue,
                       unsigned int warm, bool with_broken)
{
    struct t *t = calloc(1, sizeof(*t));
    snprintf(t->dir, sizeof(t->dir), "/tmp/test-serve-XXXXXX");
    assert_non_null(mkdtemp(t->dir));
    snprintf(t->sock, sizeof(t->sock), "%s/api.sock", t->dir);
    snprintf(t->e[0].lang, sizeof(t->e[0].lang), "broken");
    snprintf(t->e[1].lang, sizeof(t->e[1].lang), "fake");
    for (int i = 0; i < 2; i++) {
        snprintf(t->e[i].version, sizeof(t->e[i].version), "1.0");
        snprintf(t->e[i].image, sizeof(t->e[i].image), "/nonexistent");
        t->e[i].is_default = true;
    }
    t->cat = (struct catalog){.n = 2, .e = t->e};
    t->pid = fork();
    assert_true(t->pid >= 0);
    if (t->pid == 0) {
        static const char *const args[] = {"--mem", "64", NULL};
        struct serve_config cfg = {
            .sock_path = t->sock,
            .catalog = &t->cat,
            .max_vms = max_vms,
            .queue = queue,
            .warm = warm,
            .exe = exe,
            .child_args = args,
            .default_run_ms = 10000,
            .default_build_ms = 10000,
            .keep_ms = keep_ms,
        };
        static const char *const run[] = {"./main", NULL};
        cfg.run_argv[0] = run;
        cfg.compiled[0] = true;
        cfg.listen = listen_spec[0] ? listen_spec : NULL;
        cfg.langs[cfg.nlangs++] = &t->e[1];
        if (with_broken)
            cfg.langs[cfg.nlangs++] = &t->e[0];
        setenv("XDG_RUNTIME_DIR", t->dir, 1);
        _exit(serve_main(&cfg));
    }
    for (int i = 0; i < 500; i++) {
        struct stat st;
        if (stat(t->sock, &st) == 0)
            return t;
        usleep(10000);
    }
    fail_msg("no socket %s", t->sock);
    return NULL;
}

/* SIGTERM, and the daemon's exit status. */
static int stop(struct t *t)
{
    kill(t->pid, SIGTERM);
    int st = 0;
    assert_int_equal(waitpid(t->pid, &st, 0), t->pid);
    struct stat sb;
    assert_int_not_equal(stat(t->sock, &sb), 0); /* removed */
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", t->dir);
    assert_int_equal(system(cmd), 0);
    free(t);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static int dial(const char *path)
{
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    snprintf(a.sun_path, sizeof(a.sun_path), "%s", path);
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct timeval tv = {20, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    return fd;
}

/* Sends a request; its connection, for answer(). */
static int ask(struct t *t, const char *method, const char *path,
               const char *type, const char *body)
{
    int fd = dial(t->sock);
    char head[512];
    int n = snprintf(head, sizeof(head),
                     "%s %s HTTP/1.1\r\nHost: x\r\nContent-Type: %s\r\n"
                     "Content-Length: %zu\r\n\r\n",
                     method, path, type, body ? strlen(body) : 0);
    put_all(fd, head, (size_t)n);
    if (body)
        put_all(fd, body, strlen(body));
    return fd;
}

/* Everything up to EOF on fd (then closed). */
static char *slurp(int fd)
{
    size_t cap = 65536, len = 0;
    char *buf = malloc(cap);
    for (;;) {
        ssize_t n = read(fd, buf + len, cap - 1 - len);
        if (n <= 0)
            break;
        len += (size_t)n;
    }
    buf[len] = '\0';
    close(fd);
    return buf;
}

/* The status of the answer on fd; its body into body (json). */
static int answer(int fd, json_t **body)
{
    char *resp = slurp(fd);
    int status = 0;
    assert_int_equal(sscanf(resp, "HTTP/1.1 %d", &status), 1);
    char *b = strstr(resp, "\r\n\r\n");
    assert_non_null(b);
    if (body) {
        *body = json_loads(b + 4, 0, NULL);
        assert_non_null(*body);
    }
    free(resp);
    return status;
}

static int request(struct t *t, const char *method, const char *path,
                   const char *type, const char *body, json_t **out)
{
    return answer(ask(t, method, path, type, body), out);
}

/* POST /start with a text script; the output socket's path. */
static char *start_run(struct t *t, const char *script)
{
    json_t *j;
    int st = request(t, "POST", "/start?lang=fake", "text/plain", script, &j);
    assert_int_equal(st, 200);
    const char *p = json_string_value(json_object_get(j, "output_socket"));
    assert_non_null(p);
    assert_non_null(strstr(p, "/runvm-serve."));
    char *path = strdup(p);
    json_decref(j);
    return path;
}

static char *read_events(const char *path)
{
    return slurp(dial(path));
}

static json_int_t status_int(struct t *t, const char *a, const char *b)
{
    json_t *j;
    (void)request(t, "GET", "/status", "text/plain", NULL, &j);
    json_t *v = json_object_get(j, a);
    if (b)
        v = json_object_get(v, b);
    json_int_t n = json_integer_value(v);
    json_decref(j);
    return n;
}

/* Waits up to 10 s for GET /status's a.b to be want. */
static void wait_status(struct t *t, const char *a, const char *b,
                        json_int_t want)
{
    for (int i = 0; i < 1000; i++) {
        if (status_int(t, a, b) == want)
            return;
        usleep(10000);
    }
    fail_msg("status %s.%s never became %lld (is %lld)", a, b ? b : "",
             (long long)want, (long long)status_int(t, a, b));
}

/* Sends the whole request raw over TCP to listen_spec's port; everything
 * back. */
static char *tcp_send(const char *raw)
{
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)atoi(listen_spec + 10)),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct timeval tv = {20, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    put_all(fd, raw, strlen(raw));
    return slurp(fd);
}

/* A request over TCP: the whole answer. */
static char *tcp_request(const char *method, const char *path,
                         const char *extra_head, const char *body)
{
    size_t blen = body ? strlen(body) : 0;
    char *raw = malloc(512 + blen);
    assert_non_null(raw);
    snprintf(raw, 512 + blen,
             "%s %s HTTP/1.1\r\nHost: x\r\n%.300sContent-Length: %zu\r\n"
             "\r\n%s",
             method, path, extra_head, blen, body ? body : "");
    char *resp = tcp_send(raw);
    free(raw);
    return resp;
}

/* The body of a chunked answer, de-chunked; NULL if malformed. */
static char *dechunk(const char *resp)
{
    const char *p = strstr(resp, "\r\n\r\n");
    if (!p)
        return NULL;
    p += 4;
    char *out = calloc(1, strlen(p) + 1);
    size_t len = 0;
    for (;;) {
        char *end;
        unsigned long n = strtoul(p, &end, 16);
        if (end == p || strncmp(end, "\r\n", 2)) {
            free(out);
            return NULL;
        }
        p = end + 2;
        if (n == 0)
            return out;
        memcpy(out + len, p, n);
        len += n;
        p += n + 2;
    }
}

/* ---- tests -------------------------------------------------------------- */

static void hello_in_a_vm_of_its_own(void **state)
{
    (void)state;
    struct t *t = start(2, 8, 1, false);
    wait_status(t, "vms", "idle", 1); /* --warm 1 */
    char *p = start_run(t, "echo hi");
    char *ev = read_events(p);
    assert_non_null(strstr(ev, "\"data\":\"hi\""));
    assert_non_null(strstr(ev, "{\"type\":\"exit\",\"phase\":\"run\""));
    struct stat st;
    assert_int_not_equal(stat(p, &st), 0); /* the output socket is gone */
    free(ev);
    free(p);
    /* The VM that ran it is stopped, another is warm in its place. */
    wait_status(t, "vms", "busy", 0);
    wait_status(t, "vms", "stopping", 0);
    wait_status(t, "vms", "idle", 1);
    assert_int_equal(status_int(t, "submissions", NULL), 1);
    /* JSON with "lang" works as ?lang= does. */
    json_t *j;
    assert_int_equal(request(t, "POST", "/start", "application/json",
                             "{\"lang\":\"fake@1\",\"code\":\"echo json\"}",
                             &j),
                     200);
    char *ev2 =
        read_events(json_string_value(json_object_get(j, "output_socket")));
    assert_non_null(strstr(ev2, "\"data\":\"json\""));
    free(ev2);
    json_decref(j);
    assert_int_equal(stop(t), 0);
}

static void bad_requests_are_refused_without_a_vm(void **state)
{
    (void)state;
    struct t *t = start(1, 1, 0, false);
    json_t *j;
    assert_int_equal(request(t, "GET", "/nope", "text/plain", NULL, &j), 404);
    json_decref(j);
    assert_int_equal(request(t, "DELETE", "/start", "text/plain", NULL, &j),
                     405);
    json_decref(j);
    assert_int_equal(
        request(t, "POST", "/start?lang=cobol", "text/plain", "x", &j), 400);
    assert_non_null(strstr(json_string_value(json_object_get(j, "error")),
                           "serves fake@1.0"));
    json_decref(j);
    assert_int_equal(
        request(t, "POST", "/start", "application/json",
                "{\"lang\":\"fake\",\"code\":\"x\",\"reuse\":true}", &j),
        400);
    json_decref(j);
    assert_int_equal(
        request(t, "POST", "/start", "application/json", "{\"code\": 5}", &j),
        400);
    json_decref(j);
    /* One language served: a text body needs no ?lang=. */
    char *ev = NULL;
    assert_int_equal(request(t, "POST", "/start", "text/plain", "echo one", &j),
                     200);
    ev = read_events(json_string_value(json_object_get(j, "output_socket")));
    assert_non_null(strstr(ev, "\"data\":\"one\""));
    free(ev);
    json_decref(j);
    assert_int_equal(status_int(t, "submissions", NULL), 1);
    assert_int_equal(stop(t), 0);
}

/* POST /start as JSON on the Unix socket: status, and the answer. */
static int start_json(struct t *t, const char *body, json_t **j)
{
    return request(t, "POST", "/start", "application/json", body, j);
}

/* "keep": true keeps the submission's VM for its next run, which names
 * the submission; "reuse" then runs in the same directory, with no build
 * step. A run without "keep" ends it; so does waiting too long. */
static void a_kept_submission_runs_again_in_its_vm(void **state)
{
    (void)state;
    keep_ms = 3000;
    struct t *t = start(2, 8, 0, false);
    json_t *j, *k;
    assert_int_equal(
        start_json(t,
                   "{\"lang\":\"fake\",\"code\":\"cat\",\"stdin\":\"one\","
                   "\"keep\":true}",
                   &j),
        200);
    const char *token = json_string_value(json_object_get(j, "submission"));
    assert_non_null(token);
    assert_int_equal(strlen(token), 32);
    char *ev =
        read_events(json_string_value(json_object_get(j, "output_socket")));
    assert_non_null(strstr(ev, "\"data\":\"one\""));
    assert_non_null(strstr(ev, "\"phase\":\"build\""));
    free(ev);
    wait_status(t, "vms", "kept", 1);
    /* The next run: same VM (its id), same program, another stdin, no
     * build step; kept again. It is sent before the last run's events are
     * read: each run has an output socket of its own. */
    char body[256];
    snprintf(body, sizeof(body),
             "{\"submission\":\"%s\",\"reuse\":true,\"stdin\":\"two\","
             "\"keep\":true}",
             token);
    assert_int_equal(start_json(t, body, &k), 200);
    assert_int_equal(json_integer_value(json_object_get(k, "id")),
                     json_integer_value(json_object_get(j, "id")));
    assert_string_equal(json_string_value(json_object_get(k, "submission")),
                        token);
    ev = read_events(json_string_value(json_object_get(k, "output_socket")));
    assert_non_null(strstr(ev, "\"data\":\"two\""));
    assert_null(strstr(ev, "\"phase\":\"build\""));
    free(ev);
    json_decref(k);
    wait_status(t, "vms", "kept", 1);
    /* A run the VM refuses is no run: the submission keeps its VM. */
    snprintf(body, sizeof(body),
             "{\"submission\":\"%s\",\"code\":\"refuseme\",\"keep\":true}",
             token);
    assert_int_equal(start_json(t, body, &k), 400);
    json_decref(k);
    assert_int_equal(status_int(t, "vms", "kept"), 1);
    /* A run of a submission whose last run still goes: 409. */
    json_t *s2;
    assert_int_equal(
        start_json(t, "{\"code\":\"sleep 500 z\",\"keep\":true}", &s2), 200);
    snprintf(body, sizeof(body), "{\"submission\":\"%s\",\"reuse\":true}",
             json_string_value(json_object_get(s2, "submission")));
    assert_int_equal(start_json(t, body, &k), 409);
    json_decref(k);
    ev = read_events(json_string_value(json_object_get(s2, "output_socket")));
    free(ev);
    json_decref(s2);
    /* A token with more after it is not the token. */
    snprintf(body, sizeof(body), "{\"submission\":\"%sXX\",\"reuse\":true}",
             token);
    assert_int_equal(start_json(t, body, &k), 404);
    json_decref(k);
    assert_int_equal(status_int(t, "submissions", NULL), 2);
    /* Refused: reuse without a submission, one unknown, a bad one. */
    assert_int_equal(start_json(t,
                                "{\"lang\":\"fake\",\"reuse\":true,"
                                "\"stdin\":\"x\"}",
                                &k),
                     400);
    assert_non_null(
        strstr(json_string_value(json_object_get(k, "error")), "submission"));
    json_decref(k);
    assert_int_equal(
        start_json(t,
                   "{\"submission\":\"00000000000000000000000000000000\","
                   "\"reuse\":true}",
                   &k),
        404);
    json_decref(k);
    assert_int_equal(start_json(t, "{\"submission\":5,\"reuse\":true}", &k),
                     400);
    json_decref(k);
    assert_int_equal(start_json(t, "{\"code\":\"x\",\"keep\":\"yes\"}", &k),
                     400);
    json_decref(k);
    /* A run without "keep" is the submission's last. */
    snprintf(body, sizeof(body),
             "{\"submission\":\"%s\",\"reuse\":true,\"stdin\":\"three\"}",
             token);
    assert_int_equal(start_json(t, body, &k), 200);
    assert_null(json_object_get(k, "submission"));
    ev = read_events(json_string_value(json_object_get(k, "output_socket")));
    assert_non_null(strstr(ev, "\"data\":\"three\""));
    free(ev);
    json_decref(k);
    wait_status(t, "vms", "kept", 0);
    assert_int_equal(start_json(t, body, &k), 404);
    json_decref(k);
    json_decref(j);
    /* One kept and never continued is stopped after keep_ms. */
    assert_int_equal(start_json(t, "{\"code\":\"echo a\",\"keep\":true}", &j),
                     200);
    ev = read_events(json_string_value(json_object_get(j, "output_socket")));
    free(ev);
    json_decref(j);
    wait_status(t, "vms", "kept", 1);
    wait_status(t, "vms", "kept", 0);
    wait_status(t, "vms", "stopping", 0);
    keep_ms = 0;
    assert_int_equal(stop(t), 0);

    /* A request waiting for a VM comes before a kept submission: with
     * one VM, the kept one makes room. */
    t = start(1, 4, 0, false);
    assert_int_equal(start_json(t, "{\"code\":\"echo a\",\"keep\":true}", &j),
                     200);
    ev = read_events(json_string_value(json_object_get(j, "output_socket")));
    free(ev);
    wait_status(t, "vms", "kept", 1);
    char *p = start_run(t, "echo waited");
    ev = read_events(p);
    assert_non_null(strstr(ev, "\"data\":\"waited\""));
    free(ev);
    free(p);
    snprintf(body, sizeof(body), "{\"submission\":\"%s\",\"reuse\":true}",
             json_string_value(json_object_get(j, "submission")));
    assert_int_equal(start_json(t, body, &k), 404);
    json_decref(k);
    json_decref(j);
    assert_int_equal(stop(t), 0);
}

static void queue_then_429(void **state)
{
    (void)state;
    struct t *t = start(2, 1, 0, false);
    char *a = start_run(t, "sleep 1500 a");
    char *b = start_run(t, "sleep 1500 b");
    /* Two VMs busy: the third waits, the fourth is turned away. */
    int c = ask(t, "POST", "/start?lang=fake", "text/plain", "echo c");
    wait_status(t, "queue", "length", 1);
    int d = ask(t, "POST", "/start?lang=fake", "text/plain", "echo d");
    char *resp = slurp(d);
    assert_non_null(strstr(resp, "HTTP/1.1 429 "));
    assert_non_null(strstr(resp, "Retry-After: 1\r\n"));
    free(resp);
    char *ea = read_events(a), *eb = read_events(b);
    assert_non_null(strstr(ea, "\"data\":\"a\""));
    assert_non_null(strstr(eb, "\"data\":\"b\""));
    assert_non_null(strstr(ea, "\"status\":0}"));
    json_t *j;
    assert_int_equal(answer(c, &j), 200); /* c had its turn */
    char *ec =
        read_events(json_string_value(json_object_get(j, "output_socket")));
    assert_non_null(strstr(ec, "\"data\":\"c\""));
    json_decref(j);
    free(ea);
    free(eb);
    free(ec);
    free(a);
    free(b);
    assert_int_equal(status_int(t, "refused_busy", NULL), 1);
    assert_int_equal(stop(t), 0);
}

static void a_vm_that_dies_ends_its_run_with_125(void **state)
{
    (void)state;
    struct t *t = start(1, 4, 0, false);
    char *p = start_run(t, "die");
    char *ev = read_events(p);
    assert_non_null(strstr(ev, "\"type\":\"exit\",\"status\":125,"));
    assert_non_null(strstr(ev, "exited with status 7"));
    free(ev);
    free(p);
    wait_status(t, "vm_failures", NULL, 1);
    /* The daemon serves on. */
    p = start_run(t, "echo after");
    ev = read_events(p);
    assert_non_null(strstr(ev, "\"data\":\"after\""));
    free(ev);
    free(p);
    assert_int_equal(stop(t), 0);
}

static void a_reader_that_leaves_cancels_the_run(void **state)
{
    (void)state;
    struct t *t = start(1, 4, 0, false);
    char *p = start_run(t, "sleep 60000 long");
    int fd = dial(p);
    char buf[64];
    assert_true(read(fd, buf, sizeof(buf)) > 0); /* the first event */
    close(fd);
    wait_status(t, "cancelled", NULL, 1);
    wait_status(t, "vms", "busy", 0);
    wait_status(t, "vms", "stopping", 0);
    free(p);
    assert_int_equal(stop(t), 0);
}

static void a_language_whose_vms_die_is_refused(void **state)
{
    (void)state;
    struct t *t = start(2, 4, 1, true);
    /* --warm 1 starts "broken" children, which die: after 3 the language
     * is paused, the other one unaffected. */
    json_t *j = NULL;
    int st = 0;
    for (int i = 0; i < 500; i++) {
        st = request(t, "POST", "/start?lang=broken", "text/plain", "x", &j);
        if (st == 503)
            break;
        json_decref(j);
        j = NULL;
        usleep(10000);
    }
    assert_int_equal(st, 503);
    json_decref(j);
    for (int i = 0; i < 500; i++) {
        assert_int_equal(request(t, "GET", "/status", "text/plain", NULL, &j),
                         200);
        json_t *b = json_array_get(json_object_get(j, "langs"), 1);
        bool failing = json_is_true(json_object_get(b, "failing"));
        if (failing)
            assert_string_equal(
                json_string_value(json_object_get(b, "last_failure")),
                "its runvm exited with status 125");
        json_decref(j);
        if (failing)
            break;
        assert_int_not_equal(i, 499);
        usleep(10000);
    }
    char *p = start_run(t, "echo fine");
    char *ev = read_events(p);
    assert_non_null(strstr(ev, "\"data\":\"fine\""));
    free(ev);
    free(p);
    assert_int_equal(stop(t), 0);
}

static void sigterm_drains_then_exits_0(void **state)
{
    (void)state;
    struct t *t = start(2, 4, 1, false);
    char *p = start_run(t, "sleep 1000 drained");
    kill(t->pid, SIGTERM);
    json_t *j;
    int st = 0;
    for (int i = 0; i < 100 && st != 503; i++) {
        st = request(t, "GET", "/status", "text/plain", NULL, &j);
        if (st != 503)
            json_decref(j);
    }
    assert_int_equal(st, 503);
    assert_true(json_is_true(json_object_get(j, "draining")));
    json_decref(j);
    assert_int_equal(
        request(t, "POST", "/start?lang=fake", "text/plain", "echo late", &j),
        503);
    json_decref(j);
    /* What was taken finishes. */
    char *ev = read_events(p);
    assert_non_null(strstr(ev, "\"data\":\"drained\""));
    assert_non_null(strstr(ev, "\"status\":0}"));
    free(ev);
    free(p);
    int status = 0;
    assert_int_equal(waitpid(t->pid, &status, 0), t->pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    struct stat sb;
    assert_int_not_equal(stat(t->sock, &sb), 0);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", t->dir);
    assert_int_equal(system(cmd), 0);
    free(t);
}

/* The JSON body of a whole (not chunked) answer, and its status. */
static json_t *body_of(const char *resp, int *status)
{
    assert_int_equal(sscanf(resp, "HTTP/1.1 %d", status), 1);
    const char *b = strstr(resp, "\r\n\r\n");
    assert_non_null(b);
    json_t *j = json_loads(b + 4, 0, NULL);
    assert_non_null(j);
    return j;
}

static const char *str_at(json_t *j, const char *a, const char *b)
{
    return json_string_value(json_object_get(json_object_get(j, a), b));
}

static void piston_and_tcp(void **state)
{
    (void)state;
    snprintf(listen_spec, sizeof(listen_spec), "127.0.0.1:%d",
             20000 + getpid() % 20000);
    struct t *t = start(2, 8, 1, false);
    int st;
    char *resp = NULL;
    for (int i = 0; i < 500 && !resp; i++) { /* the TCP listener is up */
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in a = {.sin_family = AF_INET,
                                .sin_port =
                                    htons((uint16_t)atoi(listen_spec + 10)),
                                .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        bool up = connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
        close(fd);
        if (up)
            resp = tcp_request("GET", "/api/v2/runtimes", "", NULL);
        else
            usleep(10000);
    }
    assert_non_null(resp);
    json_t *j = body_of(resp, &st);
    assert_int_equal(st, 200);
    assert_int_equal(json_array_size(j), 1);
    assert_string_equal(
        json_string_value(json_object_get(json_array_get(j, 0), "language")),
        "fake");
    assert_string_equal(
        json_string_value(json_object_get(json_array_get(j, 0), "version")),
        "1.0");
    json_decref(j);
    free(resp);
    /* As the npm piston-client sends it: no Content-Type, its defaults. */
    resp = tcp_request(
        "POST", "/api/v2/execute", "",
        "{\"language\":\"fake\",\"version\":\"1.0\",\"files\":[{\"content\":"
        "\"args\"}],\"stdin\":\"\",\"args\":[\"1\",\"2\",\"3\"],"
        "\"compile_timeout\":10000,\"run_timeout\":3000,"
        "\"compile_memory_limit\":-1,\"run_memory_limit\":-1}");
    j = body_of(resp, &st);
    assert_int_equal(st, 200);
    assert_string_equal(json_string_value(json_object_get(j, "language")),
                        "fake");
    assert_string_equal(json_string_value(json_object_get(j, "version")),
                        "1.0");
    assert_string_equal(str_at(j, "run", "stdout"), "./main 1 2 3");
    assert_string_equal(str_at(j, "run", "output"), "./main 1 2 3");
    assert_int_equal(
        json_integer_value(json_object_get(json_object_get(j, "run"), "code")),
        0);
    assert_true(
        json_is_null(json_object_get(json_object_get(j, "run"), "signal")));
    assert_int_equal(json_integer_value(json_object_get(
                         json_object_get(j, "compile"), "code")),
                     0);
    json_decref(j);
    free(resp);
    /* "fake:1" and "*" pick the version; a crash has a signal, no code. */
    resp = tcp_request("POST", "/api/v2/execute", "",
                       "{\"language\":\"fake:1\",\"version\":\"*\","
                       "\"files\":[{\"name\":\"x.f\",\"content\":\"crash\"}]}");
    j = body_of(resp, &st);
    assert_int_equal(st, 200);
    assert_string_equal(str_at(j, "run", "signal"), "SIGSEGV");
    assert_true(
        json_is_null(json_object_get(json_object_get(j, "run"), "code")));
    json_decref(j);
    free(resp);
    /* A failed build: "compile" says so, no "run". */
    resp = tcp_request("POST", "/api/v2/execute", "",
                       "{\"language\":\"fake\",\"version\":\"1.0\","
                       "\"files\":[{\"content\":\"buildfail\"}]}");
    j = body_of(resp, &st);
    assert_int_equal(st, 200);
    assert_string_equal(str_at(j, "compile", "stderr"), "syntax error\n");
    assert_null(json_object_get(j, "run"));
    json_decref(j);
    free(resp);
    /* Errors as Piston's: 400 {"message"}. */
    const char *bad[] = {
        "{\"language\":\"cobol\",\"version\":\"1\",\"files\":[{\"content\":"
        "\"x\"}]}",
        "{\"language\":\"fake\",\"version\":\"1.0\",\"files\":[]}",
        "{\"language\":\"fake\",\"version\":\"1.0\",\"files\":[{\"content\":"
        "\"x\"}],\"run_timeout\":600001}",
        "{\"language\":\"fake\",\"version\":\"1.0\",\"files\":[{\"content\":"
        "\"x\"},{\"content\":\"y\"}]}",
        "[1]",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        resp = tcp_request("POST", "/api/v2/execute", "", bad[i]);
        j = body_of(resp, &st);
        if (st != 400 || !json_is_string(json_object_get(j, "message")))
            fail_msg("%s: %s", bad[i], resp);
        json_decref(j);
        free(resp);
    }
    /* POST /start over TCP: the answer is the event stream. */
    resp = tcp_request("POST", "/start?lang=fake",
                       "Content-Type: text/plain\r\n", "echo tcp");
    assert_non_null(strstr(resp, "HTTP/1.1 200 "));
    assert_non_null(strstr(resp, "Transfer-Encoding: chunked\r\n"));
    char *ev = dechunk(resp);
    assert_non_null(ev);
    assert_non_null(strstr(ev, "\"data\":\"tcp\""));
    assert_non_null(strstr(ev, "{\"type\":\"exit\",\"phase\":\"run\""));
    free(ev);
    free(resp);
    /* A stream whose VM dies ends with the failure's exit event. */
    resp = tcp_request("POST", "/start?lang=fake",
                       "Content-Type: text/plain\r\n", "die");
    ev = dechunk(resp);
    assert_non_null(ev);
    assert_non_null(strstr(ev, "\"type\":\"exit\",\"status\":125,"));
    free(ev);
    free(resp);
    /* An HTTP/1.0 client gets the stream unchunked, ended by the close. */
    resp = tcp_send("POST /start?lang=fake HTTP/1.0\r\nContent-Type: "
                    "text/plain\r\nContent-Length: 8\r\n\r\necho old");
    assert_null(strstr(resp, "Transfer-Encoding"));
    ev = strstr(resp, "\r\n\r\n");
    assert_non_null(ev);
    assert_true(ev[4] == '{');
    assert_non_null(strstr(ev, "\"data\":\"old\""));
    assert_non_null(strstr(ev, "\"status\":0}\n"));
    assert_true(resp[strlen(resp) - 1] == '\n');
    free(resp);
    /* Kept over TCP: the submission is a header of the stream's answer,
     * and its next run streams in the same VM. */
    resp = tcp_request("POST", "/start", "Content-Type: application/json\r\n",
                       "{\"code\":\"cat\",\"stdin\":\"a\",\"keep\":true}");
    const char *h = strstr(resp, "\r\nRunvm-Submission: ");
    assert_non_null(h);
    char body[160];
    snprintf(body, sizeof(body),
             "{\"submission\":\"%.32s\",\"reuse\":true,\"stdin\":\"b\"}",
             h + 20);
    free(resp);
    resp = tcp_request("POST", "/start", "Content-Type: application/json\r\n",
                       body);
    ev = dechunk(resp);
    assert_non_null(ev);
    assert_non_null(strstr(ev, "\"data\":\"b\""));
    assert_null(strstr(ev, "\"phase\":\"build\""));
    free(ev);
    free(resp);
    listen_spec[0] = '\0';
    assert_int_equal(stop(t), 0);
}

/* A TCP client that hangs up while its request waits in the queue leaves
 * it (EPOLLRDHUP: a held connection reads nothing). */
static void tcp_client_leaving_the_queue(void **state)
{
    (void)state;
    snprintf(listen_spec, sizeof(listen_spec), "127.0.0.1:%d",
             20000 + (getpid() + 7) % 20000);
    struct t *t = start(1, 4, 0, false);
    char *p = start_run(t, "sleep 3000 busy");
    int fd = -1;
    for (int i = 0; i < 500 && fd < 0; i++) {
        fd = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in a = {.sin_family = AF_INET,
                                .sin_port =
                                    htons((uint16_t)atoi(listen_spec + 10)),
                                .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        if (connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
            close(fd);
            fd = -1;
            usleep(10000);
        }
    }
    static const char req[] = "POST /start?lang=fake HTTP/1.1\r\nHost: x\r\n"
                              "Content-Type: text/plain\r\nContent-Length: 6"
                              "\r\n\r\necho q";
    put_all(fd, req, sizeof(req) - 1);
    wait_status(t, "queue", "length", 1);
    close(fd);
    wait_status(t, "queue", "length", 0);
    assert_int_equal(status_int(t, "cancelled", NULL), 1);
    char *ev = read_events(p);
    assert_non_null(strstr(ev, "\"data\":\"busy\""));
    free(ev);
    free(p);
    listen_spec[0] = '\0';
    assert_int_equal(stop(t), 0);
}

/* POST /judge on the Unix socket; the answer's JSON. */
static json_t *judge(struct t *t, const char *body)
{
    json_t *j;
    int st = request(t, "POST", "/judge", "application/json", body, &j);
    if (st != 200)
        fail_msg("judge %s: %d %s", body, st, json_dumps(j, 0));
    return j;
}

static const char *verdict(json_t *j, size_t k)
{
    return json_string_value(json_object_get(
        json_array_get(json_object_get(j, "cases"), k), "verdict"));
}

static void judge_cases(void **state)
{
    (void)state;
    struct t *t = start(2, 8, 1, false);
    json_t *j =
        judge(t, "{\"lang\":\"fake\",\"code\":\"cat\",\"cases\":["
                 "{\"stdin\":\"a\\n\",\"expected_stdout\":\"a\"},"
                 "{\"stdin\":\"b  \\n\\n\",\"expected_stdout\":\"b\\n\"},"
                 "{\"stdin\":\"x\",\"expected_stdout\":\"y\"},"
                 "{\"stdin\":\"free\"}]}");
    assert_string_equal(str_at(j, "build", "status"), "ok");
    assert_string_equal(verdict(j, 0), "accepted");
    assert_string_equal(verdict(j, 1), "accepted");
    assert_string_equal(verdict(j, 2), "wrong_answer");
    assert_string_equal(verdict(j, 3), "accepted"); /* nothing expected */
    assert_string_equal(
        json_string_value(json_object_get(
            json_array_get(json_object_get(j, "cases"), 2), "stdout")),
        "x");
    json_decref(j);
    j = judge(t, "{\"lang\":\"fake\",\"code\":\"cat\",\"compare\":\"exact\","
                 "\"cases\":[{\"stdin\":\"a\\n\",\"expected_stdout\":\"a\"},"
                 "{\"stdin\":\"a\\n\",\"expected_stdout\":\"a\\n\"}]}");
    assert_string_equal(verdict(j, 0), "wrong_answer");
    assert_string_equal(verdict(j, 1), "accepted");
    json_decref(j);
    /* A program's own exit(124), (125), (126) are runtime errors, not
     * runvm's statuses; a build that times out is a failed build. */
    static const struct {
        const char *code, *want;
    } one[] = {{"crash", "runtime_error"},   {"tle", "time_limit"},
               {"oom", "memory_limit"},      {"exit124", "runtime_error"},
               {"exit125", "runtime_error"}, {"exit126", "runtime_error"},
               {"exit0", "accepted"},        {"buildtle", "compile_error"}};
    for (size_t i = 0; i < sizeof(one) / sizeof(one[0]); i++) {
        char body[256];
        snprintf(body, sizeof(body),
                 "{\"lang\":\"fake\",\"code\":\"%s\",\"cases\":[{}]}",
                 one[i].code);
        j = judge(t, body);
        assert_string_equal(verdict(j, 0), one[i].want);
        json_decref(j);
    }
    j = judge(t,
              "{\"lang\":\"fake\",\"code\":\"buildfail\",\"cases\":[{},{}]}");
    assert_string_equal(str_at(j, "build", "status"), "failed");
    assert_string_equal(str_at(j, "build", "stderr"), "syntax error\n");
    assert_string_equal(verdict(j, 0), "compile_error");
    assert_string_equal(verdict(j, 1), "compile_error");
    json_decref(j);
    /* The VM dies in the second case: it and the rest are internal
     * errors, the answer still 200. */
    j = judge(t, "{\"lang\":\"fake\",\"code\":\"dieon:2\",\"cases\":["
                 "{\"stdin\":\"1\",\"expected_stdout\":\"1\"},"
                 "{\"stdin\":\"2\"},{\"stdin\":\"3\"}]}");
    assert_string_equal(verdict(j, 0), "accepted");
    assert_string_equal(verdict(j, 1), "internal_error");
    assert_string_equal(verdict(j, 2), "internal_error");
    assert_non_null(json_object_get(
        json_array_get(json_object_get(j, "cases"), 1), "error"));
    json_decref(j);
    /* GET /metrics: Prometheus text with what just happened. */
    char *m = slurp(ask(t, "GET", "/metrics", "text/plain", NULL));
    assert_non_null(strstr(m, "HTTP/1.1 200 "));
    assert_non_null(strstr(m, "Content-Type: text/plain; version=0.0.4"));
    assert_non_null(
        strstr(m, "runvm_serve_verdicts_total{verdict=\"accepted\"} 6\n"));
    assert_non_null(
        strstr(m, "runvm_serve_verdicts_total{verdict=\"compile_error\"} 3\n"));
    assert_non_null(
        strstr(m, "runvm_serve_submissions_total{route=\"judge\"} 12\n"));
    assert_non_null(strstr(m, "# TYPE runvm_serve_queue_seconds histogram\n"));
    assert_non_null(strstr(m, "runvm_serve_queue_seconds_count 12\n"));
    assert_non_null(
        strstr(m, "runvm_serve_request_seconds_bucket{le=\"+Inf\"} "));
    assert_non_null(
        strstr(m, "runvm_serve_resident_bytes{process=\"daemon\"} "));
    free(m);
    int st = request(t, "POST", "/judge", "application/json",
                     "{\"lang\":\"fake\",\"code\":\"x\",\"cases\":[]}", &j);
    assert_int_equal(st, 400);
    json_decref(j);
    st = request(t, "POST", "/judge", "application/json",
                 "{\"lang\":\"fake\",\"code\":\"x\",\"cases\":[{\"limits\":"
                 "{\"timeout_ms\":0}}]}",
                 &j);
    assert_int_equal(st, 400);
    json_decref(j);
    assert_int_equal(stop(t), 0);
}

/* api/judge.c's comparison, pure. */
static void output_comparison(void **state)
{
    (void)state;
    static const struct {
        const char *a, *b;
        bool lines, exact;
    } cases[] = {
        {"a\nb\n", "a\nb", true, false},
        {"a  \nb\t\n\n\n", "a\nb", true, false},
        {"a\r\nb\r\n", "a\nb\n", true, false},
        {"a\n\nb", "a\nb", false, false}, /* inner empty lines count */
        {" a", "a", false, false},        /* leading blanks count */
        {"", "\n\n", true, false},
        {"", "", true, true},
        {"ab", "a", false, false},
        {"a\n", "a\n", true, true},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *a = cases[i].a, *b = cases[i].b;
        if (judge_same_output(a, strlen(a), b, strlen(b), false) !=
                cases[i].lines ||
            judge_same_output(b, strlen(b), a, strlen(a), false) !=
                cases[i].lines ||
            judge_same_output(a, strlen(a), b, strlen(b), true) !=
                cases[i].exact)
            fail_msg("case %zu: \"%s\" vs \"%s\"", i, a, b);
    }
}

int main(int argc, char **argv)
{
    for (int i = 1; i + 1 < argc; i++)
        if (!strcmp(argv[i], "--lang"))
            return fake_child(argv[i + 1]);
    ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    if (n <= 0)
        return 1;
    exe[n] = '\0';
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(hello_in_a_vm_of_its_own),
        cmocka_unit_test(bad_requests_are_refused_without_a_vm),
        cmocka_unit_test(a_kept_submission_runs_again_in_its_vm),
        cmocka_unit_test(queue_then_429),
        cmocka_unit_test(a_vm_that_dies_ends_its_run_with_125),
        cmocka_unit_test(a_reader_that_leaves_cancels_the_run),
        cmocka_unit_test(a_language_whose_vms_die_is_refused),
        cmocka_unit_test(sigterm_drains_then_exits_0),
        cmocka_unit_test(piston_and_tcp),
        cmocka_unit_test(tcp_client_leaving_the_queue),
        cmocka_unit_test(judge_cases),
        cmocka_unit_test(output_comparison),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
