#include "api/collect.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "session/event.h"

static void phase_init(struct collect_phase *p)
{
    *p = (struct collect_phase){0};
    msg_buf_init(&p->out);
    msg_buf_init(&p->err);
    msg_buf_init(&p->both);
}

static void phase_free(struct collect_phase *p)
{
    msg_buf_free(&p->out);
    msg_buf_free(&p->err);
    msg_buf_free(&p->both);
}

void collect_init(struct collect *c, size_t cap, bool keep_both)
{
    *c = (struct collect){.cap = cap, .keep_both = keep_both};
    phase_init(&c->build);
    phase_init(&c->run);
    msg_buf_init(&c->line);
}

void collect_free(struct collect *c)
{
    phase_free(&c->build);
    phase_free(&c->run);
    msg_buf_free(&c->line);
}

void collect_fail(struct collect *c, int status, const char *why)
{
    if (c->done)
        return;
    c->done = true;
    c->status = status;
    snprintf(c->error, sizeof(c->error), "%s", why);
}

/* Appends what fits under the cap; true when some did not. */
static bool keep(struct collect *c, struct msg_buf *b, const void *p, size_t n)
{
    size_t room = b->len < c->cap ? c->cap - b->len : 0;
    bool over = n > room;
    if (over) {
        c->capped = true;
        n = room;
    }
    msg_buf_append(b, p, n);
    return over;
}

bool collect_build_failed(const struct collect *c)
{
    return c->done && c->final == COLLECT_BUILD;
}

bool collect_lost(const struct collect *c)
{
    return !c->done || c->final == COLLECT_NONE || c->error[0];
}

static int b64(char ch)
{
    if (ch >= 'A' && ch <= 'Z')
        return ch - 'A';
    if (ch >= 'a' && ch <= 'z')
        return ch - 'a' + 26;
    if (ch >= '0' && ch <= '9')
        return ch - '0' + 52;
    return ch == '+' ? 62 : ch == '/' ? 63 : -1;
}

/* Decodes base64 s into out; false if malformed. */
static bool base64_decode(const char *s, struct msg_buf *out)
{
    uint32_t acc = 0;
    int bits = 0;
    for (; *s && *s != '='; s++) {
        int v = b64(*s);
        if (v < 0)
            return false;
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            uint8_t byte = (uint8_t)(acc >> bits);
            msg_buf_append(out, &byte, 1);
        }
    }
    return true;
}

static bool get_u64(json_t *o, const char *k, uint64_t *out)
{
    json_t *v = json_object_get(o, k);
    if (!json_is_integer(v) || json_integer_value(v) < 0)
        return false;
    *out = (uint64_t)json_integer_value(v);
    return true;
}

/* One event line. */
static int event(struct collect *c, const char *p, size_t n)
{
    json_t *j = json_loadb(p, n, 0, NULL);
    const char *type = json_string_value(json_object_get(j, "type"));
    const char *phase = json_string_value(json_object_get(j, "phase"));
    struct collect_phase *ph =
        phase && !strcmp(phase, "build") ? &c->build : &c->run;
    int ret = 0;
    if (!type) {
        ret = -EBADMSG;
    } else if (!strcmp(type, "output")) {
        const char *stream = json_string_value(json_object_get(j, "stream"));
        json_t *data = json_object_get(j, "data");
        const char *b64s = json_string_value(json_object_get(j, "data_base64"));
        struct msg_buf bytes;
        msg_buf_init(&bytes);
        if (json_is_string(data))
            msg_buf_append(&bytes, json_string_value(data),
                           json_string_length(data));
        else if (!b64s || !base64_decode(b64s, &bytes))
            ret = -EBADMSG;
        if (!ret && stream) {
            if (!strcmp(stream, "stderr"))
                (void)keep(c, &ph->err, bytes.data, bytes.len);
            else if (keep(c, &ph->out, bytes.data, bytes.len))
                ph->out_capped = true;
            if (c->keep_both)
                (void)keep(c, &ph->both, bytes.data, bytes.len);
        }
        msg_buf_free(&bytes);
    } else if (!strcmp(type, "step") || !strcmp(type, "exit")) {
        json_t *code = json_object_get(j, "exit_code");
        json_t *sig = json_object_get(j, "signal");
        if (phase) {
            ph->ended = true;
            ph->exited = json_is_integer(code);
            ph->exit_code = ph->exited ? (int)json_integer_value(code) : 0;
            ph->signaled = json_is_integer(sig);
            ph->signal = ph->signaled ? (int)json_integer_value(sig) : 0;
            (void)get_u64(j, "wall_ms", &ph->wall_ms);
            (void)get_u64(j, "cpu_ms", &ph->cpu_ms);
            (void)get_u64(j, "peak_memory_bytes", &ph->peak_memory_bytes);
            ph->timed_out = json_is_true(json_object_get(j, "timed_out"));
            ph->output_truncated =
                json_is_true(json_object_get(j, "output_truncated"));
            ph->oom_killed = json_is_true(json_object_get(j, "oom_killed"));
        }
        if (!strcmp(type, "exit")) {
            json_t *st = json_object_get(j, "status");
            const char *err = json_string_value(json_object_get(j, "error"));
            c->done = true;
            c->final = !phase                    ? COLLECT_NONE
                       : !strcmp(phase, "build") ? COLLECT_BUILD
                                                 : COLLECT_RUN;
            c->status = json_is_integer(st) ? (int)json_integer_value(st)
                                            : RUNVM_EXIT_INFRA;
            if (err)
                snprintf(c->error, sizeof(c->error), "%s", err);
        }
    } else {
        ret = -EBADMSG;
    }
    json_decref(j);
    return ret;
}

int collect_feed(struct collect *c, const char *p, size_t n)
{
    while (n > 0 && !c->done) {
        const char *nl = memchr(p, '\n', n);
        size_t take = nl ? (size_t)(nl - p) : n;
        if (c->line.len + take > COLLECT_MAX_LINE) {
            collect_fail(c, RUNVM_EXIT_INFRA, "an event over 8 MiB");
            return -EBADMSG;
        }
        msg_buf_append(&c->line, p, take);
        if (!nl)
            return 0;
        int ret = event(c, (const char *)c->line.data, c->line.len);
        msg_buf_reset(&c->line);
        if (ret < 0) {
            collect_fail(c, RUNVM_EXIT_INFRA, "a malformed event");
            return ret;
        }
        p += take + 1;
        n -= take + 1;
    }
    return 0;
}

void collect_json_bytes(struct msg_buf *b, const struct msg_buf *s)
{
    event_json_string(b, s->data ? (const char *)s->data : "", s->len);
}
