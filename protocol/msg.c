#include "protocol/msg.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "protocol/crc32.h"

#define TLV_HEADER 6 /* u16 tag, u32 length */

static void put_le16(uint8_t *p, uint16_t v)
{
    p[0] = v & 0xff;
    p[1] = v >> 8;
}

static void put_le32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (v >> (8 * i)) & 0xff;
}

static uint16_t get_le16(const uint8_t *p)
{
    return (uint16_t)(p[0] | p[1] << 8);
}

static uint32_t get_le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
           (uint32_t)p[3] << 24;
}

/* ---- buffer ------------------------------------------------------------ */

void msg_buf_init(struct msg_buf *m)
{
    memset(m, 0, sizeof(*m));
}

void msg_buf_free(struct msg_buf *m)
{
    free(m->data);
    msg_buf_init(m);
}

void msg_buf_reset(struct msg_buf *m)
{
    m->len = 0;
    m->start = 0;
    m->err = 0;
}

void msg_buf_consume(struct msg_buf *m, size_t n)
{
    if (n >= m->len) {
        m->len = 0;
    } else {
        memmove(m->data, m->data + n, m->len - n);
        m->len -= n;
    }
    m->start = m->start > n ? m->start - n : 0;
}

/* Makes room for n more bytes; returns where they go, or NULL (and sets the
 * sticky error). */
static uint8_t *reserve(struct msg_buf *m, size_t n)
{
    if (m->err)
        return NULL;
    size_t need;
    if (__builtin_add_overflow(m->len, n, &need)) {
        m->err = -ENOMEM;
        return NULL;
    }
    if (need > m->cap) {
        size_t cap = m->cap ? m->cap : 256;
        while (cap < need) {
            if (__builtin_mul_overflow(cap, 2, &cap)) {
                m->err = -ENOMEM;
                return NULL;
            }
        }
        uint8_t *nd = realloc(m->data, cap);
        if (!nd) {
            m->err = -ENOMEM;
            return NULL;
        }
        m->data = nd;
        m->cap = cap;
    }
    uint8_t *p = m->data + m->len;
    m->len += n;
    return p;
}

void msg_buf_append(struct msg_buf *m, const void *p, size_t n)
{
    uint8_t *d = reserve(m, n);
    if (d && n)
        memcpy(d, p, n);
}

/* ---- building ---------------------------------------------------------- */

void msg_begin(struct msg_buf *m, uint8_t type, uint16_t flags, uint32_t id)
{
    m->start = m->len;
    uint8_t *h = reserve(m, MSG_HEADER_SIZE);
    if (!h)
        return;
    put_le16(h, MSG_MAGIC);
    h[2] = MSG_VERSION;
    h[3] = type;
    put_le16(h + 4, flags);
    put_le16(h + 6, 0);
    put_le32(h + 8, id);
    put_le32(h + 12, 0); /* patched by msg_end */
}

static uint8_t *put_field(struct msg_buf *m, uint16_t tag, size_t n)
{
    if (n > MSG_MAX_PAYLOAD) {
        if (!m->err)
            m->err = -EMSGSIZE;
        return NULL;
    }
    uint8_t *p = reserve(m, TLV_HEADER + n);
    if (!p)
        return NULL;
    put_le16(p, tag);
    put_le32(p + 2, (uint32_t)n);
    return p + TLV_HEADER;
}

void msg_put_u64(struct msg_buf *m, uint16_t tag, uint64_t v)
{
    size_t n = v <= UINT32_MAX ? 4 : 8;
    uint8_t *p = put_field(m, tag, n);
    if (!p)
        return;
    for (size_t i = 0; i < n; i++)
        p[i] = (v >> (8 * i)) & 0xff;
}

void msg_put_bytes(struct msg_buf *m, uint16_t tag, const void *data, size_t n)
{
    uint8_t *p = put_field(m, tag, n);
    if (p && n)
        memcpy(p, data, n);
}

void msg_put_str(struct msg_buf *m, uint16_t tag, const char *s)
{
    msg_put_bytes(m, tag, s, strlen(s));
}

void msg_put_strv(struct msg_buf *m, uint16_t tag, const char *const *argv)
{
    size_t n = 0;
    for (size_t i = 0; argv && argv[i]; i++)
        n += strlen(argv[i]) + 1;
    uint8_t *p = put_field(m, tag, n);
    if (!p)
        return;
    for (size_t i = 0; argv && argv[i]; i++) {
        size_t l = strlen(argv[i]) + 1;
        memcpy(p, argv[i], l);
        p += l;
    }
}

size_t msg_nest_begin(struct msg_buf *m, uint16_t tag)
{
    size_t mark = m->len;
    put_field(m, tag, 0);
    return mark;
}

