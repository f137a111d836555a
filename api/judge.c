#include "api/judge.h"

#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "session/event.h"

void judge_request_free(struct judge_request *r)
{
    json_decref(r->json);
    r->json = NULL;
}

int judge_parse(struct judge_request *r, const char *body, size_t len,
                const char **why)
{
    *r = (struct judge_request){0};
    r->json = json_loadb(body, len, JSON_REJECT_DUPLICATES, NULL);
    json_t *cases = json_object_get(r->json, "cases");
    json_t *cmp = json_object_get(r->json, "compare");
    json_t *lang = json_object_get(r->json, "lang");
    *why = NULL;
    if (!json_is_object(r->json))
        *why = "body is not a JSON object";
    else if (!json_is_array(cases) || json_array_size(cases) == 0 ||
             json_array_size(cases) > JUDGE_MAX_CASES)
        *why = "\"cases\" must be a list of 1 to 256 test cases";
    else if (cmp && (!json_is_string(cmp) ||
                     (strcmp(json_string_value(cmp), "exact") &&
                      strcmp(json_string_value(cmp), "lines"))))
        *why = "\"compare\" is \"lines\" (the default) or \"exact\"";
    else if (lang && !json_is_string(lang))
        *why = "\"lang\" must be a string";
    else if (json_is_true(json_object_get(r->json, "reuse")))
        *why = "\"reuse\" has no place in a judge request";
    size_t i;
    json_t *c;
    json_array_foreach(cases, i, c)
    {
        if (*why)
            break;
        json_t *in = json_object_get(c, "stdin");
        json_t *want = json_object_get(c, "expected_stdout");
        json_t *lim = json_object_get(c, "limits");
        if (!json_is_object(c) || (in && !json_is_string(in)) ||
            (want && !json_is_string(want)) || (lim && !json_is_object(lim)))
            *why = "each case is {\"stdin\": string, \"expected_stdout\": "
                   "string, \"limits\": object}";
    }
    if (*why) {
        judge_request_free(r);
        return 400;
    }
    r->ncases = json_array_size(cases);
    r->lang = json_string_value(lang);
    r->exact = cmp && !strcmp(json_string_value(cmp), "exact");
    return 0;
}

void judge_start_body(const struct judge_request *r, size_t k,
                      struct msg_buf *out)
{
    json_t *c = json_array_get(json_object_get(r->json, "cases"), k);
    json_t *start;
    if (k == 0) {
        start = json_deep_copy(r->json);
        json_object_del(start, "cases");
        json_object_del(start, "compare");
    } else {
        /* The same program again: its argv too, if it has one. */
        start = json_pack("{s:b}", "reuse", 1);
        json_t *args = json_object_get(r->json, "args");
        if (args)
            json_object_set(start, "args", args);
    }
    json_t *limits = json_object();
    json_t *base = json_object_get(r->json, "limits");
    if (json_is_object(base))
        json_object_update(limits, base);
    json_t *own = json_object_get(c, "limits");
    if (json_is_object(own))
        json_object_update(limits, own);
    if (json_object_size(limits))
        json_object_set(start, "limits", limits);
    else
        json_object_del(start, "limits");
    json_t *in = json_object_get(c, "stdin");
    if (in)
        json_object_set(start, "stdin", in);
    else
        json_object_del(start, "stdin");
    char *s = json_dumps(start, JSON_COMPACT);
    if (s)
        msg_buf_append(out, s, strlen(s));
    free(s);
    json_decref(limits);
    json_decref(start);
}

/* Lines without their trailing whitespace, trailing empty lines gone:
 * the length of s that counts, and line by line comparison. */
static size_t trimmed_end(const char *s, size_t len)
{
    while (len > 0 && strchr(" \t\r\n\f\v", s[len - 1]))
        len--;
    return len;
}

/* The next line of s[*at..len) without trailing blanks: start, length. */
static bool next_line(const char *s, size_t len, size_t *at, const char **p,
                      size_t *n)
{
    if (*at >= len)
        return false;
    const char *start = s + *at;
    const char *nl = memchr(start, '\n', len - *at);
    size_t l = nl ? (size_t)(nl - start) : len - *at;
    *at += l + (nl ? 1 : 0);
    while (l > 0 && strchr(" \t\r\f\v", start[l - 1]))
        l--;
    *p = start;
    *n = l;
    return true;
}

