/* libFuzzer target: API mode's POST /start from bytes to the RUN on the
 * wire. api/http.c's http_parse takes the request, api/request.c's
 * api_request_parse its body under its media type, and
 * session/agent_client.c's agent_client_run (what session_run does with
 * it) sends it to a fake agent on a socketpair, which decodes the RUN and
 * compares it with the request: what the API accepts reaches the agent
 * whole, and is something the agent can carry out (plain file names, at
 * most one file named by lang.conf, limits in range).
 *
 * Byte 0 even: the rest is the connection's bytes, head and body. Byte 0
 * odd: byte 1 picks a media type from TYPES and the rest is the body, so
 * the JSON parser is reached without an HTTP head in front. */
#include <errno.h>
#include <limits.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "api/http.h"
#include "api/request.h"
#include "protocol/version.h"
#include "session/agent_client.h"
#include "tests/fuzz/check.h"
#include "tests/fuzz/pump.h"

#define RUN_MS   30000
#define BUILD_MS 60000

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* What http_parse gives: lower case, no parameters. */
static const char *const TYPES[] = {
    "application/json",
    "text/plain",
    "",
    "application/octet-stream",
    "application/x-www-form-urlencoded",
    "text/html",
    "application/json-seq",
    "multipart/form-data",
};

/* The fake agent's view of the one RUN it got. */
struct agent_end {
    const struct agent_request *want;
    uint32_t id;
    int runs;
};

/* A name the agent writes into its work directory (workdir_valid_name):
 * not empty, at most NAME_MAX, no '/', not "." or "..". */
static bool agent_takes_name(const char *n)
{
    size_t len = strlen(n);
    return len > 0 && len <= NAME_MAX && !strchr(n, '/') && strcmp(n, ".") &&
           strcmp(n, "..");
}

/* What api_request_parse promises of a request it accepts. */
static void check_request(const struct api_request *r)
{
    const struct agent_request *run = &r->run;
    /* No file at all is allowed: docs/cli.md asks for "code", "files" or
     * "reuse", and "files": {} is one. */
    check_that(run->nfiles <= API_MAX_FILES, "more files than API_MAX_FILES");
    int unnamed = 0;
    for (size_t i = 0; i < run->nfiles; i++) {
        const struct agent_file *f = &run->files[i];
        check_that(f->data || f->len == 0, "file data missing");
        if (!f->name || !f->name[0])
            unnamed++;
        else
            check_that(agent_takes_name(f->name),
                       "a file name the agent refuses");
    }
    check_that(unnamed <= 1, "two files for lang.conf's SOURCE");
    if (run->run_argv) {
        size_t n = 0;
        while (run->run_argv[n])
            n++;
        check_that(n >= 1 && n <= API_MAX_ARGS, "argv count out of range");
    }
    check_that(run->limits.wall_ms >= 1 &&
                   run->limits.wall_ms <= API_MAX_LIMIT_MS,
               "run time limit out of range");
    check_that(run->has_build_limits && run->build_limits.wall_ms >= 1 &&
                   run->build_limits.wall_ms <= API_MAX_LIMIT_MS,
               "build time limit out of range");
    check_that(!run->build_argv && !run->env && !run->stdin_open,
               "the API set what it never sets");
    /* "lang", whatever it holds, through the one NAME[@VERSION] parser
     * (api/run.c serves): a spec it takes is exactly its two parts. */
    struct lang_spec ls;
    if (r->lang && lang_spec_parse(r->lang, strlen(r->lang), &ls)) {
        char back[LANG_NAME_MAX + LANG_VERSION_MAX + 2];
        snprintf(back, sizeof(back), "%s%s%s", ls.name,
                 ls.version[0] ? "@" : "", ls.version);
        check_that(ls.name[0] && strcmp(back, r->lang) == 0,
                   "a language spec that is not its name and version");
    }
}

static bool bytes_equal(struct msg_bytes b, const void *p, size_t len)
{
    return b.len == len && (len == 0 || memcmp(b.p, p, len) == 0);
}

