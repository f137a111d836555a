/* POST /start and the run it starts: the request becomes one RUN of the
 * session (api/request.c), and the run's events (session/event.h) go out
 * as NDJSON on an output socket of runvm's own, read once, ending with the
 * `exit` event. Also the session's sink: API mode's answer to each thing
 * the agent reports. */
#ifndef RUNVM_API_RUN_H
#define RUNVM_API_RUN_H

#include <limits.h>
#include <stdbool.h>

#include "api/http.h"
#include "protocol/msg.h"
#include "session/session.h"

struct api_server;
struct httpd_conn;

/* The current (or last) run's output socket. */
struct api_run {
    int listen_fd;         /* until its one reader connects */
    int fd;                /* the reader */
    char path[PATH_MAX];   /* while listen_fd listens, else "" */
    struct msg_buf events; /* NDJSON lines not yet read */
    bool done;             /* the final event is queued */
    bool gone;             /* its reader was cut off: events are dropped */
};

/* Where the session's events go; opaque is the struct api_server. */
extern const struct session_sink api_run_sink;

/* An empty run: no socket, nothing queued. */
void api_run_init(struct api_run *r);

/* POST /start on c: answers it now (200 with the output socket, or an
 * error), or, while the VM boots, keeps c waiting for the agent's HELLO
 * (it must then not read further; req stays valid until answered). */
void api_run_post_start(struct api_server *s, struct httpd_conn *c,
                        const struct http_request *req);

/* Closes the output socket, removes its file and frees what is queued. */
void api_run_free(struct api_server *s);

/* The VM stopped (why): a run still going ends with an exit event saying
 * so, sent now if its reader is there, and a start waiting for the VM is
 * refused; nothing ends its stream without a word. */
void api_run_vm_stopped(struct api_server *s, const char *why);

#endif
