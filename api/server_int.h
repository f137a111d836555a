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
#include "api/httpd.h"
#include "api/run.h"
#include "api/server.h"
#include "protocol/msg.h"
#include "session/session.h"

#define API_MAX_CONNS 16

struct api_server {
    struct evloop *loop; /* outlives every VM the server serves */
    struct vm *vm;       /* the current submission's; NULL while renewed */
    struct api_server_config cfg;
    struct agent_channel *ch; /* the machine's */
    struct session session;
    bool stopping; /* PUT /shutdown, or the agent is gone */
    bool shutdown_requested;
    struct httpd http;
    bool own_sock;                    /* we created cfg.sock_path */
    char rundir[PATH_MAX];            /* where output sockets are made */
    struct httpd_conn *pending_start; /* POST /start waiting for HELLO */
    bool renewing; /* a fresh VM is being made for pending_start */
    bool paused;   /* cfg.pause_at_ready: at the first HELLO */
    uint64_t renewals;
    struct api_run run;
    /* Counters for GET /status. */
    uint64_t runs, stalled_readers;
    uint64_t t_hello_ns;
};

/* The agent is ready: starts the POST /start that waited for it. */
void api_run_ready(struct api_server *s);

#endif
