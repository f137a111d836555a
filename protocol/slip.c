#include "protocol/slip.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

size_t slip_encode(uint8_t *out, const uint8_t *in, size_t len)
{
    size_t n = 0;

    out[n++] = SLIP_END;
    for (size_t i = 0; i < len; i++) {
        switch (in[i]) {
        case SLIP_END:
            out[n++] = SLIP_ESC;
            out[n++] = SLIP_ESC_END;
            break;
        case SLIP_ESC:
            out[n++] = SLIP_ESC;
            out[n++] = SLIP_ESC_ESC;
            break;
        default: out[n++] = in[i];
        }
    }
    out[n++] = SLIP_END;
    return n;
}

int slip_decoder_init(struct slip_decoder *d, size_t max_frame)
{
    memset(d, 0, sizeof(*d));
    if (max_frame == 0)
        return -EINVAL;
    d->max_frame = max_frame;
    d->cap = max_frame < 4096 ? max_frame : 4096;
    d->buf = malloc(d->cap);
    if (!d->buf)
        return -ENOMEM;
    return 0;
}

void slip_decoder_free(struct slip_decoder *d)
{
    free(d->buf);
    d->buf = NULL;
    d->cap = d->len = 0;
}

/* Drops the frame in progress; bytes up to the next END are ignored. */
static void drop_frame(struct slip_decoder *d, uint64_t *counter)
{
    (*counter)++;
    d->discarding = true;
    d->escaped = false;
    d->len = 0;
}

/* Appends one decoded byte, growing the buffer geometrically up to
 * max_frame. */
static void put_byte(struct slip_decoder *d, uint8_t b)
{
    if (d->len >= d->max_frame) {
        drop_frame(d, &d->stats.oversize);
        return;
    }
    if (d->len == d->cap) {
        size_t cap = d->cap * 2;
        if (cap > d->max_frame)
            cap = d->max_frame;
        uint8_t *nb = realloc(d->buf, cap);
        if (!nb) {
            drop_frame(d, &d->stats.no_memory);
            return;
        }
        d->buf = nb;
        d->cap = cap;
    }
    d->buf[d->len++] = b;
}

void slip_decode(struct slip_decoder *d, const uint8_t *data, size_t len,
                 slip_frame_fn fn, void *opaque)
{
    for (size_t i = 0; i < len; i++) {
        uint8_t b = data[i];

        if (b == SLIP_END) {
            /* END always ends a frame, even after ESC (which makes the frame
             * bad) or while discarding: that is how we resynchronise. */
            if (d->escaped) {
                d->stats.bad_escape++;
            } else if (!d->discarding && d->len > 0) {
                d->stats.frames++;
                fn(opaque, d->buf, d->len);
            }
            d->len = 0;
            d->escaped = false;
            d->discarding = false;
            continue;
        }
        if (d->discarding)
            continue;
        if (d->escaped) {
            d->escaped = false;
            if (b == SLIP_ESC_END)
                put_byte(d, SLIP_END);
            else if (b == SLIP_ESC_ESC)
                put_byte(d, SLIP_ESC);
            else
                drop_frame(d, &d->stats.bad_escape);
            continue;
        }
        if (b == SLIP_ESC)
            d->escaped = true;
        else
            put_byte(d, b);
    }
}
