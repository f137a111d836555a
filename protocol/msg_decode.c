/* Typed decoders: a checked struct msg_view to struct msg_hello, msg_run,
 * msg_stdin, msg_output, msg_exit or msg_error. */
#include "protocol/msg.h"

#include <errno.h>
#include <string.h>

static int get_uint(const uint8_t *val, uint32_t len, uint64_t max,
                    uint64_t *out)
{
    uint64_t v;
    if (tlv_uint(val, len, &v) < 0 || v > max)
        return -EBADMSG;
    *out = v;
    return 0;
}

#define FOR_EACH_FIELD(v, it, tag, val, len, r)                                \
    for (tlv_iter_init(&(it), (v)->payload, (v)->len);                         \
         ((r) = tlv_next(&(it), &(tag), &(val), &(len))) > 0;)

int msg_decode_hello(const struct msg_view *v, struct msg_hello *out)
{
    struct tlv_iter it;
    uint16_t tag;
    const uint8_t *val;
    uint32_t len;
    int r;

    memset(out, 0, sizeof(*out));
    if (v->type != MSG_HELLO)
        return -EBADMSG;
    FOR_EACH_FIELD(v, it, tag, val, len, r)
    {
        struct msg_bytes b = {val, len};
        switch (tag) {
        case MSG_TAG_AGENT_VERSION: out->agent_version = b; break;
        case MSG_TAG_LANG: out->lang = b; break;
        case MSG_TAG_TOOLCHAIN: out->toolchain = b; break;
        case MSG_TAG_SOURCE: out->source = b; break;
        }
    }
    return r;
}

static int decode_file(const uint8_t *p, uint32_t n, struct msg_file *f)
{
    struct tlv_iter it;
    uint16_t tag;
    const uint8_t *val;
    uint32_t len;
    uint64_t x;
    int r;

    memset(f, 0, sizeof(*f));
    tlv_iter_init(&it, p, n);
    while ((r = tlv_next(&it, &tag, &val, &len)) > 0) {
        switch (tag) {
        case MSG_TAG_FILE_NAME: f->name = (struct msg_bytes){val, len}; break;
        case MSG_TAG_FILE_MODE:
            if (get_uint(val, len, 07777, &x) < 0)
                return -EBADMSG;
            f->mode = (uint32_t)x;
            break;
        case MSG_TAG_FILE_DATA: f->data = (struct msg_bytes){val, len}; break;
        }
    }
    /* No name (or an empty one) is allowed: the agent uses SOURCE. */
    return r < 0 ? -EBADMSG : 0;
}

/* Points at the limit a tag sets, or NULL for another tag. */
static uint64_t *limit_field(struct msg_limits *l, uint16_t tag)
{
    switch (tag) {
    case MSG_TAG_WALL_MS: return &l->wall_ms;
    case MSG_TAG_CPU_MS: return &l->cpu_ms;
    case MSG_TAG_MEM_BYTES: return &l->mem_bytes;
    case MSG_TAG_MAX_PROCS: return &l->max_procs;
    case MSG_TAG_MAX_OUTPUT: return &l->max_output;
    }
    return NULL;
}

/* The nested BUILD_LIMITS field: limit tags only, others skipped. */
static int decode_limits(const uint8_t *p, uint32_t n, struct msg_limits *l)
{
    struct tlv_iter it;
    uint16_t tag;
    const uint8_t *val;
    uint32_t len;
    int r;

    memset(l, 0, sizeof(*l));
    tlv_iter_init(&it, p, n);
    while ((r = tlv_next(&it, &tag, &val, &len)) > 0) {
        uint64_t *field = limit_field(l, tag);
        if (field && tlv_uint(val, len, field) < 0)
            return -EBADMSG;
    }
    return r < 0 ? -EBADMSG : 0;
}

int msg_decode_run(const struct msg_view *v, struct msg_run *out)
{
    struct tlv_iter it;
    uint16_t tag;
    const uint8_t *val;
    uint32_t len;
    int r;

    memset(out, 0, sizeof(*out));
    if (v->type != MSG_RUN)
        return -EBADMSG;
    out->flags = v->flags;
    FOR_EACH_FIELD(v, it, tag, val, len, r)
    {
        struct msg_strlist l = {true, val, len};
        uint64_t *limit = limit_field(&out->limits, tag);
        switch (tag) {
        case MSG_TAG_FILE:
            if (out->nfiles == MSG_MAX_FILES)
                return -EBADMSG;
            if (decode_file(val, len, &out->files[out->nfiles]) < 0)
                return -EBADMSG;
            out->nfiles++;
            break;
        case MSG_TAG_BUILD_ARGV: out->build_argv = l; break;
        case MSG_TAG_RUN_ARGV: out->run_argv = l; break;
        case MSG_TAG_ENV: out->env = l; break;
        case MSG_TAG_STDIN:
            out->stdin_data = (struct msg_bytes){val, len};
            break;
        case MSG_TAG_BUILD_LIMITS:
            if (decode_limits(val, len, &out->build_limits) < 0)
                return -EBADMSG;
            out->has_build_limits = true;
            break;
        }
        if (limit && tlv_uint(val, len, limit) < 0)
            return -EBADMSG;
        if (l.len && l.p[l.len - 1] != '\0' &&
            (tag == MSG_TAG_BUILD_ARGV || tag == MSG_TAG_RUN_ARGV ||
             tag == MSG_TAG_ENV))
            return -EBADMSG;
    }
    return r;
}

