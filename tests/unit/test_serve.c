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
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

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

static int fake_child(const char *lang)
{
    if (!strncmp(lang, "broken", 6))
        return 125;
    int lfd = 3;
    (void)fcntl(lfd, F_SETFL, 0); /* blocking */
    int c = accept(lfd, NULL, NULL);
    if (c < 0)
        return 1;
    char req[65536];
    size_t len = 0;
    char *body = NULL;
    size_t clen = 0;
    for (;;) {
        ssize_t n = read(c, req + len, sizeof(req) - 1 - len);
        if (n <= 0)
            return 2;
        len += (size_t)n;
        req[len] = '\0';
        char *end = strstr(req, "\r\n\r\n");
        if (!end)
            continue;
        char *cl = strstr(req, "Content-Length: ");
        clen = cl ? strtoul(cl + 16, NULL, 10) : 0;
        if (len >= (size_t)(end + 4 - req) + clen) {
            body = end + 4;
            body[clen] = '\0';
            break;
        }
    }
    char dir[] = "/tmp/fake-serve-XXXXXX";
    if (!mkdtemp(dir))
        return 3;
    char path[128];
    snprintf(path, sizeof(path), "%s/out.sock", dir);
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    snprintf(a.sun_path, sizeof(a.sun_path), "%.100s", path);
    int ofd = socket(AF_UNIX, SOCK_STREAM, 0);
    if (bind(ofd, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(ofd, 1) < 0)
        return 4;
    char resp[512], json[256];
    int jl = snprintf(json, sizeof(json),
                      "{\"id\":1,\"output_socket\":\"%s\"}\n", path);
    int rl = snprintf(resp, sizeof(resp),
                      "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                      "Content-Length: %d\r\nConnection: close\r\n\r\n%s",
                      jl, json);
    put_all(c, resp, (size_t)rl);
    close(c);
    int r = accept(ofd, NULL, NULL);
    unlink(path);
    rmdir(dir);
    if (r < 0)
        return 5;
    char text[256] = "";
    unsigned int ms = 0;
    json_t *j = body[0] == '{' ? json_loads(body, 0, NULL) : NULL;
    if (j)
        body = strdup(json_string_value(json_object_get(j, "code")));
    if (!strncmp(body, "echo ", 5))
        snprintf(text, sizeof(text), "%.200s", body + 5);
    else if (sscanf(body, "sleep %u %200s", &ms, text) < 1)
        snprintf(text, sizeof(text), "?");
    char ev[512];
    int el = snprintf(ev, sizeof(ev),
                      "{\"type\":\"output\",\"stream\":\"stdout\",\"data\":"
                      "\"%s\"}\n",
                      text);
    put_all(r, ev, (size_t)el);
    if (!strcmp(body, "die"))
        _exit(7);
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
    static const char ex[] = "{\"type\":\"exit\",\"phase\":\"run\","
                             "\"exit_code\":0,\"status\":0}\n";
    put_all(r, ex, sizeof(ex) - 1);
    close(r);
    for (;;)
        pause(); /* as API mode: until stopped */
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
        };
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
        cmocka_unit_test(queue_then_429),
        cmocka_unit_test(a_vm_that_dies_ends_its_run_with_125),
        cmocka_unit_test(a_reader_that_leaves_cancels_the_run),
        cmocka_unit_test(a_language_whose_vms_die_is_refused),
        cmocka_unit_test(sigterm_drains_then_exits_0),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
