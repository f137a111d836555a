/* Saved state as bytes: what a device, a vCPU or the VM writes into a
 * snapshot and reads back at restore. Little-endian fixed-width fields,
 * written in the order they are read. A writer grows its buffer; a reader
 * is bounds-checked and its error sticky, so a restore reads every field
 * and checks once (state_r_done) whether the bytes held them all. The
 * bytes come from a file on disk: treat them as hostile, check every value
 * read against what the device allows before using it. */
#ifndef RUNVM_STATE_H
#define RUNVM_STATE_H

#include <stddef.h>
#include <stdint.h>

struct state_w {
    uint8_t *buf;
    size_t len, cap;
    int err; /* 0, or -ENOMEM once an append failed (later ones do nothing) */
};

struct state_r {
    const uint8_t *p;
    size_t len, off;
    int err; /* 0, or -EBADMSG once a read ran past the end */
};

void state_w_init(struct state_w *w);
void state_w_free(struct state_w *w);
void state_put_u8(struct state_w *w, uint8_t v);
void state_put_u16(struct state_w *w, uint16_t v);
void state_put_u32(struct state_w *w, uint32_t v);
void state_put_u64(struct state_w *w, uint64_t v);
void state_put_bytes(struct state_w *w, const void *p, size_t n);

void state_r_init(struct state_r *r, const void *p, size_t len);
/* Past the end each returns 0 (fills dst with zeros) and sets r->err. */
uint8_t state_get_u8(struct state_r *r);
uint16_t state_get_u16(struct state_r *r);
uint32_t state_get_u32(struct state_r *r);
uint64_t state_get_u64(struct state_r *r);
void state_get_bytes(struct state_r *r, void *dst, size_t n);
/* Skips the next n bytes and returns where they lie in the reader's
 * buffer, for a blob used in place rather than copied. Past the end
 * returns NULL and sets r->err (n 0 on a reader of no bytes may return
 * NULL too: check r->err, not the pointer). */
const uint8_t *state_get_span(struct state_r *r, size_t n);
/* Marks the reader bad (a value out of range): later reads return 0. */
void state_r_fail(struct state_r *r);
/* 0 when every read was in bounds, nothing failed and every byte was
 * read; else -EBADMSG. */
int state_r_done(const struct state_r *r) __attribute__((warn_unused_result));

#endif
