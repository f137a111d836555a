#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "protocol/slip.h"

/* Collects delivered frames. */
struct sink {
    int n;
    size_t len[16];
    uint8_t data[16][512];
};

static void collect(void *opaque, const uint8_t *frame, size_t len)
{
    struct sink *s = opaque;
    assert_true(s->n < 16);
    assert_true(len <= sizeof(s->data[0]));
    memcpy(s->data[s->n], frame, len);
    s->len[s->n++] = len;
}

static void feed(struct slip_decoder *d, const uint8_t *p, size_t len,
                 size_t chunk, struct sink *s)
{
    for (size_t off = 0; off < len; off += chunk) {
        size_t n = len - off < chunk ? len - off : chunk;
        slip_decode(d, p + off, n, collect, s);
    }
}

static void encode_escapes(void **state)
{
    (void)state;
    const uint8_t in[] = {0x01,         SLIP_END,     SLIP_ESC,
                          SLIP_ESC_END, SLIP_ESC_ESC, 0x02};
    const uint8_t want[] = {SLIP_END, 0x01,         SLIP_ESC,     SLIP_ESC_END,
                            SLIP_ESC, SLIP_ESC_ESC, SLIP_ESC_END, SLIP_ESC_ESC,
                            0x02,     SLIP_END};
    uint8_t out[SLIP_ENCODED_MAX(sizeof(in))];
    size_t n = slip_encode(out, in, sizeof(in));
    assert_int_equal(n, sizeof(want));
    assert_memory_equal(out, want, sizeof(want));
}

/* Every byte value, in every chunking from 1 byte to all at once. */
static void round_trip_all_bytes_any_chunking(void **state)
{
    (void)state;
    uint8_t in[256];
    for (int i = 0; i < 256; i++)
        in[i] = (uint8_t)i;
    uint8_t wire[SLIP_ENCODED_MAX(256)];
    size_t n = slip_encode(wire, in, sizeof(in));
    assert_int_equal(n, 256 + 2 + 2); /* two bytes escaped */

    size_t chunks[] = {1, 2, 3, 7, 64, 255, n};
    for (size_t c = 0; c < sizeof(chunks) / sizeof(chunks[0]); c++) {
        struct slip_decoder d;
        struct sink s = {0};
        assert_int_equal(slip_decoder_init(&d, 1024), 0);
        feed(&d, wire, n, chunks[c], &s);
        assert_int_equal(s.n, 1);
        assert_int_equal(s.len[0], 256);
        assert_memory_equal(s.data[0], in, 256);
        assert_int_equal(d.stats.frames, 1);
        slip_decoder_free(&d);
    }
}

static void several_frames_per_chunk_and_empty_frames(void **state)
{
    (void)state;
    uint8_t wire[64];
    size_t n = 0;
    n += slip_encode(wire + n, (const uint8_t *)"ab", 2);
    n += slip_encode(wire + n, (const uint8_t *)"\xc0", 1);
    wire[n++] = SLIP_END; /* extra END: an empty frame, ignored */
    n += slip_encode(wire + n, (const uint8_t *)"xyz", 3);

    struct slip_decoder d;
    struct sink s = {0};
    assert_int_equal(slip_decoder_init(&d, 100), 0);
    slip_decode(&d, wire, n, collect, &s);
    assert_int_equal(s.n, 3);
    assert_memory_equal(s.data[0], "ab", 2);
    assert_int_equal(s.len[1], 1);
    assert_int_equal(s.data[1][0], 0xc0);
    assert_memory_equal(s.data[2], "xyz", 3);
    slip_decoder_free(&d);
}

/* A frame in progress waits for its END across calls. */
static void partial_frame_waits(void **state)
{
    (void)state;
    struct slip_decoder d;
    struct sink s = {0};
    assert_int_equal(slip_decoder_init(&d, 100), 0);
    slip_decode(&d, (const uint8_t *)"\xc0hel", 4, collect, &s);
    assert_int_equal(s.n, 0);
    slip_decode(&d, (const uint8_t *)"lo\xdb", 3, collect, &s);
    assert_int_equal(s.n, 0);
    slip_decode(&d, (const uint8_t *)"\xdc\xc0", 2, collect, &s);
    assert_int_equal(s.n, 1);
    assert_int_equal(s.len[0], 6);
    assert_memory_equal(s.data[0], "hello\xc0", 6);
    slip_decoder_free(&d);
}

struct hostile_case {
    const char *name;
    const char *wire;
    size_t len;
    int frames;       /* delivered */
    const char *last; /* content of the last delivered frame */
    uint64_t bad_escape, oversize;
};

