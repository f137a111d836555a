/* Agent-protocol frames for fuzz targets that play one end of the channel
 * (docs/protocol.md): a message the harness frames itself, header, CRC and
 * SLIP, around a payload taken from the input, so that mutations reach
 * the decoders behind the CRC instead of dying at it. */
#ifndef RUNVM_FUZZ_FRAME_H
#define RUNVM_FUZZ_FRAME_H

#include <stddef.h>
#include <stdint.h>

#include "protocol/msg.h"

/* Appends to wire the SLIP frame of a message of type, flags and id whose
 * payload (TLV fields, or anything) is payload[0..len). */
static inline void frame_put(struct msg_buf *wire, uint8_t type, uint16_t flags,
                             uint32_t id, const uint8_t *payload, size_t len)
{
    struct msg_buf m;
    msg_buf_init(&m);
    msg_begin(&m, type, flags, id);
    msg_buf_append(&m, payload, len);
    if (msg_end(&m) == 0)
        (void)msg_slip_append(wire, m.data, m.len);
    msg_buf_free(&m);
}

#endif
