/* The growable byte buffer messages are built in and queued for a channel;
 * its first error is sticky (msg.h). */
#include "protocol/msg.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

void msg_buf_init(struct msg_buf *m)
{
    memset(m, 0, sizeof(*m));
}

void msg_buf_free(struct msg_buf *m)
{
    free(m->data);
    msg_buf_init(m);
}

void msg_buf_reset(struct msg_buf *m)
{
    m->len = 0;
    m->start = 0;
    m->err = 0;
}

void msg_buf_consume(struct msg_buf *m, size_t n)
{
    if (n >= m->len) {
        m->len = 0;
    } else {
        memmove(m->data, m->data + n, m->len - n);
        m->len -= n;
    }
    m->start = m->start > n ? m->start - n : 0;
}

uint8_t *msg_buf_reserve(struct msg_buf *m, size_t n)
{
    if (m->err)
        return NULL;
    size_t need;
    if (__builtin_add_overflow(m->len, n, &need)) {
        m->err = -ENOMEM;
        return NULL;
    }
    if (need > m->cap) {
        size_t cap = m->cap ? m->cap : 256;
        while (cap < need) {
            if (__builtin_mul_overflow(cap, 2, &cap)) {
                m->err = -ENOMEM;
                return NULL;
            }
        }
        uint8_t *nd = realloc(m->data, cap);
        if (!nd) {
            m->err = -ENOMEM;
            return NULL;
        }
        m->data = nd;
        m->cap = cap;
    }
    uint8_t *p = m->data + m->len;
    m->len += n;
    return p;
}

void msg_buf_append(struct msg_buf *m, const void *p, size_t n)
{
    if (n == 0)
        return; /* nothing: and no pointer arithmetic on an empty buffer */
    uint8_t *d = msg_buf_reserve(m, n);
    if (d)
        memcpy(d, p, n);
}
