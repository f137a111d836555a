#include "arch/cmdline.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

void cmdline_init(struct cmdline *cl)
{
    cl->buf[0] = '\0';
    cl->len = 0;
}

int cmdline_append(struct cmdline *cl, const char *fragment)
{
    const char *start = fragment;
    while (*start == ' ' || *start == '\t')
        start++;
    size_t n = strlen(start);
    while (n > 0 && (start[n - 1] == ' ' || start[n - 1] == '\t'))
        n--;
    if (n == 0)
        return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)start[i];
        if (c < 0x20 && c != '\t')
            return -EINVAL;
        if (c == 0x7f)
            return -EINVAL;
    }
    size_t sep = cl->len > 0 ? 1 : 0;
    /* len + sep + n characters and the NUL must fit. */
    if (n > CMDLINE_BUF_MAX || cl->len + sep + n + 1 > CMDLINE_BUF_MAX)
        return -ENOSPC;
    if (sep)
        cl->buf[cl->len++] = ' ';
    memcpy(cl->buf + cl->len, start, n);
    cl->len += n;
    cl->buf[cl->len] = '\0';
    return 0;
}

int cmdline_appendf(struct cmdline *cl, const char *fmt, ...)
{
    char tmp[CMDLINE_BUF_MAX];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    if (n < 0)
        return -EINVAL;
    if ((size_t)n >= sizeof(tmp))
        return -ENOSPC;
    return cmdline_append(cl, tmp);
}

int cmdline_has(const struct cmdline *cl, const char *word)
{
    size_t wl = strlen(word);
    const char *p = cl->buf;
    while (*p) {
        while (*p == ' ' || *p == '\t')
            p++;
        const char *end = p;
        while (*end && *end != ' ' && *end != '\t')
            end++;
        size_t len = (size_t)(end - p);
        if (wl > 0 && len >= wl && memcmp(p, word, wl) == 0 &&
            (len == wl || p[wl] == '='))
            return 1;
        p = end;
    }
    return 0;
}
