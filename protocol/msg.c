/* Message framing: the 16-byte header, TLV fields and CRC of one message,
 * built (msg_begin, msg_put_*, msg_end) and checked (msg_parse, tlv_*). */
#include "protocol/msg.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "protocol/crc32.h"

#define TLV_HEADER 6 /* u16 tag, u32 length */

static void put_le16(uint8_t *p, uint16_t v)
{
    p[0] = v & 0xff;
    p[1] = v >> 8;
}

static void put_le32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (v >> (8 * i)) & 0xff;
}

static uint16_t get_le16(const uint8_t *p)
{
    return (uint16_t)(p[0] | p[1] << 8);
}

static uint32_t get_le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
           (uint32_t)p[3] << 24;
}

/* ---- building ---------------------------------------------------------- */

void msg_begin(struct msg_buf *m, uint8_t type, uint16_t flags, uint32_t id)
{
    m->start = m->len;
    uint8_t *h = msg_buf_reserve(m, MSG_HEADER_SIZE);
    if (!h)
        return;
    put_le16(h, MSG_MAGIC);
    h[2] = MSG_VERSION;
    h[3] = type;
    put_le16(h + 4, flags);
    put_le16(h + 6, 0);
    put_le32(h + 8, id);
    put_le32(h + 12, 0); /* patched by msg_end */
}

static uint8_t *put_field(struct msg_buf *m, uint16_t tag, size_t n)
{
    if (n > MSG_MAX_PAYLOAD) {
        if (!m->err)
            m->err = -EMSGSIZE;
        return NULL;
    }
    uint8_t *p = msg_buf_reserve(m, TLV_HEADER + n);
    if (!p)
        return NULL;
    put_le16(p, tag);
    put_le32(p + 2, (uint32_t)n);
    return p + TLV_HEADER;
}

void msg_put_u64(struct msg_buf *m, uint16_t tag, uint64_t v)
{
    size_t n = v <= UINT32_MAX ? 4 : 8;
    uint8_t *p = put_field(m, tag, n);
    if (!p)
        return;
    for (size_t i = 0; i < n; i++)
        p[i] = (v >> (8 * i)) & 0xff;
}

void msg_put_bytes(struct msg_buf *m, uint16_t tag, const void *data, size_t n)
{
    uint8_t *p = put_field(m, tag, n);
    if (p && n)
        memcpy(p, data, n);
}

void msg_put_str(struct msg_buf *m, uint16_t tag, const char *s)
{
    msg_put_bytes(m, tag, s, strlen(s));
}

void msg_put_strv(struct msg_buf *m, uint16_t tag, const char *const *argv)
{
    size_t n = 0;
    for (size_t i = 0; argv && argv[i]; i++)
        n += strlen(argv[i]) + 1;
    uint8_t *p = put_field(m, tag, n);
    if (!p)
        return;
    for (size_t i = 0; argv && argv[i]; i++) {
        size_t l = strlen(argv[i]) + 1;
        memcpy(p, argv[i], l);
        p += l;
    }
}

size_t msg_nest_begin(struct msg_buf *m, uint16_t tag)
{
    size_t mark = m->len;
    put_field(m, tag, 0);
    return mark;
}

void msg_nest_end(struct msg_buf *m, size_t mark)
{
    if (m->err)
        return;
    size_t n = m->len - mark - TLV_HEADER;
    if (n > MSG_MAX_PAYLOAD) {
        m->err = -EMSGSIZE;
        return;
    }
    put_le32(m->data + mark + 2, (uint32_t)n);
}

void msg_put_file(struct msg_buf *m, const char *name, uint32_t mode,
                  const void *data, size_t len)
{
    size_t mark = msg_nest_begin(m, MSG_TAG_FILE);
    if (name && name[0])
        msg_put_str(m, MSG_TAG_FILE_NAME, name);
    msg_put_u64(m, MSG_TAG_FILE_MODE, mode);
    msg_put_bytes(m, MSG_TAG_FILE_DATA, data, len);
    msg_nest_end(m, mark);
}

int msg_end(struct msg_buf *m)
{
    if (m->err)
        return m->err;
    size_t payload = m->len - m->start - MSG_HEADER_SIZE;
    if (payload > MSG_MAX_PAYLOAD) {
        m->err = -EMSGSIZE;
        return m->err;
    }
    put_le32(m->data + m->start + 12, (uint32_t)payload);
    uint32_t crc = crc32_update(0, m->data + m->start, m->len - m->start);
    uint8_t *p = msg_buf_reserve(m, MSG_CRC_SIZE);
    if (!p)
        return m->err;
    put_le32(p, crc);
    return 0;
}

