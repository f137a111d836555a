#include "api/piston.h"

#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "api/request.h"
#include "session/event.h"

void piston_request_free(struct piston_request *r)
{
    json_decref(r->json);
    r->json = NULL;
}

static int refuse(struct piston_request *r, const char **why, const char *msg)
{
    piston_request_free(r);
    *why = msg;
    return 400;
}

int piston_parse(struct piston_request *r, const char *body, size_t len,
                 const char **why)
{
    *r = (struct piston_request){0};
    r->json = json_loadb(body, len, JSON_REJECT_DUPLICATES, NULL);
    if (!json_is_object(r->json))
        return refuse(r, why, "body is not a JSON object");
    const char *lang = json_string_value(json_object_get(r->json, "language"));
    json_t *ver = json_object_get(r->json, "version");
    if (!lang)
        return refuse(r, why, "\"language\" must be a string");
    if (ver && !json_is_string(ver))
        return refuse(r, why, "\"version\" must be a string");
    /* "python:3.11" names the version too; "version" wins unless "*". */
    char name[LANG_NAME_MAX + 1];
    const char *colon = strchr(lang, ':');
    size_t nlen = colon ? (size_t)(colon - lang) : strlen(lang);
    const char *v = ver ? json_string_value(ver) : "";
    if (colon && (!v[0] || !strcmp(v, "*")))
        v = colon + 1;
    if (nlen == 0 || nlen > LANG_NAME_MAX)
        return refuse(r, why, "\"language\": no such language");
    memcpy(name, lang, nlen);
    name[nlen] = '\0';
    int n =
        snprintf(r->spec, sizeof(r->spec), "%s%s%s", name, v[0] ? "@" : "", v);
    struct lang_spec ls;
    if (n < 0 || (size_t)n >= sizeof(r->spec) ||
        !lang_spec_parse(r->spec, strlen(r->spec), &ls))
        return refuse(r, why,
                      "\"language\"/\"version\": a language name and a "
                      "dotted version or \"*\"");
    json_t *files = json_object_get(r->json, "files");
    if (!json_is_array(files) || json_array_size(files) == 0 ||
        json_array_size(files) > API_MAX_FILES)
        return refuse(r, why, "\"files\" must be a list of 1 to 16 files");
    return 0;
}

/* A Piston time limit in ms into limits[key]: absent or -1 the default;
 * false when malformed or over /start's maximum. */
static bool limit(json_t *req, const char *pkey, json_t *limits,
                  const char *key, json_int_t max)
{
    json_t *v = json_object_get(req, pkey);
    if (!v || json_is_null(v))
        return true;
    if (!json_is_integer(v))
        return false;
    json_int_t ms = json_integer_value(v);
    if (ms == -1 || ms == 0)
        return true;
    if (ms < 1 || ms > max)
        return false;
    json_object_set_new(limits, key, json_integer(ms));
    return true;
}

int piston_start_body(const struct piston_request *r,
                      const char *const *run_argv, struct msg_buf *out,
                      const char **why)
{
    json_t *req = r->json, *start = json_object(), *extra = json_object();
    json_t *limits = json_object();
    int status = 400;
    json_t *files = json_object_get(req, "files");
    size_t i;
    json_t *f;
    json_array_foreach(files, i, f)
    {
        const char *content = json_string_value(json_object_get(f, "content"));
        const char *name = json_string_value(json_object_get(f, "name"));
        const char *enc = json_string_value(json_object_get(f, "encoding"));
        if (!content) {
            *why = "each file needs a string \"content\"";
            goto out;
        }
        if (enc && strcmp(enc, "utf8") != 0) {
            *why = "only utf8 files are taken (\"encoding\")";
            goto out;
        }
        /* The first is the language's source file, whatever its name. */
        if (i == 0) {
            json_object_set_new(start, "code", json_string(content));
        } else if (!name) {
            *why = "files after the first need a \"name\"";
            goto out;
        } else {
            json_object_set_new(extra, name, json_string(content));
        }
    }
    if (json_object_size(extra))
        json_object_set(start, "files", extra);
    json_t *in = json_object_get(req, "stdin");
    if (in && !json_is_null(in)) {
        if (!json_is_string(in)) {
            *why = "\"stdin\" must be a string";
            goto out;
        }
        json_object_set(start, "stdin", in);
    }
    json_t *args = json_object_get(req, "args");
    if (args && !json_is_null(args) &&
        (!json_is_array(args) || json_array_size(args) > API_MAX_ARGS / 2)) {
        *why = "\"args\" must be a list of at most 32 strings";
        goto out;
    }
    if (json_array_size(args) > 0) {
        if (!run_argv) {
            *why = "\"args\": this language's run command is not known to "
                   "the daemon (no config beside its image)";
            goto out;
        }
        /* Piston's args follow the run command; /start's replace it. */
        json_t *argv = json_array();
        for (size_t k = 0; run_argv[k]; k++)
            json_array_append_new(argv, json_string(run_argv[k]));
        json_array_foreach(args, i, f)
        {
            if (!json_is_string(f)) {
                json_decref(argv);
                *why = "\"args\" must be strings";
                goto out;
            }
            json_array_append(argv, f);
        }
        if (json_array_size(argv) > API_MAX_ARGS) {
            json_decref(argv);
            *why = "\"args\": too many";
            goto out;
        }
        json_object_set_new(start, "args", argv);
    }
    if (!limit(req, "run_timeout", limits, "timeout_ms", API_MAX_LIMIT_MS) ||
        !limit(req, "compile_timeout", limits, "build_timeout_ms",
               API_MAX_LIMIT_MS)) {
        *why = "run_timeout and compile_timeout are ms, -1 for the "
               "default, at most 600000";
        goto out;
    }
    json_t *mem = json_object_get(req, "run_memory_limit");
    if (mem && !json_is_null(mem)) {
        if (!json_is_integer(mem) || json_integer_value(mem) < -1) {
            *why = "run_memory_limit is bytes, -1 for the default";
            goto out;
        }
        if (json_integer_value(mem) > 0)
            json_object_set(limits, "memory_bytes", mem);
    }
    if (json_object_size(limits))
        json_object_set(start, "limits", limits);
    char *s = json_dumps(start, JSON_COMPACT);
    if (s) {
        msg_buf_append(out, s, strlen(s));
        free(s);
        status = 0;
    } else {
        *why = "out of memory";
    }
out:
    json_decref(start);
    json_decref(extra);
    json_decref(limits);
    return status;
}

