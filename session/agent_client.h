/* The host side of the agent protocol (docs/protocol.md): speaks to
 * runvm-agent over one connected stream fd (runvm's end of the socketpair
 * behind the guest's /dev/hvc0, or any socket in tests) from an event loop.
 *
 * It waits for HELLO, sends one RUN at a time, streams STDIN, reports
 * OUTPUT, EXIT and ERROR through callbacks, and sends SHUTDOWN and
 * ANNOUNCE. Every message goes through protocol/msg_build.c's builders. Writes
 * are queued and flushed when the fd is writable, so the loop never blocks on
 * a guest that stopped reading. It knows nothing about KVM. */
#ifndef RUNVM_AGENT_CLIENT_H
#define RUNVM_AGENT_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "protocol/msg.h"
#include "core/evloop.h"

/* Longest HELLO string kept (agent version, language, toolchain, source). */
#define AGENT_CLIENT_STR_MAX 128
/* Queued outgoing bytes beyond which agent_client_stdin refuses more. */
#define AGENT_CLIENT_MAX_QUEUED (32u << 20)

/* What the agent said in HELLO, NUL-terminated and truncated to fit. */
struct agent_hello {
    char agent_version[AGENT_CLIENT_STR_MAX];
    char lang[AGENT_CLIENT_STR_MAX];
    char toolchain[AGENT_CLIENT_STR_MAX];
    char source[AGENT_CLIENT_STR_MAX];
    uint32_t id; /* 0: the agent's first word; else the ANNOUNCE's */
};

/* Callbacks, all on the loop thread. Byte fields of the messages are
 * valid only during the call. Any may be NULL. */
struct agent_client_ops {
    /* Every HELLO, the first and any later one (see struct agent_client). */
    void (*hello)(void *opaque, const struct agent_hello *h);
    void (*output)(void *opaque, const struct msg_output *o);
    /* Every EXIT of the current RUN; the one with MSG_EXIT_FINAL ends it. */
    void (*exit)(void *opaque, const struct msg_exit *e);
    /* An ERROR for the current RUN (which it ends) or with id 0 (a frame
     * the agent dropped: the RUN it carried is lost, so it ends too); also
     * made up here (MSG_ERR_INTERNAL) when a HELLO with id 0 arrives
     * during a RUN: that agent started over without it. */
    void (*error)(void *opaque, const struct msg_error *e);
    /* The channel closed or failed (err is -errno or -EPIPE); no more
     * callbacks follow. */
    void (*closed)(void *opaque, int err);
};

struct agent_file {
    /* Plain file name in the work directory; NULL or "": the image's
     * lang.conf SOURCE, chosen by the agent (at most one such file). */
    const char *name;
    const void *data;
    size_t len;
    uint32_t mode; /* 0: 0644 */
};

/* One RUN. NULL argv/env: the image's lang.conf decides; an argv holding
 * only NULL: no such step (an empty build list skips the build). */
struct agent_request {
    const struct agent_file *files;
    size_t nfiles;
    const char *const *build_argv;
    const char *const *run_argv;
    const char *const *env;
    const void *stdin_data; /* sent inside the RUN, then EOF */
    size_t stdin_len;
    bool stdin_open; /* stdin continues in agent_client_stdin calls */
    uint16_t flags;  /* MSG_RUN_REUSE_WORKDIR, MSG_RUN_SKIP_BUILD */
    /* 0: the agent's default. limits are the run step's, and the build
     * step's too unless has_build_limits gives it build_limits. */
    struct msg_limits limits;
    bool has_build_limits;
    struct msg_limits build_limits;
};

struct agent_client {
    int fd;
    struct evloop *loop;
    const struct agent_client_ops *ops;
    void *opaque;
    struct msg_reader reader;
    struct msg_buf wire;    /* SLIP bytes waiting for the fd */
    struct msg_buf scratch; /* one message being built */
    bool watching_out;      /* EPOLLOUT asked for */
    /* A HELLO arrived. A later one (the answer to agent_client_announce,
     * carrying its id, or an agent's unasked first word, id 0) replaces
     * hello and calls ops->hello again; RUNs may be sent from the first
     * on. A later HELLO leaves the RUN in progress alone, except one with
     * id 0: that agent started over, so the RUN is reported lost through
     * ops->error. */
    bool have_hello;
    bool run_active;
    bool closed;
    uint32_t next_id;
    uint32_t run_id;
    /* The last ANNOUNCE, until its HELLO: an ERROR with its id goes to
     * ops->error (the agent could not take its entropy or time). */
    bool announce_pending;
    uint32_t announce_id;
    uint32_t hellos;          /* HELLOs received */
    struct agent_hello hello; /* from the latest HELLO */
    uint64_t bytes_in, bytes_out, dropped;
};

/* Starts serving fd (a connected stream; made non-blocking, not owned) on
 * loop. 0 or -errno. */
int agent_client_init(struct agent_client *c, struct evloop *loop, int fd,
                      const struct agent_client_ops *ops, void *opaque)
    __attribute__((warn_unused_result));

/* Stops watching the fd and frees buffers; does not close the fd. */
void agent_client_free(struct agent_client *c);

/* Queues a RUN (build and run step in one). 0 and its id in *id (may be
 * NULL), -EAGAIN before HELLO, -EBUSY while a RUN is active, -EPIPE after
 * the channel closed, -E2BIG over MSG_MAX_FILES files, -EMSGSIZE when it
 * exceeds MSG_MAX_PAYLOAD, -ENOMEM. */
int agent_client_run(struct agent_client *c, const struct agent_request *req,
                     uint32_t *id) __attribute__((warn_unused_result));

/* Queues stdin for the active RUN (started with stdin_open), split into
 * MSG_CHUNK pieces; eof closes it. 0, -ENOENT with no active RUN, -ENOBUFS
 * when too much is queued already, -EPIPE, -ENOMEM. */
int agent_client_stdin(struct agent_client *c, const void *p, size_t n,
                       bool eof) __attribute__((warn_unused_result));

/* Queues SHUTDOWN (the agent syncs and reboots the guest). 0 or -errno. */
int agent_client_shutdown(struct agent_client *c)
    __attribute__((warn_unused_result));

/* Queues ANNOUNCE with a's entropy and time (a may be NULL): the agent
 * answers with a HELLO carrying the id put in *id (may be NULL). For an
 * agent whose first HELLO this client never saw (a VM restored from a
 * snapshot); allowed before HELLO and during a RUN. 0, -EPIPE after the
 * channel closed, -EINVAL (too much entropy), -ENOMEM. */
int agent_client_announce(struct agent_client *c, const struct msg_announce *a,
                          uint32_t *id) __attribute__((warn_unused_result));

/* Bytes not yet written to the fd. */
size_t agent_client_queued(const struct agent_client *c);

#endif