static void compare_run(const struct agent_request *want,
                        const struct msg_run *got)
{
    check_that(got->flags == want->flags, "RUN flags differ");
    check_that(got->nfiles == want->nfiles, "RUN file count differs");
    for (size_t i = 0; i < want->nfiles; i++) {
        const struct agent_file *f = &want->files[i];
        const char *name = f->name ? f->name : "";
        check_that(bytes_equal(got->files[i].name, name, strlen(name)),
                   "RUN file name differs");
        check_that(bytes_equal(got->files[i].data, f->data, f->len),
                   "RUN file data differs");
    }
    check_that(bytes_equal(got->stdin_data, want->stdin_data, want->stdin_len),
               "RUN stdin differs");
    check_that(!got->build_argv.present && !got->env.present,
               "RUN has lists the request did not");
    check_that(got->run_argv.present == (want->run_argv != NULL),
               "RUN argv presence differs");
    if (want->run_argv) {
        const char *argv[API_MAX_ARGS + 2];
        int n = msg_strlist_split(&got->run_argv, argv, API_MAX_ARGS + 2);
        check_that(n >= 0, "RUN argv does not split");
        for (int i = 0; i < n; i++)
            check_that(want->run_argv[i] && !strcmp(argv[i], want->run_argv[i]),
                       "RUN argv differs");
        check_that(want->run_argv[n] == NULL, "RUN argv is short");
    }
    check_that(!memcmp(&got->limits, &want->limits, sizeof(got->limits)) &&
                   got->has_build_limits == want->has_build_limits &&
                   !memcmp(&got->build_limits, &want->build_limits,
                           sizeof(got->build_limits)),
               "RUN limits differ");
}

static void agent_got(void *opaque, const struct msg_view *v)
{
    struct agent_end *a = opaque;
    struct msg_run run;
    check_that(v->type == MSG_RUN && v->id == a->id, "not the RUN sent");
    check_that(msg_decode_run(v, &run) == 0, "the RUN sent does not decode");
    compare_run(a->want, &run);
    a->runs++;
}

static void agent_dropped(void *opaque, int err)
{
    (void)opaque;
    (void)err;
    check_that(false, "the agent dropped a frame runvm sent");
}

/* Sends the request as session_run would, to a fake agent that already
 * said HELLO, and checks what arrives. */
static void send_run(struct evloop *loop, const struct agent_request *req)
{
    static const struct agent_client_ops ops;
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
        return;
    struct agent_client c;
    struct agent_end a = {.want = req};
    struct msg_reader reader;
    check_that(agent_client_init(&c, loop, sv[0], &ops, NULL) == 0 &&
                   msg_reader_init(&reader, agent_got, agent_dropped, &a) == 0,
               "setting up the channel failed");

    struct msg_buf m, wire;
    msg_buf_init(&m);
    msg_buf_init(&wire);
    struct msg_hello h = {.agent_version = {(const uint8_t *)"0.2.0", 5}};
    check_that(msg_build_hello(&m, 0, &h) == 0 &&
                   msg_slip_append(&wire, m.data, m.len) == 0 &&
                   write(sv[1], wire.data, wire.len) == (ssize_t)wire.len,
               "sending HELLO failed");
    pump_ready(loop);
    check_that(c.have_hello, "HELLO was not taken");

    int ret = agent_client_run(&c, req, &a.id);
    check_that(ret == 0, "agent_client_run refused a request the API took");
    uint8_t buf[65536];
    for (unsigned int round = 0;; round++) {
        ssize_t n = recv(sv[1], buf, sizeof(buf), MSG_DONTWAIT);
        if (n > 0) {
            msg_reader_feed(&reader, buf, (size_t)n);
            continue;
        }
        if (agent_client_queued(&c) == 0)
            break;
        check_that(!c.closed && round < 100000, "the RUN was not all sent");
        pump_ready(loop); /* EPOLLOUT: the client writes the rest */
    }
    check_that(a.runs == 1, "not exactly one RUN arrived");
    msg_reader_free(&reader);
    msg_buf_free(&m);
    msg_buf_free(&wire);
    agent_client_free(&c);
    close(sv[0]);
    close(sv[1]);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct evloop loop;
    if (loop.epfd == 0 && evloop_init(&loop) < 0)
        return 0;
    if (size < 2)
        return 0;
    const char *type, *body;
    size_t len;
    struct http_request req;
    if (data[0] & 1) {
        type = TYPES[data[1] % (sizeof(TYPES) / sizeof(TYPES[0]))];
        body = (const char *)data + 2;
        len = size - 2;
    } else {
        if (http_parse((const char *)data + 1, size - 1, HTTP_MAX_BODY, &req) !=
            1)
            return 0;
        type = req.content_type;
        body = req.body;
        len = req.content_length;
    }
    struct api_request r;
    const char *why = NULL;
    int status = api_request_parse(&r, type, body, len, RUN_MS, BUILD_MS, &why);
    if (status) {
        check_that(status == 400 || status == 415, "an unexpected status");
        check_that(why && why[0], "a refusal without a reason");
    } else {
        check_request(&r);
        send_run(&loop, &r.run);
    }
    api_request_free(&r);
    return 0;
}