int msg_decode_stdin(const struct msg_view *v, struct msg_stdin *out)
{
    struct tlv_iter it;
    uint16_t tag;
    const uint8_t *val;
    uint32_t len;
    int r;

    memset(out, 0, sizeof(*out));
    if (v->type != MSG_STDIN)
        return -EBADMSG;
    out->eof = v->flags & MSG_STDIN_EOF;
    FOR_EACH_FIELD(v, it, tag, val, len, r)
    {
        if (tag == MSG_TAG_DATA)
            out->data = (struct msg_bytes){val, len};
    }
    return r;
}

int msg_decode_announce(const struct msg_view *v, struct msg_announce *out)
{
    struct tlv_iter it;
    uint16_t tag;
    const uint8_t *val;
    uint32_t len;
    int r;

    memset(out, 0, sizeof(*out));
    if (v->type != MSG_ANNOUNCE)
        return -EBADMSG;
    FOR_EACH_FIELD(v, it, tag, val, len, r)
    {
        switch (tag) {
        case MSG_TAG_ENTROPY:
            if (len > MSG_MAX_ENTROPY)
                return -EBADMSG;
            out->entropy = (struct msg_bytes){val, len};
            break;
        case MSG_TAG_REALTIME_NS:
            if (get_uint(val, len, UINT64_MAX, &out->realtime_ns) < 0)
                return -EBADMSG;
            out->has_realtime = true;
            break;
        }
    }
    return r;
}

int msg_decode_output(const struct msg_view *v, struct msg_output *out)
{
    struct tlv_iter it;
    uint16_t tag;
    const uint8_t *val;
    uint32_t len;
    uint64_t x;
    int r;

    memset(out, 0, sizeof(*out));
    if (v->type != MSG_OUTPUT)
        return -EBADMSG;
    FOR_EACH_FIELD(v, it, tag, val, len, r)
    {
        switch (tag) {
        case MSG_TAG_PHASE:
            if (get_uint(val, len, MSG_PHASE_RUN, &x) < 0)
                return -EBADMSG;
            out->phase = (uint8_t)x;
            break;
        case MSG_TAG_STREAM:
            if (get_uint(val, len, MSG_STREAM_STDERR, &x) < 0 || x == 0)
                return -EBADMSG;
            out->stream = (uint8_t)x;
            break;
        case MSG_TAG_DATA: out->data = (struct msg_bytes){val, len}; break;
        }
    }
    if (r == 0 && out->stream == 0)
        return -EBADMSG;
    return r;
}

int msg_decode_exit(const struct msg_view *v, struct msg_exit *out)
{
    struct tlv_iter it;
    uint16_t tag;
    const uint8_t *val;
    uint32_t len;
    uint64_t x;
    int r;

    memset(out, 0, sizeof(*out));
    if (v->type != MSG_EXIT)
        return -EBADMSG;
    FOR_EACH_FIELD(v, it, tag, val, len, r)
    {
        switch (tag) {
        case MSG_TAG_PHASE:
            if (get_uint(val, len, MSG_PHASE_RUN, &x) < 0)
                return -EBADMSG;
            out->phase = (uint8_t)x;
            break;
        case MSG_TAG_EXIT_CODE:
            if (get_uint(val, len, 255, &x) < 0)
                return -EBADMSG;
            out->exited = true;
            out->code = (uint32_t)x;
            break;
        case MSG_TAG_SIGNAL:
            if (get_uint(val, len, 127, &x) < 0)
                return -EBADMSG;
            out->signaled = true;
            out->signal = (uint32_t)x;
            break;
        case MSG_TAG_WALL_USED:
            if (tlv_uint(val, len, &out->wall_ms) < 0)
                return -EBADMSG;
            break;
        case MSG_TAG_CPU_USED:
            if (tlv_uint(val, len, &out->cpu_ms) < 0)
                return -EBADMSG;
            break;
        case MSG_TAG_PEAK_MEM:
            if (tlv_uint(val, len, &out->peak_mem) < 0)
                return -EBADMSG;
            break;
        case MSG_TAG_STATUS:
            if (get_uint(val, len, UINT32_MAX, &x) < 0)
                return -EBADMSG;
            out->status = (uint32_t)x;
            break;
        }
    }
    return r;
}

int msg_decode_error(const struct msg_view *v, struct msg_error *out)
{
    struct tlv_iter it;
    uint16_t tag;
    const uint8_t *val;
    uint32_t len;
    uint64_t x;
    int r;

    memset(out, 0, sizeof(*out));
    if (v->type != MSG_ERROR)
        return -EBADMSG;
    FOR_EACH_FIELD(v, it, tag, val, len, r)
    {
        switch (tag) {
        case MSG_TAG_ERROR_CODE:
            if (get_uint(val, len, UINT32_MAX, &x) < 0)
                return -EBADMSG;
            out->code = (uint32_t)x;
            break;
        case MSG_TAG_MESSAGE:
            out->message = (struct msg_bytes){val, len};
            break;
        }
    }
    return r;
}
