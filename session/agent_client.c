#include "session/agent_client.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define READ_CHUNK 65536

static void copy_field(char *dst, struct msg_bytes b)
{
    size_t n =
        b.len < AGENT_CLIENT_STR_MAX - 1 ? b.len : AGENT_CLIENT_STR_MAX - 1;
    if (n)
        memcpy(dst, b.p, n);
    dst[n] = '\0';
    /* A HELLO string ends up on terminals and in JSON: printable ASCII
     * only (no C0 or C1 controls, no 8-bit CSI). */
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)dst[i] < 0x20 || (unsigned char)dst[i] >= 0x7f)
            dst[i] = '?';
}

/* Reports the end of the channel once and stops watching it. */
static void close_channel(struct agent_client *c, int err)
{
    if (c->closed)
        return;
    c->closed = true;
    c->run_active = false;
    evloop_del(c->loop, c->fd);
    if (c->ops->closed)
        c->ops->closed(c->opaque, err);
}

static void update_watch(struct agent_client *c)
{
    bool want = c->wire.len > 0;
    if (c->closed || want == c->watching_out)
        return;
    c->watching_out = want;
    (void)evloop_mod(c->loop, c->fd, EPOLLIN | (want ? EPOLLOUT : 0));
}

static void flush(struct agent_client *c)
{
    while (c->wire.len > 0 && !c->closed) {
        ssize_t n =
            send(c->fd, c->wire.data, c->wire.len, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0 && errno == ENOTSOCK)
            n = write(c->fd, c->wire.data, c->wire.len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                break;
            close_channel(c, -errno);
            return;
        }
        c->bytes_out += (uint64_t)n;
        msg_buf_consume(&c->wire, (size_t)n);
    }
    update_watch(c);
}

static void on_msg(void *opaque, const struct msg_view *v)
{
    struct agent_client *c = opaque;
    if (c->closed)
        return;
    switch (v->type) {
    case MSG_HELLO: {
        struct msg_hello h;
        if (msg_decode_hello(v, &h) < 0) {
            c->dropped++;
            return;
        }
        /* Every HELLO replaces the last (agent_client.h). */
        copy_field(c->hello.agent_version, h.agent_version);
        copy_field(c->hello.lang, h.lang);
        copy_field(c->hello.toolchain, h.toolchain);
        copy_field(c->hello.source, h.source);
        c->hello.id = v->id;
        if (c->announce_pending && v->id == c->announce_id)
            c->announce_pending = false;
        c->have_hello = true;
        c->hellos++;
        if (v->id == 0 && c->run_active) {
            /* Id 0 is an agent's first word: it started over, and the RUN
             * we wait for went with its previous life. */
            static const char why[] = "the agent started over during the "
                                      "run";
            struct msg_error e = {MSG_ERR_INTERNAL,
                                  {(const uint8_t *)why, sizeof(why) - 1}};
            c->run_active = false;
            if (c->ops->error)
                c->ops->error(c->opaque, &e);
            if (c->closed)
                return;
        }
        if (c->ops->hello)
            c->ops->hello(c->opaque, &c->hello);
        return;
    }
    case MSG_OUTPUT: {
        struct msg_output o;
        /* Output of a RUN that already ended (or another id) is stale. */
        if (!c->run_active || v->id != c->run_id ||
            msg_decode_output(v, &o) < 0) {
            c->dropped++;
            return;
        }
        if (c->ops->output)
            c->ops->output(c->opaque, &o);
        return;
    }
    case MSG_EXIT: {
        struct msg_exit e;
        if (!c->run_active || v->id != c->run_id ||
            msg_decode_exit(v, &e) < 0) {
            c->dropped++;
            return;
        }
        if (e.status & MSG_EXIT_FINAL)
            c->run_active = false;
        if (c->ops->exit)
            c->ops->exit(c->opaque, &e);
        return;
    }
    case MSG_ERROR: {
        struct msg_error e;
        if (msg_decode_error(v, &e) < 0) {
            c->dropped++;
            return;
        }
        /* The agent could not do what our last ANNOUNCE asked. */
        if (c->announce_pending && v->id == c->announce_id) {
            c->announce_pending = false;
            if (c->ops->error)
                c->ops->error(c->opaque, &e);
            return;
        }
        /* Id 0: the agent dropped a frame of ours; if a RUN was waiting
         * for its first reply, that RUN is what got lost. */
        if (!c->run_active || (v->id != c->run_id && v->id != 0)) {
            c->dropped++;
            return;
        }
        c->run_active = false;
        if (c->ops->error)
            c->ops->error(c->opaque, &e);
        return;
    }
    default:
        /* Host-bound types only; the host never answers (protocol §3). */
        c->dropped++;
        return;
    }
}