void msg_nest_end(struct msg_buf *m, size_t mark)
{
    if (m->err)
        return;
    size_t n = m->len - mark - TLV_HEADER;
    if (n > MSG_MAX_PAYLOAD) {
        m->err = -EMSGSIZE;
        return;
    }
    put_le32(m->data + mark + 2, (uint32_t)n);
}

void msg_put_file(struct msg_buf *m, const char *name, uint32_t mode,
                  const void *data, size_t len)
{
    size_t mark = msg_nest_begin(m, MSG_TAG_FILE);
    if (name && name[0])
        msg_put_str(m, MSG_TAG_FILE_NAME, name);
    msg_put_u64(m, MSG_TAG_FILE_MODE, mode);
    msg_put_bytes(m, MSG_TAG_FILE_DATA, data, len);
    msg_nest_end(m, mark);
}

int msg_end(struct msg_buf *m)
{
    if (m->err)
        return m->err;
    size_t payload = m->len - m->start - MSG_HEADER_SIZE;
    if (payload > MSG_MAX_PAYLOAD) {
        m->err = -EMSGSIZE;
        return m->err;
    }
    put_le32(m->data + m->start + 12, (uint32_t)payload);
    uint32_t crc = crc32_update(0, m->data + m->start, m->len - m->start);
    uint8_t *p = reserve(m, MSG_CRC_SIZE);
    if (!p)
        return m->err;
    put_le32(p, crc);
    return 0;
}

int msg_slip_append(struct msg_buf *wire, const uint8_t *msg, size_t len)
{
    uint8_t *p = reserve(wire, SLIP_ENCODED_MAX(len));
    if (!p)
        return wire->err;
    size_t n = slip_encode(p, msg, len);
    wire->len -= SLIP_ENCODED_MAX(len) - n;
    return 0;
}

/* ---- parsing ----------------------------------------------------------- */

int msg_parse(const uint8_t *frame, size_t len, struct msg_view *out)
{
    if (len < MSG_HEADER_SIZE + MSG_CRC_SIZE)
        return -EBADMSG;
    if (get_le16(frame) != MSG_MAGIC)
        return -EBADMSG;
    if (frame[2] != MSG_VERSION)
        return -EPROTONOSUPPORT;
    uint32_t plen = get_le32(frame + 12);
    if (plen > MSG_MAX_PAYLOAD)
        return -EMSGSIZE;
    if ((size_t)plen != len - MSG_HEADER_SIZE - MSG_CRC_SIZE)
        return -EBADMSG;
    uint32_t want = get_le32(frame + MSG_HEADER_SIZE + plen);
    if (crc32_update(0, frame, MSG_HEADER_SIZE + plen) != want)
        return -EILSEQ;
    out->type = frame[3];
    out->flags = get_le16(frame + 4);
    out->id = get_le32(frame + 8);
    out->payload = frame + MSG_HEADER_SIZE;
    out->len = plen;
    return 0;
}

void tlv_iter_init(struct tlv_iter *it, const uint8_t *p, size_t len)
{
    it->p = p;
    it->left = len;
}

int tlv_next(struct tlv_iter *it, uint16_t *tag, const uint8_t **val,
             uint32_t *len)
{
    if (it->left == 0)
        return 0;
    if (it->left < TLV_HEADER)
        return -EBADMSG;
    uint32_t n = get_le32(it->p + 2);
    if (n > it->left - TLV_HEADER)
        return -EBADMSG;
    *tag = get_le16(it->p);
    *val = it->p + TLV_HEADER;
    *len = n;
    it->p += TLV_HEADER + n;
    it->left -= TLV_HEADER + n;
    return 1;
}

int tlv_uint(const uint8_t *val, uint32_t len, uint64_t *out)
{
    if (len < 1 || len > 8)
        return -EBADMSG;
    uint64_t v = 0;
    for (uint32_t i = 0; i < len; i++)
        v |= (uint64_t)val[i] << (8 * i);
    *out = v;
    return 0;
}

int msg_strlist_split(const struct msg_strlist *l, const char **argv,
                      size_t max)
{
    size_t n = 0;
    if (max == 0)
        return -E2BIG;
    if (l->len && l->p[l->len - 1] != '\0')
        return -EBADMSG;
    for (uint32_t i = 0; i < l->len;) {
        if (n + 1 >= max)
            return -E2BIG;
        const char *s = (const char *)l->p + i;
        argv[n++] = s;
        i += (uint32_t)strlen(s) + 1;
    }
    argv[n] = NULL;
    return (int)n;
}