static void put(struct msg_buf *b, const char *s)
{
    msg_buf_append(b, s, strlen(s));
}

/* One of Piston's stage objects. */
static void stage(struct msg_buf *b, const struct collect_phase *p,
                  const char *message)
{
    char tmp[256];
    put(b, "{\"stdout\":");
    collect_json_bytes(b, &p->out);
    put(b, ",\"stderr\":");
    collect_json_bytes(b, &p->err);
    put(b, ",\"output\":");
    collect_json_bytes(b, &p->both);
    if (p->exited)
        snprintf(tmp, sizeof(tmp), ",\"code\":%d", p->exit_code);
    else
        snprintf(tmp, sizeof(tmp), ",\"code\":null");
    put(b, tmp);
    const char *abbrev = p->signaled ? sigabbrev_np(p->signal) : NULL;
    if (abbrev)
        snprintf(tmp, sizeof(tmp), ",\"signal\":\"SIG%s\"", abbrev);
    else
        snprintf(tmp, sizeof(tmp), ",\"signal\":null");
    put(b, tmp);
    put(b, ",\"message\":");
    if (message)
        event_json_string(b, message, strlen(message));
    else
        put(b, "null");
    /* Piston's status: TO time out, SG signal, RE runtime error. */
    const char *st = p->timed_out                ? "\"TO\""
                     : p->signaled               ? "\"SG\""
                     : p->exited && p->exit_code ? "\"RE\""
                                                 : "null";
    snprintf(tmp, sizeof(tmp),
             ",\"status\":%s,\"cpu_time\":%llu,\"wall_time\":%llu,"
             "\"memory\":%llu}",
             st, (unsigned long long)p->cpu_ms, (unsigned long long)p->wall_ms,
             (unsigned long long)p->peak_memory_bytes);
    put(b, tmp);
}

void piston_answer(const struct collect *c, const char *lang,
                   const char *version, bool compiled, struct msg_buf *out)
{
    put(out, "{\"language\":");
    event_json_string(out, lang, strlen(lang));
    put(out, ",\"version\":");
    event_json_string(out, version, strlen(version));
    bool build_failed = collect_build_failed(c);
    if (compiled || c->build.ended) {
        put(out, ",\"compile\":");
        stage(out, &c->build, NULL);
    }
    if (!build_failed) {
        put(out, ",\"run\":");
        stage(out, &c->run, c->error[0] ? c->error : NULL);
    }
    msg_buf_append(out, "}", 2);
}

void piston_runtime(struct msg_buf *out, bool first, const char *lang,
                    const char *version, const char *aliases)
{
    put(out, first ? "{\"language\":" : ",{\"language\":");
    event_json_string(out, lang, strlen(lang));
    put(out, ",\"version\":");
    event_json_string(out, version, strlen(version));
    put(out, ",\"aliases\":[");
    const char *p = aliases;
    bool any = false;
    while (*p) {
        while (*p == ' ')
            p++;
        size_t n = strcspn(p, " ");
        if (n) {
            if (any)
                put(out, ",");
            event_json_string(out, p, n);
            any = true;
        }
        p += n;
    }
    put(out, "]}");
}