int msg_slip_append(struct msg_buf *wire, const uint8_t *msg, size_t len)
{
    uint8_t *p = msg_buf_reserve(wire, SLIP_ENCODED_MAX(len));
    if (!p)
        return wire->err;
    size_t n = slip_encode(p, msg, len);
    wire->len -= SLIP_ENCODED_MAX(len) - n;
    return 0;
}

/* ---- parsing ----------------------------------------------------------- */

int msg_parse(const uint8_t *frame, size_t len, struct msg_view *out)
{
    if (len < MSG_HEADER_SIZE + MSG_CRC_SIZE)
        return -EBADMSG;
    if (get_le16(frame) != MSG_MAGIC)
        return -EBADMSG;
    if (frame[2] != MSG_VERSION)
        return -EPROTONOSUPPORT;
    uint32_t plen = get_le32(frame + 12);
    if (plen > MSG_MAX_PAYLOAD)
        return -EMSGSIZE;
    if ((size_t)plen != len - MSG_HEADER_SIZE - MSG_CRC_SIZE)
        return -EBADMSG;
    uint32_t want = get_le32(frame + MSG_HEADER_SIZE + plen);
    if (crc32_update(0, frame, MSG_HEADER_SIZE + plen) != want)
        return -EILSEQ;
    out->type = frame[3];
    out->flags = get_le16(frame + 4);
    out->id = get_le32(frame + 8);
    out->payload = frame + MSG_HEADER_SIZE;
    out->len = plen;
    return 0;
}

void tlv_iter_init(struct tlv_iter *it, const uint8_t *p, size_t len)
{
    it->p = p;
    it->left = len;
}

int tlv_next(struct tlv_iter *it, uint16_t *tag, const uint8_t **val,
             uint32_t *len)
{
    if (it->left == 0)
        return 0;
    if (it->left < TLV_HEADER)
        return -EBADMSG;
    uint32_t n = get_le32(it->p + 2);
    if (n > it->left - TLV_HEADER)
        return -EBADMSG;
    *tag = get_le16(it->p);
    *val = it->p + TLV_HEADER;
    *len = n;
    it->p += TLV_HEADER + n;
    it->left -= TLV_HEADER + n;
    return 1;
}

int tlv_uint(const uint8_t *val, uint32_t len, uint64_t *out)
{
    if (len < 1 || len > 8)
        return -EBADMSG;
    uint64_t v = 0;
    for (uint32_t i = 0; i < len; i++)
        v |= (uint64_t)val[i] << (8 * i);
    *out = v;
    return 0;
}

bool msg_file_name_ok(const char *n)
{
    size_t len = strlen(n);
    /* Not hidden, and no option to the commands a BUILD globs them
     * into (gcc *.c). */
    if (len == 0 || len > 64 || n[0] == '.' || n[0] == '-')
        return false;
    for (size_t i = 0; i < len; i++)
        if (!((n[i] >= 'a' && n[i] <= 'z') || (n[i] >= 'A' && n[i] <= 'Z') ||
              (n[i] >= '0' && n[i] <= '9') || n[i] == '.' || n[i] == '_' ||
              n[i] == '-'))
            return false;
    return true;
}

int msg_strlist_split(const struct msg_strlist *l, const char **argv,
                      size_t max)
{
    size_t n = 0;
    if (max == 0)
        return -E2BIG;
    if (l->len && l->p[l->len - 1] != '\0')
        return -EBADMSG;
    for (uint32_t i = 0; i < l->len;) {
        if (n + 1 >= max)
            return -E2BIG;
        const char *s = (const char *)l->p + i;
        argv[n++] = s;
        i += (uint32_t)strlen(s) + 1;
    }
    argv[n] = NULL;
    return (int)n;
}

char *msg_bytes_strdup(struct msg_bytes b)
{
    if (b.len && memchr(b.p, '\0', b.len))
        return NULL;
    char *s = malloc((size_t)b.len + 1);
    if (!s)
        return NULL;
    if (b.len)
        memcpy(s, b.p, b.len);
    s[b.len] = '\0';
    return s;
}