char *msg_bytes_strdup(struct msg_bytes b)
{
    if (b.len && memchr(b.p, '\0', b.len))
        return NULL;
    char *s = malloc((size_t)b.len + 1);
    if (!s)
        return NULL;
    if (b.len)
        memcpy(s, b.p, b.len);
    s[b.len] = '\0';
    return s;
}

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
        case MSG_TAG_AGENT_VERSION:
            out->agent_version = b;
            break;
        case MSG_TAG_LANG:
            out->lang = b;
            break;
        case MSG_TAG_TOOLCHAIN:
            out->toolchain = b;
            break;
        case MSG_TAG_SOURCE:
            out->source = b;
            break;
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
        case MSG_TAG_FILE_NAME:
            f->name = (struct msg_bytes){val, len};
            break;
        case MSG_TAG_FILE_MODE:
            if (get_uint(val, len, 07777, &x) < 0)
                return -EBADMSG;
            f->mode = (uint32_t)x;
            break;
        case MSG_TAG_FILE_DATA:
            f->data = (struct msg_bytes){val, len};
            break;
        }
    }
    /* No name (or an empty one) is allowed: the agent uses SOURCE. */
    return r < 0 ? -EBADMSG : 0;
}

/* Points at the limit a tag sets, or NULL for another tag. */
static uint64_t *limit_field(struct msg_limits *l, uint16_t tag)
{
    switch (tag) {
    case MSG_TAG_WALL_MS:
        return &l->wall_ms;
    case MSG_TAG_CPU_MS:
        return &l->cpu_ms;
    case MSG_TAG_MEM_BYTES:
        return &l->mem_bytes;
    case MSG_TAG_MAX_PROCS:
        return &l->max_procs;
    case MSG_TAG_MAX_OUTPUT:
        return &l->max_output;
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
        case MSG_TAG_BUILD_ARGV:
            out->build_argv = l;
            break;
        case MSG_TAG_RUN_ARGV:
            out->run_argv = l;
            break;
        case MSG_TAG_ENV:
            out->env = l;
            break;
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
        case MSG_TAG_DATA:
            out->data = (struct msg_bytes){val, len};
            break;
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

/* ---- typed builders ---------------------------------------------------- */

static void put_opt_bytes(struct msg_buf *m, uint16_t tag, struct msg_bytes b)
{
    if (b.p)
        msg_put_bytes(m, tag, b.p, b.len);
}

int msg_build_hello(struct msg_buf *m, uint32_t id, const struct msg_hello *h)
{
    msg_begin(m, MSG_HELLO, 0, id);
    put_opt_bytes(m, MSG_TAG_AGENT_VERSION, h->agent_version);
    put_opt_bytes(m, MSG_TAG_LANG, h->lang);
    put_opt_bytes(m, MSG_TAG_TOOLCHAIN, h->toolchain);
    put_opt_bytes(m, MSG_TAG_SOURCE, h->source);
    return msg_end(m);
}

/* The limit fields that are set (0 means "the agent's default"). */
static void put_limits(struct msg_buf *m, const struct msg_limits *l)
{
    if (l->wall_ms)
        msg_put_u64(m, MSG_TAG_WALL_MS, l->wall_ms);
    if (l->cpu_ms)
        msg_put_u64(m, MSG_TAG_CPU_MS, l->cpu_ms);
    if (l->mem_bytes)
        msg_put_u64(m, MSG_TAG_MEM_BYTES, l->mem_bytes);
    if (l->max_procs)
        msg_put_u64(m, MSG_TAG_MAX_PROCS, l->max_procs);
    if (l->max_output)
        msg_put_u64(m, MSG_TAG_MAX_OUTPUT, l->max_output);
}

int msg_build_run(struct msg_buf *m, uint32_t id, const struct msg_run *r)
{
    msg_begin(m, MSG_RUN, r->flags, id);
    if (r->nfiles > MSG_MAX_FILES && !m->err)
        m->err = -E2BIG; /* the receiver would refuse the RUN */
    for (size_t i = 0; i < r->nfiles && i < MSG_MAX_FILES; i++) {
        const struct msg_file *f = &r->files[i];
        size_t mark = msg_nest_begin(m, MSG_TAG_FILE);
        if (f->name.len)
            msg_put_bytes(m, MSG_TAG_FILE_NAME, f->name.p, f->name.len);
        msg_put_u64(m, MSG_TAG_FILE_MODE, f->mode);
        msg_put_bytes(m, MSG_TAG_FILE_DATA, f->data.p, f->data.len);
        msg_nest_end(m, mark);
    }
    if (r->build_argv.present)
        msg_put_bytes(m, MSG_TAG_BUILD_ARGV, r->build_argv.p,
                      r->build_argv.len);
    if (r->run_argv.present)
        msg_put_bytes(m, MSG_TAG_RUN_ARGV, r->run_argv.p, r->run_argv.len);
    if (r->env.present)
        msg_put_bytes(m, MSG_TAG_ENV, r->env.p, r->env.len);
    put_opt_bytes(m, MSG_TAG_STDIN, r->stdin_data);
    put_limits(m, &r->limits);
    if (r->has_build_limits) {
        size_t mark = msg_nest_begin(m, MSG_TAG_BUILD_LIMITS);
        put_limits(m, &r->build_limits);
        msg_nest_end(m, mark);
    }
    return msg_end(m);
}

int msg_build_stdin(struct msg_buf *m, uint32_t id, const void *p, size_t n,
                    bool eof)
{
    msg_begin(m, MSG_STDIN, eof ? MSG_STDIN_EOF : 0, id);
    if (n)
        msg_put_bytes(m, MSG_TAG_DATA, p, n);
    return msg_end(m);
}

int msg_build_output(struct msg_buf *m, uint32_t id, uint8_t phase,
                     uint8_t stream, const void *p, size_t n)
{
    msg_begin(m, MSG_OUTPUT, 0, id);
    msg_put_u64(m, MSG_TAG_PHASE, phase);
    msg_put_u64(m, MSG_TAG_STREAM, stream);
    msg_put_bytes(m, MSG_TAG_DATA, p, n);
    return msg_end(m);
}

int msg_build_exit(struct msg_buf *m, uint32_t id, const struct msg_exit *e)
{
    msg_begin(m, MSG_EXIT, 0, id);
    msg_put_u64(m, MSG_TAG_PHASE, e->phase);
    if (e->exited)
        msg_put_u64(m, MSG_TAG_EXIT_CODE, e->code);
    if (e->signaled)
        msg_put_u64(m, MSG_TAG_SIGNAL, e->signal);
    msg_put_u64(m, MSG_TAG_WALL_USED, e->wall_ms);
    msg_put_u64(m, MSG_TAG_CPU_USED, e->cpu_ms);
    msg_put_u64(m, MSG_TAG_PEAK_MEM, e->peak_mem);
    msg_put_u64(m, MSG_TAG_STATUS, e->status);
    return msg_end(m);
}

int msg_build_error(struct msg_buf *m, uint32_t id, uint32_t code,
                    const char *message)
{
    msg_begin(m, MSG_ERROR, 0, id);
    msg_put_u64(m, MSG_TAG_ERROR_CODE, code);
    msg_put_str(m, MSG_TAG_MESSAGE, message);
    return msg_end(m);
}

int msg_build_shutdown(struct msg_buf *m, uint32_t id)
{
    msg_begin(m, MSG_SHUTDOWN, 0, id);
    return msg_end(m);
}

int msg_build_announce(struct msg_buf *m, uint32_t id)
{
    msg_begin(m, MSG_ANNOUNCE, 0, id);
    return msg_end(m);
}

/* ---- reader ------------------------------------------------------------ */

static void on_frame(void *opaque, const uint8_t *frame, size_t len)
{
    struct msg_reader *r = opaque;
    struct msg_view v;
    int err = msg_parse(frame, len, &v);

    switch (err) {
    case 0:
        r->stats.messages++;
        r->on_msg(r->opaque, &v);
        return;
    case -EPROTONOSUPPORT:
        r->stats.bad_version++;
        break;
    case -EILSEQ:
        r->stats.bad_crc++;
        break;
    case -EMSGSIZE:
        r->stats.oversize++;
        break;
    default:
        r->stats.bad_frame++;
        break;
    }
    if (r->on_drop)
        r->on_drop(r->opaque, err);
}

int msg_reader_init(struct msg_reader *r, msg_handler_fn on_msg,
                    msg_drop_fn on_drop, void *opaque)
{
    memset(r, 0, sizeof(*r));
    r->on_msg = on_msg;
    r->on_drop = on_drop;
    r->opaque = opaque;
    return slip_decoder_init(&r->slip, MSG_MAX_FRAME);
}

void msg_reader_free(struct msg_reader *r)
{
    slip_decoder_free(&r->slip);
}

void msg_reader_feed(struct msg_reader *r, const uint8_t *data, size_t len)
{
    struct slip_stats before = r->slip.stats;

    slip_decode(&r->slip, data, len, on_frame, r);
    if (!r->on_drop)
        return;
    for (uint64_t i = before.oversize; i < r->slip.stats.oversize; i++)
        r->on_drop(r->opaque, -EMSGSIZE);
    for (uint64_t i = before.bad_escape; i < r->slip.stats.bad_escape; i++)
        r->on_drop(r->opaque, -EBADMSG);
    for (uint64_t i = before.no_memory; i < r->slip.stats.no_memory; i++)
        r->on_drop(r->opaque, -ENOMEM);
}

uint64_t msg_reader_dropped(const struct msg_reader *r)
{
    const struct msg_stats *s = &r->stats;
    const struct slip_stats *ss = &r->slip.stats;
    return s->bad_frame + s->bad_version + s->bad_crc + s->oversize +
           ss->oversize + ss->bad_escape + ss->no_memory;
}