bool judge_same_output(const char *a, size_t alen, const char *b, size_t blen,
                       bool exact)
{
    if (exact)
        return alen == blen && (alen == 0 || !memcmp(a, b, alen));
    alen = trimmed_end(a, alen);
    blen = trimmed_end(b, blen);
    size_t ia = 0, ib = 0;
    for (;;) {
        const char *pa, *pb;
        size_t na, nb;
        bool ha = next_line(a, alen, &ia, &pa, &na);
        bool hb = next_line(b, blen, &ib, &pb, &nb);
        if (!ha || !hb)
            return ha == hb;
        if (na != nb || (na && memcmp(pa, pb, na)))
            return false;
    }
}

const char *judge_verdict(const struct judge_request *r, size_t k,
                          const struct collect *run,
                          const struct collect *build)
{
    if (build && collect_build_failed(build))
        return "compile_error";
    if (!run || collect_lost(run))
        return "internal_error";
    /* From the run phase's own fields, never the exit status: a program's
     * exit(124), (125) or (126) shares runvm's statuses. */
    const struct collect_phase *p = &run->run;
    if (p->timed_out)
        return "time_limit";
    if (p->oom_killed)
        return "memory_limit";
    if (p->output_truncated || p->out_capped)
        return "output_limit";
    if ((p->exited && p->exit_code != 0) || p->signaled)
        return "runtime_error";
    json_t *c = json_array_get(json_object_get(r->json, "cases"), k);
    json_t *want = json_object_get(c, "expected_stdout");
    if (want && !judge_same_output((const char *)p->out.data, p->out.len,
                                   json_string_value(want),
                                   json_string_length(want), r->exact))
        return "wrong_answer";
    return "accepted";
}

static void put(struct msg_buf *b, const char *s)
{
    msg_buf_append(b, s, strlen(s));
}

static void phase_fields(struct msg_buf *b, const struct collect_phase *p)
{
    char tmp[256];
    put(b, "\"stdout\":");
    collect_json_bytes(b, &p->out);
    put(b, ",\"stderr\":");
    collect_json_bytes(b, &p->err);
    if (p->exited)
        snprintf(tmp, sizeof(tmp), ",\"exit_code\":%d", p->exit_code);
    else
        snprintf(tmp, sizeof(tmp), ",\"exit_code\":null");
    put(b, tmp);
    if (p->signaled)
        snprintf(tmp, sizeof(tmp), ",\"signal\":%d", p->signal);
    else
        snprintf(tmp, sizeof(tmp), ",\"signal\":null");
    put(b, tmp);
    snprintf(tmp, sizeof(tmp),
             ",\"time_ms\":%llu,\"cpu_ms\":%llu,\"memory_bytes\":%llu,"
             "\"truncated\":%s",
             (unsigned long long)p->wall_ms, (unsigned long long)p->cpu_ms,
             (unsigned long long)p->peak_memory_bytes,
             p->output_truncated ? "true" : "false");
    put(b, tmp);
}

void judge_answer(const struct judge_request *r, const struct collect *build,
                  const struct collect *const *runs, struct msg_buf *out)
{
    /* The build: its own phase of the first run, when it has one. */
    const char *bst = !build                        ? "internal_error"
                      : collect_build_failed(build) ? "failed"
                      : build->build.ended          ? "ok"
                      : collect_lost(build)         ? "internal_error"
                                                    : "none";
    put(out, "{\"build\":{\"status\":\"");
    put(out, bst);
    put(out, "\",");
    static const struct collect_phase none = {0};
    phase_fields(out, build ? &build->build : &none);
    put(out, "},\"cases\":[");
    for (size_t k = 0; k < r->ncases; k++) {
        const struct collect *c = runs[k];
        put(out, k ? ",{\"verdict\":\"" : "{\"verdict\":\"");
        put(out, judge_verdict(r, k, c, build));
        put(out, "\",");
        phase_fields(out, c ? &c->run : &none);
        if (c && c->error[0]) {
            put(out, ",\"error\":");
            event_json_string(out, c->error, strlen(c->error));
        }
        put(out, "}");
    }
    msg_buf_append(out, "]}", 3);
}