static void on_drop(void *opaque, int err)
{
    struct agent_client *c = opaque;
    (void)err;
    c->dropped++;
}

static void ready(void *opaque, uint32_t events)
{
    struct agent_client *c = opaque;
    if (events & EPOLLOUT)
        flush(c);
    if (c->closed || !(events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
        return;
    /* Bounded per wake-up so other fds on the loop get their turn. */
    for (int round = 0; round < 16 && !c->closed; round++) {
        uint8_t buf[READ_CHUNK];
        ssize_t n = read(c->fd, buf, sizeof(buf));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        if (n <= 0) {
            close_channel(c, n == 0 ? -EPIPE : -errno);
            return;
        }
        c->bytes_in += (uint64_t)n;
        msg_reader_feed(&c->reader, buf, (size_t)n);
    }
}

int agent_client_init(struct agent_client *c, struct evloop *loop, int fd,
                      const struct agent_client_ops *ops, void *opaque)
{
    memset(c, 0, sizeof(*c));
    c->fd = fd;
    c->loop = loop;
    c->ops = ops;
    c->opaque = opaque;
    c->next_id = 1;
    msg_buf_init(&c->wire);
    msg_buf_init(&c->scratch);
    int flags = fcntl(fd, F_GETFL);
    if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0)
        return -errno;
    int ret = msg_reader_init(&c->reader, on_msg, on_drop, c);
    if (ret < 0)
        return ret;
    ret = evloop_add(loop, fd, EPOLLIN, ready, c);
    if (ret < 0) {
        msg_reader_free(&c->reader);
        return ret;
    }
    return 0;
}

void agent_client_free(struct agent_client *c)
{
    if (!c->closed)
        evloop_del(c->loop, c->fd);
    c->closed = true;
    msg_reader_free(&c->reader);
    msg_buf_free(&c->wire);
    msg_buf_free(&c->scratch);
}

/* Moves the message a msg_build_* call (returning built) left in scratch
 * onto the wire, SLIP-encoded. 0 or -errno; scratch is empty after. */
static int queue_built(struct agent_client *c, int built)
{
    if (built == 0)
        built = msg_slip_append(&c->wire, c->scratch.data, c->scratch.len);
    msg_buf_reset(&c->scratch);
    return built;
}

static uint32_t new_id(struct agent_client *c)
{
    uint32_t id = c->next_id++;
    if (c->next_id == 0)
        c->next_id = 1; /* 0 means "no request" in ERROR and HELLO */
    return id;
}

/* Appends argv to store as a string list (each string and its NUL) and
 * returns the list's offset there; *len gets its length. The list's
 * pointer is taken once store stops growing. */
static size_t pack_argv(struct msg_buf *store, const char *const *argv,
                        uint32_t *len)
{
    size_t off = store->len;
    for (size_t i = 0; argv[i]; i++)
        msg_buf_append(store, argv[i], strlen(argv[i]) + 1);
    *len = (uint32_t)(store->len - off);
    return off;
}

int agent_client_run(struct agent_client *c, const struct agent_request *req,
                     uint32_t *id)
{
    if (c->closed)
        return -EPIPE;
    if (!c->have_hello)
        return -EAGAIN;
    if (c->run_active)
        return -EBUSY;
    if (req->nfiles > MSG_MAX_FILES)
        return -E2BIG;
    if (req->stdin_len > MSG_MAX_PAYLOAD)
        return -EMSGSIZE;

    /* The request in the form protocol/msg_build.c's RUN builder takes: the
     * encoder the unit tests check is the one runvm sends with. */
    struct msg_run run = {
        .flags = req->flags & (MSG_RUN_REUSE_WORKDIR | MSG_RUN_SKIP_BUILD),
        .nfiles = req->nfiles,
        .limits = req->limits,
        .has_build_limits = req->has_build_limits,
        .build_limits = req->build_limits,
    };
    if (req->stdin_open)
        run.flags |= MSG_RUN_STDIN_OPEN;
    for (size_t i = 0; i < req->nfiles; i++) {
        const struct agent_file *f = &req->files[i];
        size_t name_len = f->name ? strlen(f->name) : 0;
        if (f->len > MSG_MAX_PAYLOAD || name_len > MSG_MAX_PAYLOAD)
            return -EMSGSIZE;
        run.files[i] = (struct msg_file){
            .name = {(const uint8_t *)f->name, (uint32_t)name_len},
            .data = {f->data, (uint32_t)f->len},
            .mode = f->mode,
        };
    }
    if (req->stdin_len)
        run.stdin_data =
            (struct msg_bytes){req->stdin_data, (uint32_t)req->stdin_len};
    /* The argv lists as string lists, packed in one buffer. */
    const char *const *argvs[3] = {req->build_argv, req->run_argv, req->env};
    struct msg_strlist *lists[3] = {&run.build_argv, &run.run_argv, &run.env};
    size_t offs[3] = {0};
    struct msg_buf store;
    msg_buf_init(&store);
    for (int i = 0; i < 3; i++)
        if (argvs[i])
            offs[i] = pack_argv(&store, argvs[i], &lists[i]->len);
    for (int i = 0; i < 3; i++)
        if (argvs[i]) {
            lists[i]->present = true;
            lists[i]->p = store.data ? store.data + offs[i] : NULL;
        }

    uint32_t rid = new_id(c);
    int ret = store.err ? store.err : msg_build_run(&c->scratch, rid, &run);
    ret = queue_built(c, ret);
    msg_buf_free(&store);
    if (ret < 0)
        return ret;
    flush(c);
    if (c->closed)
        return -EPIPE; /* the send found the channel gone (closed told) */
    c->run_active = true;
    c->run_id = rid;
    if (id)
        *id = rid;
    return 0;
}

int agent_client_stdin(struct agent_client *c, const void *p, size_t n,
                       bool eof)
{
    if (c->closed)
        return -EPIPE;
    if (!c->run_active)
        return -ENOENT;
    if (c->wire.len > AGENT_CLIENT_MAX_QUEUED)
        return -ENOBUFS;
    const uint8_t *b = p;
    do {
        size_t chunk = n < MSG_CHUNK ? n : MSG_CHUNK;
        bool last = chunk == n;
        int ret = queue_built(
            c, msg_build_stdin(&c->scratch, c->run_id, b, chunk, last && eof));
        if (ret < 0)
            return ret;
        b += chunk;
        n -= chunk;
    } while (n > 0);
    flush(c);
    return 0;
}

int agent_client_shutdown(struct agent_client *c)
{
    if (c->closed)
        return -EPIPE;
    int ret = queue_built(c, msg_build_shutdown(&c->scratch, 0));
    if (ret < 0)
        return ret;
    flush(c);
    return 0;
}

int agent_client_announce(struct agent_client *c, const struct msg_announce *a,
                          uint32_t *id)
{
    if (c->closed)
        return -EPIPE;
    uint32_t aid = new_id(c);
    int ret = queue_built(c, msg_build_announce(&c->scratch, aid, a));
    if (ret < 0)
        return ret;
    c->announce_id = aid;
    c->announce_pending = true;
    flush(c);
    if (id)
        *id = aid;
    return 0;
}

size_t agent_client_queued(const struct agent_client *c)
{
    return c->wire.len;
}
