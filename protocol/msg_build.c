/* Typed builders: one complete HELLO, RUN, STDIN, OUTPUT, EXIT, ERROR,
 * SHUTDOWN or ANNOUNCE message from its struct or arguments. */
#include "protocol/msg.h"

#include <errno.h>

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

int msg_build_announce(struct msg_buf *m, uint32_t id,
                       const struct msg_announce *a)
{
    if (a && a->entropy.len > MSG_MAX_ENTROPY)
        return -EINVAL;
    msg_begin(m, MSG_ANNOUNCE, 0, id);
    if (a && a->entropy.len)
        msg_put_bytes(m, MSG_TAG_ENTROPY, a->entropy.p, a->entropy.len);
    if (a && a->has_realtime)
        msg_put_u64(m, MSG_TAG_REALTIME_NS, a->realtime_ns);
    return msg_end(m);
}
