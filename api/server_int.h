/* API mode's internals shared by api/server.c (listening, connections,
 * replies, routing) and api/run.c (POST /start, the output socket). Not
 * for use outside api/. */
#ifndef RUNVM_API_SERVER_INT_H
#define RUNVM_API_SERVER_INT_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "api/http.h"
#include "api/run.h"
#include "api/server.h"
#include "protocol/msg.h"
#include "session/session.h"

#define API_MAX_CONNS 16

/* One client connection: one request, one answer. */
struct api_conn {
    struct api_server *s;
    int fd; /* -1: a free slot */
    struct msg_buf in;
    struct msg_buf out;
    /* Parsed from in once it held a whole request; in is not appended to
     * afterwards, so req's body stays valid until the connection closes. */
    struct http_request req;
    bool have_request;
    bool replying;
    bool drain; /* after the reply, read the rest of the request */
    size_t drained;
    uint64_t deadline_ns; /* closed past it; 0: held by a handler */
};

struct api_server {
    struct evloop *loop; /* outlives every VM the server serves */
    struct vm *vm;       /* the current submission's; NULL while renewed */
    struct api_server_config cfg;
    struct agent_channel *ch; /* the machine's */
    struct session session;
    bool stopping; /* PUT /shutdown, or the agent is gone */
    bool shutdown_requested;
    int listen_fd;
    bool own_sock;         /* we created cfg.sock_path */
    char rundir[PATH_MAX]; /* where output sockets are made */
    struct api_conn conns[API_MAX_CONNS];
    struct api_conn *pending_start; /* POST /start waiting for HELLO */
    bool renewing; /* a fresh VM is being made for pending_start */
    bool paused;   /* cfg.pause_at_ready: at the first HELLO */
    uint64_t renewals;
    struct api_run run;
    /* Counters for GET /status. */
    uint64_t requests, runs, rejected, stalled_readers, idle_closed;
    int tick_fd; /* timerfd sweeping idle connections */
    uint64_t t_hello_ns;
};

/* The agent is ready: starts the POST /start that waited for it. */
void api_run_ready(struct api_server *s);

/* Sends a complete response with a JSON body (a newline is added) and
 * closes the connection afterwards. */
void api_reply(struct api_conn *c, int status, const char *body);

/* api_reply with the body {"error": message}. */
void api_reply_error(struct api_conn *c, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* A listening Unix socket at path, mode 0600 from the start. The fd, or
 * -errno with a message in err. */
int api_listen_unix(const char *path, char *err, size_t err_len);

#endif
