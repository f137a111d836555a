/* The HTTP/1.1 server both front ends share, API mode (api/server.c) and
 * `runvm serve` (api/serve.c): connections accepted on listening sockets,
 * one request each (api/http.c parses it), handed to the owner's route
 * function, answered once with "Connection: close". Bounded: connections
 * overall and per client (a Unix socket's peer uid), a deadline to send a
 * whole request (408) and one to take the answer. Runs on the caller's
 * event loop; no threads. */
#ifndef RUNVM_HTTPD_H
#define RUNVM_HTTPD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "api/http.h"
#include "core/evloop.h"
#include "protocol/msg.h"

struct httpd;

/* One client connection: one request, one answer. */
struct httpd_conn {
    struct httpd *h;
    int fd;           /* -1: a free slot */
    uint64_t client;  /* what the per-client cap counts: the peer's uid,
                         or a hash of its address on TCP */
    bool tcp;         /* accepted on a TCP listener */
    bool streaming;   /* httpd_stream_begin: chunks until httpd_stream_end */
    bool chunked;     /* the stream is chunked (not to an HTTP/1.0 client) */
    bool ended;       /* the last chunk is queued */
    uint64_t sent_ns; /* bytes of the answer last went out */
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
    void *data;           /* the owner's, while it holds the connection */
};

struct httpd_config {
    unsigned int max_conns;      /* overall */
    unsigned int max_per_client; /* 0: max_conns */
    unsigned int idle_ms;        /* to send a request; to take an answer */
    size_t max_body;             /* HTTP_MAX_BODY when 0 */
    /* A whole request on c: answer it (httpd_reply) or hold it
     * (httpd_hold) and answer later. req lives as long as c. */
    void (*route)(void *opaque, struct httpd_conn *c,
                  const struct http_request *req);
    /* c is closing: its owner lets go of it (NULL: nothing to do). */
    void (*closed)(void *opaque, struct httpd_conn *c);
    /* A streamed answer's queued bytes went out (NULL: not told). */
    void (*drained)(void *opaque, struct httpd_conn *c);
    void *opaque;
};

struct httpd {
    struct evloop *loop;
    struct httpd_config cfg;
    struct httpd_conn *conns; /* cfg.max_conns slots */
    int listen_fd[2];
    bool listen_tcp[2];
    int tick_fd; /* timerfd sweeping idle connections */
    /* Counters for a status page. */
    uint64_t requests, rejected, idle_closed, refused_conns;
};

/* Serves connections accepted on listen_fd (a listening, non-blocking
 * socket the server then owns) on loop. 0 or -errno with a message in
 * err. */
int httpd_init(struct httpd *h, struct evloop *loop, int listen_fd,
               const struct httpd_config *cfg, char *err, size_t err_len)
    __attribute__((warn_unused_result));

/* Also serves connections accepted on listen_fd (a second listening
 * socket, e.g. TCP beside the Unix one). 0 or -errno (-ENOSPC: two are
 * there already). */
int httpd_add_listener(struct httpd *h, int listen_fd)
    __attribute__((warn_unused_result));

/* Closes every connection and the listening sockets. Zeroed is fine. */
void httpd_free(struct httpd *h);

/* The handler keeps c to answer later: nothing more is read from it and
 * it has no deadline until answered. */
void httpd_hold(struct httpd_conn *c);

/* Sends a complete response with a JSON body (a newline is added) and
 * closes the connection once it is taken. extra: more header lines, each
 * ending "\r\n", or NULL. */
void httpd_reply_with(struct httpd_conn *c, int status, const char *extra,
                      const char *body);
void httpd_reply(struct httpd_conn *c, int status, const char *body);
/* The same with a body of another media type. */
void httpd_reply_as(struct httpd_conn *c, int status, const char *type,
                    const char *extra, const char *body);

/* A streamed answer: the head of a chunked response of content_type
 * (with extra, header lines each ending in CRLF, or NULL), then
 * httpd_stream_write's chunks, then httpd_stream_end (the connection
 * closes once all is sent). To an HTTP/1.0 client, which knows no chunks,
 * the bytes go as they are and the close ends them. A client that hangs up
 * closes it (cfg.closed). The connection has no deadline meanwhile. */
void httpd_stream_begin(struct httpd_conn *c, int status,
                        const char *content_type, const char *extra);
/* Queues n bytes as a chunk for the loop to send (never closing c under
 * its caller); returns the bytes queued (cfg.drained says when they are
 * gone). */
size_t httpd_stream_write(struct httpd_conn *c, const void *p, size_t n);
void httpd_stream_end(struct httpd_conn *c);

/* Closes c at once, without a word: a streamed answer cut short. */
void httpd_close(struct httpd_conn *c);

/* httpd_reply with the body {"error": message}. */
void httpd_reply_error(struct httpd_conn *c, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* The routes' "no such endpoint" answer: 404 listing methods[i] paths[i],
 * or 405 naming the method path takes when only the method is wrong.
 * Returns the index of the route that matches req, or -1 once answered. */
struct httpd_route {
    const char *method;
    const char *path;
};
int httpd_match(struct httpd_conn *c, const struct http_request *req,
                const struct httpd_route *routes, size_t n);

/* A private directory (mode 0700) for a server's sockets, made fresh:
 * $XDG_RUNTIME_DIR/PREFIX.XXXXXX, else /tmp/PREFIX.XXXXXX, into out.
 * 0, or -errno with a message in err (out is then ""). */
int httpd_rundir(const char *prefix, char *out, size_t len, char *err,
                 size_t err_len) __attribute__((warn_unused_result));

/* A listening Unix socket at path, mode 0600 from the start. The fd, or
 * -errno with a message in err. */
int httpd_listen_unix(const char *path, char *err, size_t err_len);

/* A listening TCP socket on spec: PORT (127.0.0.1), ADDR:PORT (IPv4) or
 * [ADDR]:PORT (IPv6). The fd, or -errno with a message in err. */
int httpd_listen_tcp(const char *spec, char *err, size_t err_len);

#endif
