/* SLIP framing (RFC 1055) for the agent channel: an encoder and a streaming
 * decoder that accepts the byte stream in arbitrary chunks.
 *
 * A frame on the wire is END, the escaped bytes, END. The leading END flushes
 * any line noise the peer's decoder may hold (RFC 1055, "SEND_PACKET"); empty
 * frames (END END) are therefore normal and ignored. */
#ifndef RUNVM_SLIP_H
#define RUNVM_SLIP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SLIP_END     0xC0
#define SLIP_ESC     0xDB
#define SLIP_ESC_END 0xDC
#define SLIP_ESC_ESC 0xDD

/* Worst case encoded size of len payload bytes: every byte escaped, plus the
 * leading and trailing END. */
#define SLIP_ENCODED_MAX(len) (2 * (size_t)(len) + 2)

/* Encodes len bytes of in into out, which must hold SLIP_ENCODED_MAX(len)
 * bytes. Returns the number of bytes written. */
size_t slip_encode(uint8_t *out, const uint8_t *in, size_t len);

/* Counters of what the decoder threw away. A dropped frame is counted once,
 * by its first fault. */
struct slip_stats {
    uint64_t frames;     /* complete non-empty frames delivered */
    uint64_t oversize;   /* frames dropped for exceeding max_frame */
    uint64_t bad_escape; /* frames dropped for ESC followed by a bad byte */
    uint64_t no_memory;  /* frames dropped because the buffer could not grow */
};

/* Called once per complete, correctly escaped frame. frame stays valid only
 * during the call. */
typedef void (*slip_frame_fn)(void *opaque, const uint8_t *frame, size_t len);

struct slip_decoder {
    uint8_t *buf;
    size_t len;       /* bytes of the current frame so far */
    size_t cap;       /* allocated size of buf */
    size_t max_frame; /* larger frames are dropped */
    bool escaped;     /* the previous byte was ESC */
    bool discarding;  /* dropping bytes until the next END */
    struct slip_stats stats;
};

/* Prepares an empty decoder delivering frames of at most max_frame decoded
 * bytes (> 0). The buffer grows on demand up to max_frame. 0 or -errno. */
int slip_decoder_init(struct slip_decoder *d, size_t max_frame)
    __attribute__((warn_unused_result));
void slip_decoder_free(struct slip_decoder *d);

/* Feeds len bytes of the stream; calls fn for every frame they complete.
 * Never fails: bad input is counted in d->stats and skipped up to the next
 * END, where decoding resynchronises. */
void slip_decode(struct slip_decoder *d, const uint8_t *data, size_t len,
                 slip_frame_fn fn, void *opaque);

#endif
