/* Reading a channel: SLIP-decodes the byte stream, checks each frame and
 * hands good messages and dropped frames to the owner's callbacks. */
#include "protocol/msg.h"

#include <errno.h>
#include <string.h>

static void on_frame(void *opaque, const uint8_t *frame, size_t len)
{
    struct msg_reader *r = opaque;
    struct msg_view v;
    int err = msg_parse(frame, len, &v);

    switch (err) {
    case 0:
        r->stats.messages++;
        r->on_msg(r->opaque, &v);
        return;
    case -EPROTONOSUPPORT: r->stats.bad_version++; break;
    case -EILSEQ: r->stats.bad_crc++; break;
    case -EMSGSIZE: r->stats.oversize++; break;
    default: r->stats.bad_frame++; break;
    }
    if (r->on_drop)
        r->on_drop(r->opaque, err);
}

int msg_reader_init(struct msg_reader *r, msg_handler_fn on_msg,
                    msg_drop_fn on_drop, void *opaque)
{
    memset(r, 0, sizeof(*r));
    r->on_msg = on_msg;
    r->on_drop = on_drop;
    r->opaque = opaque;
    return slip_decoder_init(&r->slip, MSG_MAX_FRAME);
}

void msg_reader_free(struct msg_reader *r)
{
    slip_decoder_free(&r->slip);
}

void msg_reader_feed(struct msg_reader *r, const uint8_t *data, size_t len)
{
    struct slip_stats before = r->slip.stats;

    slip_decode(&r->slip, data, len, on_frame, r);
    if (!r->on_drop)
        return;
    for (uint64_t i = before.oversize; i < r->slip.stats.oversize; i++)
        r->on_drop(r->opaque, -EMSGSIZE);
    for (uint64_t i = before.bad_escape; i < r->slip.stats.bad_escape; i++)
        r->on_drop(r->opaque, -EBADMSG);
    for (uint64_t i = before.no_memory; i < r->slip.stats.no_memory; i++)
        r->on_drop(r->opaque, -ENOMEM);
}

uint64_t msg_reader_dropped(const struct msg_reader *r)
{
    const struct msg_stats *s = &r->stats;
    const struct slip_stats *ss = &r->slip.stats;
    return s->bad_frame + s->bad_version + s->bad_crc + s->oversize +
           ss->oversize + ss->bad_escape + ss->no_memory;
}
