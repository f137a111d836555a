#include "api/http.h"

#include <ctype.h>
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

static bool tchar(char c)
{
    /* strchr finds the terminator too: NUL is checked first. */
    return c != '\0' &&
           (isalnum((unsigned char)c) || strchr("!#$%&'*+-.^_`|~", c));
}

/* Case-insensitive compare of a header name of length n with name. */
static bool name_is(const char *p, size_t n, const char *name)
{
    return strlen(name) == n && strncasecmp(p, name, n) == 0;
}

int http_parse(const char *buf, size_t len, size_t max_body,
               struct http_request *req)
{
    memset(req, 0, sizeof(*req));
    const char *end = NULL;
    size_t scan = len < HTTP_MAX_HEAD ? len : HTTP_MAX_HEAD;
    for (size_t i = 3; i < scan; i++)
        if (buf[i - 3] == '\r' && buf[i - 2] == '\n' && buf[i - 1] == '\r' &&
            buf[i] == '\n') {
            end = buf + i + 1;
            break;
        }
    if (!end)
        return len >= HTTP_MAX_HEAD ? -431 : 0;
    req->head_len = (size_t)(end - buf);

    /* Request line: METHOD SP TARGET SP HTTP/1.x CRLF (RFC 9112 §3). */
    const char *p = buf, *eol = memchr(buf, '\r', req->head_len);
    if (eol[1] != '\n')
        return -400;
    const char *sp = memchr(p, ' ', (size_t)(eol - p));
    if (!sp || sp == p)
        return -400;
    size_t n = (size_t)(sp - p);
    for (size_t i = 0; i < n; i++)
        if (!tchar(p[i]))
            return -400;
    if (n >= sizeof(req->method))
        return -405;
    memcpy(req->method, p, n);
    p = sp + 1;
    sp = memchr(p, ' ', (size_t)(eol - p));
    if (!sp || sp == p || *p != '/')
        return -400;
    n = (size_t)(sp - p);
    if (n >= sizeof(req->path))
        return -414;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)p[i] <= 0x20 || (unsigned char)p[i] >= 0x7f)
            return -400;
    memcpy(req->path, p, n);
    /* The query string plays no part in routing. */
    char *q = strchr(req->path, '?');
    if (q) {
        memcpy(req->query, q + 1, strlen(q + 1) + 1);
        *q = '\0';
    }
    p = sp + 1;
    if ((size_t)(eol - p) != 8 || strncmp(p, "HTTP/1.", 7) != 0)
        return eol - p >= 5 && strncmp(p, "HTTP/", 5) == 0 ? -505 : -400;
    if (p[7] != '0' && p[7] != '1')
        return -505;
    req->http10 = p[7] == '0';

    bool have_length = false, chunked = false;
    p = eol + 2;
    while (p < end - 2) {
        eol = memchr(p, '\r', (size_t)(end - p));
        if (!eol || eol[1] != '\n')
            return -400;
        const char *colon = memchr(p, ':', (size_t)(eol - p));
        if (!colon || colon == p)
            return -400;
        size_t name_len = (size_t)(colon - p);
        for (size_t i = 0; i < name_len; i++)
            if (!tchar(p[i]))
                return -400; /* also rejects obsolete line folding */
        const char *v = colon + 1, *ve = eol;
        while (v < ve && (*v == ' ' || *v == '\t'))
            v++;
        while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
            ve--;
        for (const char *c = v; c < ve; c++)
            if ((unsigned char)*c < 0x20 && *c != '\t')
                return -400;
        if (name_is(p, name_len, "content-length")) {
            /* Digits only; a second, different length is smuggling. */
            if (v == ve || ve - v > 12)
                return v == ve ? -400 : -413;
            size_t cl = 0;
            for (const char *c = v; c < ve; c++) {
                if (*c < '0' || *c > '9')
                    return -400;
                cl = cl * 10 + (size_t)(*c - '0');
            }
            if (have_length && cl != req->content_length)
                return -400;
            have_length = true;
            req->content_length = cl;
        } else if (name_is(p, name_len, "transfer-encoding")) {
            chunked = true;
        } else if (name_is(p, name_len, "content-type")) {
            size_t i = 0;
            for (const char *c = v; c < ve && *c != ';' && *c != ' ' &&
                                    i + 1 < sizeof(req->content_type);
                 c++)
                req->content_type[i++] = (char)tolower((unsigned char)*c);
            req->content_type[i] = '\0';
        }
        p = eol + 2;
    }
    if (chunked)
        return have_length ? -400 : -411;
    if (req->content_length > max_body)
        return -413;
    if (len - req->head_len < req->content_length)
        return 0;
    req->body = end;
    return 1;
}

const char *http_reason(int status)
{
    switch (status) {
    case 200: return "OK";
    case 400: return "Bad Request";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 411: return "Length Required";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 415: return "Unsupported Media Type";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 503: return "Service Unavailable";
    case 505: return "HTTP Version Not Supported";
    default: return "Error";
    }
}

bool http_query_param(const struct http_request *req, const char *name,
                      char *out, size_t len)
{
    size_t nlen = strlen(name);
    for (const char *p = req->query; *p;) {
        const char *end = strchr(p, '&');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        if (n > nlen && !strncmp(p, name, nlen) && p[nlen] == '=') {
            size_t vlen = n - nlen - 1;
            if (vlen == 0 || vlen >= len)
                return false;
            memcpy(out, p + nlen + 1, vlen);
            out[vlen] = '\0';
            return true;
        }
        p += n + (end ? 1 : 0);
    }
    return false;
}
