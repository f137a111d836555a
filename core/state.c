#include "core/state.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

void state_w_init(struct state_w *w)
{
    *w = (struct state_w){0};
}

void state_w_free(struct state_w *w)
{
    free(w->buf);
    *w = (struct state_w){0};
}

void state_put_bytes(struct state_w *w, const void *p, size_t n)
{
    if (w->err || n == 0)
        return;
    if (n > w->cap - w->len) {
        size_t cap = w->cap ? w->cap : 256, need;
        if (__builtin_add_overflow(w->len, n, &need))
            goto nomem;
        while (cap < need) {
            if (__builtin_mul_overflow(cap, 2, &cap))
                goto nomem;
        }
        uint8_t *buf = realloc(w->buf, cap);
        if (!buf)
            goto nomem;
        w->buf = buf;
        w->cap = cap;
    }
    memcpy(w->buf + w->len, p, n);
    w->len += n;
    return;
nomem:
    w->err = -ENOMEM;
}

void state_put_u8(struct state_w *w, uint8_t v)
{
    state_put_bytes(w, &v, 1);
}

void state_put_u16(struct state_w *w, uint16_t v)
{
    uint8_t b[2] = {(uint8_t)v, (uint8_t)(v >> 8)};
    state_put_bytes(w, b, sizeof(b));
}

void state_put_u32(struct state_w *w, uint32_t v)
{
    uint8_t b[4];
    for (unsigned int i = 0; i < 4; i++)
        b[i] = (uint8_t)(v >> (8 * i));
    state_put_bytes(w, b, sizeof(b));
}

void state_put_u64(struct state_w *w, uint64_t v)
{
    uint8_t b[8];
    for (unsigned int i = 0; i < 8; i++)
        b[i] = (uint8_t)(v >> (8 * i));
    state_put_bytes(w, b, sizeof(b));
}

void state_r_init(struct state_r *r, const void *p, size_t len)
{
    *r = (struct state_r){.p = p, .len = p ? len : 0};
}

void state_get_bytes(struct state_r *r, void *dst, size_t n)
{
    if (r->err || n > r->len - r->off) {
        r->err = -EBADMSG;
        if (n)
            memset(dst, 0, n);
        return;
    }
    if (n)
        memcpy(dst, r->p + r->off, n);
    r->off += n;
}

const uint8_t *state_get_span(struct state_r *r, size_t n)
{
    if (r->err || n > r->len - r->off) {
        r->err = -EBADMSG;
        return NULL;
    }
    /* A reader of no bytes may hold p NULL: no arithmetic on it. */
    const uint8_t *at = r->p ? r->p + r->off : NULL;
    r->off += n;
    return at;
}

uint8_t state_get_u8(struct state_r *r)
{
    uint8_t v;
    state_get_bytes(r, &v, 1);
    return v;
}

uint16_t state_get_u16(struct state_r *r)
{
    uint8_t b[2];
    state_get_bytes(r, b, sizeof(b));
    return (uint16_t)(b[0] | b[1] << 8);
}

uint32_t state_get_u32(struct state_r *r)
{
    uint8_t b[4];
    state_get_bytes(r, b, sizeof(b));
    uint32_t v = 0;
    for (unsigned int i = 0; i < 4; i++)
        v |= (uint32_t)b[i] << (8 * i);
    return v;
}

uint64_t state_get_u64(struct state_r *r)
{
    uint8_t b[8];
    state_get_bytes(r, b, sizeof(b));
    uint64_t v = 0;
    for (unsigned int i = 0; i < 8; i++)
        v |= (uint64_t)b[i] << (8 * i);
    return v;
}

void state_r_fail(struct state_r *r)
{
    r->err = -EBADMSG;
}

int state_r_done(const struct state_r *r)
{
    return r->err || r->off != r->len ? -EBADMSG : 0;
}
