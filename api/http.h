/* A deliberately small HTTP/1.1 request parser for API mode: one request
 * per connection (the server always answers "Connection: close"), a body
 * only with Content-Length, sizes capped. Pure: bytes in, verdict out;
 * tests/fuzz/fuzz_http.c feeds it arbitrary bytes. */
#ifndef RUNVM_HTTP_H
#define RUNVM_HTTP_H

#include <stdbool.h>
#include <stddef.h>

#define HTTP_MAX_HEAD 8192       /* request line + headers */
#define HTTP_MAX_BODY (4u << 20) /* POST /start body */

struct http_request {
    char method[8];
    char path[128];
    char query[128];       /* what followed a '?' in the target, or "" */
    char content_type[64]; /* media type only, lower case, no parameters */
    size_t head_len;       /* bytes up to and including the blank line */
    size_t content_length;
    bool http10;      /* HTTP/1.0: it cannot take a chunked answer */
    const char *body; /* points into the caller's buffer */
};

/* Parses buf[0..len). Returns 1 when a whole request (head and body) is
 * there, 0 when more bytes are needed, or a negative HTTP status to
 * answer with: -400 malformed, -405 unsupported method, -411 no length
 * for a body (chunked), -413 body over max_body, -414 path too long,
 * -431 head over HTTP_MAX_HEAD, -505 not HTTP/1.x. */
int http_parse(const char *buf, size_t len, size_t max_body,
               struct http_request *req);

/* The value of name in req's query string ("lang=go&x=1"), as given
 * (no percent-decoding: a value that needs it is not one runvm takes),
 * into out: true, or false when absent, empty or longer than len - 1. */
bool http_query_param(const struct http_request *req, const char *name,
                      char *out, size_t len);

/* Reason phrase of a status code ("Not Found"). */
const char *http_reason(int status);

#endif