#define W(s) s, sizeof(s) - 1

static const struct hostile_case hostile[] = {
    {"lone ESC then END",
     W("\xc0\xdb\xc0"
       "\xc0ok\xc0"),
     1, "ok", 1, 0},
    {"ESC + invalid byte",
     W("\xc0"
       "ab\xdb"
       "xcd\xc0ok\xc0"),
     1, "ok", 1, 0},
    {"ESC + ESC",
     W("\xc0"
       "a\xdb\xdb\xdc\xc0ok\xc0"),
     1, "ok", 1, 0},
    {"over the cap",
     W("\xc0"
       "0123456789abcdefX\xc0ok\xc0"),
     1, "ok", 0, 1},
    {"exactly the cap",
     W("\xc0"
       "0123456789abcdef\xc0"),
     1, "0123456789abcdef", 0, 0},
    {"escaped byte over the cap",
     W("\xc0"
       "0123456789abcdef\xdb\xdc\xc0"),
     0, NULL, 0, 1},
    /* Garbage before the first END is a frame at this layer; the message
     * layer drops it (bad magic). */
    {"garbage then frame", W("noise\xc0ok\xc0"), 2, "ok", 0, 0},
    {"only ENDs", W("\xc0\xc0\xc0\xc0"), 0, NULL, 0, 0},
    {"trailing ESC, no END",
     W("\xc0"
       "abc\xdb"),
     0, NULL, 0, 0},
};

static void hostile_streams(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(hostile) / sizeof(hostile[0]); i++) {
        const struct hostile_case *c = &hostile[i];
        size_t chunks[] = {1, c->len};
        for (size_t k = 0; k < 2; k++) {
            struct slip_decoder d;
            struct sink s = {0};
            assert_int_equal(slip_decoder_init(&d, 16), 0);
            feed(&d, (const uint8_t *)c->wire, c->len, chunks[k], &s);
            if (s.n != c->frames)
                fail_msg("%s: %d frames, want %d", c->name, s.n, c->frames);
            if (c->last) {
                assert_int_equal(s.len[s.n - 1], strlen(c->last));
                assert_memory_equal(s.data[s.n - 1], c->last, strlen(c->last));
            }
            if (d.stats.bad_escape != c->bad_escape ||
                d.stats.oversize != c->oversize)
                fail_msg("%s: bad_escape %llu oversize %llu", c->name,
                         (unsigned long long)d.stats.bad_escape,
                         (unsigned long long)d.stats.oversize);
            slip_decoder_free(&d);
        }
    }
}

/* A long stream of random bytes never crashes, never delivers more than
 * the cap, and the decoder still works after it. */
struct last {
    size_t frames, max_len, len;
    uint8_t data[64];
};

static void keep_last(void *opaque, const uint8_t *frame, size_t len)
{
    struct last *l = opaque;
    l->frames++;
    if (len > l->max_len)
        l->max_len = len;
    l->len = len;
    memcpy(l->data, frame, len);
}

static void random_garbage_then_resync(void **state)
{
    (void)state;
    struct slip_decoder d;
    struct last l = {0};
    uint8_t junk[8192];
    srand(1);
    for (size_t i = 0; i < sizeof(junk); i++)
        junk[i] = (uint8_t)(rand() % 5 == 0 ? 0xdb
                            : rand() % 3    ? rand()
                                            : 0xc0);
    assert_int_equal(slip_decoder_init(&d, 64), 0);
    slip_decode(&d, junk, sizeof(junk), keep_last, &l);
    assert_true(l.max_len <= 64);
    assert_true(d.stats.bad_escape > 0);
    uint8_t wire[16];
    size_t n = slip_encode(wire, (const uint8_t *)"\xdbgood", 5);
    slip_decode(&d, wire, n, keep_last, &l);
    assert_int_equal(l.len, 5);
    assert_memory_equal(l.data, "\xdbgood", 5);
    slip_decoder_free(&d);
}

static void init_rejects_zero_cap(void **state)
{
    (void)state;
    struct slip_decoder d;
    assert_int_equal(slip_decoder_init(&d, 0), -22);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(encode_escapes),
        cmocka_unit_test(round_trip_all_bytes_any_chunking),
        cmocka_unit_test(several_frames_per_chunk_and_empty_frames),
        cmocka_unit_test(partial_frame_waits),
        cmocka_unit_test(hostile_streams),
        cmocka_unit_test(random_garbage_then_resync),
        cmocka_unit_test(init_rejects_zero_cap),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
