#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "protocol/crc32.h"
#include "protocol/msg.h"

static void crc_matches_zlib(void **state)
{
    (void)state;
    assert_int_equal(crc32_update(0, "123456789", 9), 0xCBF43926u);
    /* Each single byte reads a different table entry: all 256 checked. */
    for (unsigned int b = 0; b < 256; b++) {
        uint8_t one = (uint8_t)b;
        assert_int_equal(crc32_update(0, &one, 1),
                         (uint32_t)crc32(0L, &one, 1));
    }
    uint8_t buf[1000];
    for (size_t i = 0; i < sizeof(buf); i++)
        buf[i] = (uint8_t)(i * 7 + 3);
    for (size_t n = 0; n < sizeof(buf); n += 37) {
        uLong z = crc32(0L, buf, (uInt)n);
        assert_int_equal(crc32_update(0, buf, n), (uint32_t)z);
        /* and incrementally */
        uint32_t c = crc32_update(0, buf, n / 2);
        assert_int_equal(crc32_update(c, buf + n / 2, n - n / 2), (uint32_t)z);
    }
}

/* Parses the first message of m. */
static void parse_one(const struct msg_buf *m, struct msg_view *v)
{
    assert_int_equal(msg_parse(m->data, m->len, v), 0);
}

static void hello_round_trip(void **state)
{
    (void)state;
    struct msg_buf m;
    struct msg_view v;
    struct msg_hello h = {.lang = {(const uint8_t *)"rust", 4}};
    msg_buf_init(&m);
    assert_int_equal(msg_build_hello(&m, 0, &h), 0);
    parse_one(&m, &v);
    assert_int_equal(v.type, MSG_HELLO);
    struct msg_hello got;
    assert_int_equal(msg_decode_hello(&v, &got), 0);
    assert_int_equal(got.lang.len, 4);
    assert_memory_equal(got.lang.p, "rust", 4);
    assert_null(got.toolchain.p);
    msg_buf_free(&m);
}

static void run_round_trip(void **state)
{
    (void)state;
    struct msg_buf m;
    struct msg_view v;
    struct msg_run r;
    uint8_t bin[256];
    for (int i = 0; i < 256; i++)
        bin[i] = (uint8_t)i;
    const char *argv[] = {"go", "run", "main.go", NULL};
    const char *env[] = {"A=1", "B=two", NULL};
    const char *none[] = {NULL};

    msg_buf_init(&m);
    msg_begin(&m, MSG_RUN, MSG_RUN_SKIP_BUILD | MSG_RUN_REUSE_WORKDIR, 42);
    msg_put_file(&m, "main.go", 0644, "package main\n", 13);
    msg_put_file(&m, "data.bin", 0600, bin, sizeof(bin));
    msg_put_strv(&m, MSG_TAG_BUILD_ARGV, none);
    msg_put_strv(&m, MSG_TAG_RUN_ARGV, argv);
    msg_put_strv(&m, MSG_TAG_ENV, env);
    msg_put_bytes(&m, MSG_TAG_STDIN, "in\xc0", 3);
    msg_put_u64(&m, MSG_TAG_WALL_MS, 1500);
    msg_put_u64(&m, MSG_TAG_MEM_BYTES, 5ull << 32);
    msg_put_u64(&m, MSG_TAG_MAX_PROCS, 16);
    msg_put_u64(&m, MSG_TAG_MAX_OUTPUT, 1 << 20);
    msg_put_u64(&m, MSG_TAG_CPU_MS, 900);
    msg_put_u64(&m, 0x7777, 1); /* unknown tag: skipped */
    assert_int_equal(msg_end(&m), 0);

    parse_one(&m, &v);
    assert_int_equal(v.id, 42);
    assert_int_equal(msg_decode_run(&v, &r), 0);
    assert_int_equal(r.flags, MSG_RUN_SKIP_BUILD | MSG_RUN_REUSE_WORKDIR);
    assert_int_equal(r.nfiles, 2);
    assert_memory_equal(r.files[0].name.p, "main.go", 7);
    assert_int_equal(r.files[0].mode, 0644);
    assert_int_equal(r.files[1].data.len, 256);
    assert_memory_equal(r.files[1].data.p, bin, 256);
    assert_true(r.build_argv.present);
    assert_int_equal(r.build_argv.len, 0);
    const char *got[8];
    assert_int_equal(msg_strlist_split(&r.run_argv, got, 8), 3);
    assert_string_equal(got[0], "go");
    assert_string_equal(got[2], "main.go");
    assert_null(got[3]);
    assert_int_equal(msg_strlist_split(&r.env, got, 8), 2);
    assert_string_equal(got[1], "B=two");
    assert_int_equal(msg_strlist_split(&r.run_argv, got, 3), -E2BIG);
    assert_int_equal(r.stdin_data.len, 3);
    assert_int_equal(r.limits.wall_ms, 1500);
    assert_int_equal(r.limits.mem_bytes, 5ull << 32);
    assert_int_equal(r.limits.max_procs, 16);
    assert_int_equal(r.limits.max_output, 1 << 20);
    assert_int_equal(r.limits.cpu_ms, 900);

    /* Rebuilding from the decoded form gives the same fields. */
    struct msg_buf m2;
    msg_buf_init(&m2);
    assert_int_equal(msg_build_run(&m2, 42, &r), 0);
    struct msg_view v2;
    struct msg_run r2;
    parse_one(&m2, &v2);
    assert_int_equal(msg_decode_run(&v2, &r2), 0);
    assert_int_equal(r2.nfiles, 2);
    assert_int_equal(r2.limits.mem_bytes, 5ull << 32);
    assert_int_equal(r2.run_argv.len, r.run_argv.len);
    msg_buf_free(&m2);
    msg_buf_free(&m);
}

static void small_types_round_trip(void **state)
{
    (void)state;
    struct msg_buf m;
    struct msg_view v;
    msg_buf_init(&m);

    assert_int_equal(msg_build_stdin(&m, 3, "abc", 3, true), 0);
    parse_one(&m, &v);
    struct msg_stdin s;
    assert_int_equal(msg_decode_stdin(&v, &s), 0);
    assert_true(s.eof);
    assert_memory_equal(s.data.p, "abc", 3);
    msg_buf_reset(&m);

    assert_int_equal(msg_build_output(&m, 3, MSG_PHASE_BUILD, MSG_STREAM_STDERR,
                                      "\xdb\xc0", 2),
                     0);
    parse_one(&m, &v);
    struct msg_output o;
    assert_int_equal(msg_decode_output(&v, &o), 0);
    assert_int_equal(o.phase, MSG_PHASE_BUILD);
    assert_int_equal(o.stream, MSG_STREAM_STDERR);
    assert_memory_equal(o.data.p, "\xdb\xc0", 2);
    msg_buf_reset(&m);

    struct msg_exit e = {.phase = 1,
                         .signaled = true,
                         .signal = 9,
                         .wall_ms = 5000,
                         .cpu_ms = 4999,
                         .peak_mem = 1ull << 40,
                         .status = MSG_EXIT_TIMED_OUT | MSG_EXIT_FINAL};
    assert_int_equal(msg_build_exit(&m, 3, &e), 0);
    parse_one(&m, &v);
    struct msg_exit eg;
    assert_int_equal(msg_decode_exit(&v, &eg), 0);
    assert_false(eg.exited);
    assert_true(eg.signaled);
    assert_int_equal(eg.signal, 9);
    assert_int_equal(eg.peak_mem, 1ull << 40);
    assert_int_equal(eg.status, MSG_EXIT_TIMED_OUT | MSG_EXIT_FINAL);
    /* a typed decoder refuses another type */
    assert_int_equal(msg_decode_output(&v, &o), -EBADMSG);
    msg_buf_reset(&m);

    assert_int_equal(msg_build_error(&m, 5, MSG_ERR_BUSY, "busy"), 0);
    parse_one(&m, &v);
    struct msg_error er;
    assert_int_equal(msg_decode_error(&v, &er), 0);
    assert_int_equal(er.code, MSG_ERR_BUSY);
    char *text = msg_bytes_strdup(er.message);
    assert_string_equal(text, "busy");
    free(text);
    msg_buf_reset(&m);

    assert_int_equal(msg_build_shutdown(&m, 6), 0);
    parse_one(&m, &v);
    assert_int_equal(v.type, MSG_SHUTDOWN);
    assert_int_equal(v.len, 0);
    msg_buf_free(&m);
}

/* Hand-made payloads with broken fields. */
static void bad_fields_rejected(void **state)
{
    (void)state;
    struct msg_buf m;
    struct msg_view v;
    struct msg_run r;
    struct msg_exit e;
    msg_buf_init(&m);

    /* A field whose length runs past the payload. */
    msg_begin(&m, MSG_RUN, 0, 1);
    msg_buf_append(&m,
                   "\x15\x00\x10\x00\x00\x00"
                   "ab",
                   8);
    assert_int_equal(msg_end(&m), 0);
    parse_one(&m, &v);
    assert_int_equal(msg_decode_run(&v, &r), -EBADMSG);
    msg_buf_reset(&m);

    /* Half a TLV header. */
    msg_begin(&m, MSG_RUN, 0, 1);
    msg_buf_append(&m, "\x15\x00\x00", 3);
    assert_int_equal(msg_end(&m), 0);
    parse_one(&m, &v);
    assert_int_equal(msg_decode_run(&v, &r), -EBADMSG);
    msg_buf_reset(&m);

    /* A 9-byte integer, and an argv list without its final NUL. */
    msg_begin(&m, MSG_RUN, 0, 1);
    msg_put_bytes(&m, MSG_TAG_WALL_MS, "123456789", 9);
    assert_int_equal(msg_end(&m), 0);
    parse_one(&m, &v);
    assert_int_equal(msg_decode_run(&v, &r), -EBADMSG);
    msg_buf_reset(&m);
    msg_begin(&m, MSG_RUN, 0, 1);
    msg_put_bytes(&m, MSG_TAG_RUN_ARGV, "sh", 2);
    assert_int_equal(msg_end(&m), 0);
    parse_one(&m, &v);
    assert_int_equal(msg_decode_run(&v, &r), -EBADMSG);
    msg_buf_reset(&m);

    /* A FILE mode beyond permission bits; too many files. */
    msg_begin(&m, MSG_RUN, 0, 1);
    size_t mark = msg_nest_begin(&m, MSG_TAG_FILE);
    msg_put_u64(&m, MSG_TAG_FILE_MODE, 010000);
    msg_put_bytes(&m, MSG_TAG_FILE_DATA, "x", 1);
    msg_nest_end(&m, mark);
    assert_int_equal(msg_end(&m), 0);
    parse_one(&m, &v);
    assert_int_equal(msg_decode_run(&v, &r), -EBADMSG);
    msg_buf_reset(&m);
    msg_begin(&m, MSG_RUN, 0, 1);
    for (int i = 0; i <= MSG_MAX_FILES; i++)
        msg_put_file(&m, "f", 0644, "", 0);
    assert_int_equal(msg_end(&m), 0);
    parse_one(&m, &v);
    assert_int_equal(msg_decode_run(&v, &r), -EBADMSG);
    msg_buf_reset(&m);

    /* Exit code and signal out of range; 1-byte integers are fine. */
    msg_begin(&m, MSG_EXIT, 0, 1);
    msg_put_bytes(&m, MSG_TAG_EXIT_CODE, "\x00\x01", 2);
    assert_int_equal(msg_end(&m), 0);
    parse_one(&m, &v);
    assert_int_equal(msg_decode_exit(&v, &e), -EBADMSG);
    msg_buf_reset(&m);
    msg_begin(&m, MSG_EXIT, 0, 1);
    msg_put_bytes(&m, MSG_TAG_EXIT_CODE, "\x07", 1);
    msg_put_bytes(&m, MSG_TAG_PHASE, "\x01", 1);
    assert_int_equal(msg_end(&m), 0);
    parse_one(&m, &v);
    assert_int_equal(msg_decode_exit(&v, &e), 0);
    assert_int_equal(e.code, 7);
    assert_int_equal(e.phase, 1);
    msg_buf_free(&m);

    /* A string holding a NUL is not a C string. */
    struct msg_bytes b = {(const uint8_t *)"a\0b", 3};
    assert_null(msg_bytes_strdup(b));
}

/* Decodes the RUN built in m (reset afterwards); returns the decoder's
 * answer. */
static int decode_built_run(struct msg_buf *m, struct msg_run *r)
{
    struct msg_view v;
    assert_int_equal(msg_end(m), 0);
    parse_one(m, &v);
    int ret = msg_decode_run(&v, r);
    msg_buf_reset(m);
    return ret;
}

/* BUILD_LIMITS and a FILE without a name, through the typed builder that
 * runvm's agent client uses, and back. */
static void build_limits_and_unnamed_file_round_trip(void **state)
{
    (void)state;
    struct msg_buf m;
    struct msg_view v;
    struct msg_run in = {
        .nfiles = 2,
        .files = {{.data = {(const uint8_t *)"print(1)\n", 9}},
                  {.name = {(const uint8_t *)"util.py", 7},
                   .data = {(const uint8_t *)"", 0},
                   .mode = 0600}},
        .limits = {.wall_ms = 10000, .mem_bytes = 64ull << 20},
        .has_build_limits = true,
        .build_limits = {.wall_ms = 60000, .max_output = 5ull << 32},
    };
    msg_buf_init(&m);
    assert_int_equal(msg_build_run(&m, 11, &in), 0);
    parse_one(&m, &v);
    struct msg_run r;
    assert_int_equal(msg_decode_run(&v, &r), 0);
    assert_int_equal(r.nfiles, 2);
    assert_int_equal(r.files[0].name.len, 0);
    assert_int_equal(r.files[0].data.len, 9);
    assert_int_equal(r.files[1].name.len, 7);
    assert_int_equal(r.files[1].mode, 0600);
    assert_int_equal(r.limits.wall_ms, 10000);
    assert_int_equal(r.limits.mem_bytes, 64ull << 20);
    assert_int_equal(r.limits.max_output, 0);
    assert_true(r.has_build_limits);
    assert_int_equal(r.build_limits.wall_ms, 60000);
    assert_int_equal(r.build_limits.max_output, 5ull << 32);
    assert_int_equal(r.build_limits.mem_bytes, 0);
    /* The unnamed FILE carries no FILE_NAME field at all. */
    uint16_t tag;
    const uint8_t *val;
    uint32_t len;
    struct tlv_iter it, inner;
    tlv_iter_init(&it, v.payload, v.len);
    assert_int_equal(tlv_next(&it, &tag, &val, &len), 1);
    assert_int_equal(tag, MSG_TAG_FILE);
    tlv_iter_init(&inner, val, len);
    while (tlv_next(&inner, &tag, &val, &len) > 0)
        assert_int_not_equal(tag, MSG_TAG_FILE_NAME);
    msg_buf_reset(&m);

    /* Without the field the limits are each step's: nothing set. */
    in.has_build_limits = false;
    assert_int_equal(msg_build_run(&m, 12, &in), 0);
    parse_one(&m, &v);
    assert_int_equal(msg_decode_run(&v, &r), 0);
    assert_false(r.has_build_limits);
    assert_int_equal(r.build_limits.wall_ms, 0);
    msg_buf_reset(&m);

    /* An empty name is the same as none; msg_put_file says so too. */
    msg_begin(&m, MSG_RUN, 0, 13);
    msg_put_file(&m, NULL, 0, "a", 1);
    msg_put_file(&m, "", 0, "b", 1);
    size_t mark = msg_nest_begin(&m, MSG_TAG_FILE);
    msg_put_bytes(&m, MSG_TAG_FILE_NAME, "", 0);
    msg_nest_end(&m, mark);
    assert_int_equal(decode_built_run(&m, &r), 0);
    assert_int_equal(r.nfiles, 3);
    for (int i = 0; i < 3; i++)
        assert_int_equal(r.files[i].name.len, 0);
    msg_buf_free(&m);
}

/* Hostile BUILD_LIMITS: broken nesting and bad integers are refused,
 * other tags inside are skipped, the last field wins. */
static void build_limits_hostile(void **state)
{
    (void)state;
    struct msg_buf m;
    struct msg_run r;
    msg_buf_init(&m);

    /* Inner field running past the nested value. */
    msg_begin(&m, MSG_RUN, 0, 1);
    msg_put_bytes(&m, MSG_TAG_BUILD_LIMITS, "\x18\x00\x08\x00\x00\x00\x01\x02",
                  8);
    assert_int_equal(decode_built_run(&m, &r), -EBADMSG);
    /* Half an inner TLV header. */
    msg_begin(&m, MSG_RUN, 0, 1);
    msg_put_bytes(&m, MSG_TAG_BUILD_LIMITS, "\x18\x00\x04", 3);
    assert_int_equal(decode_built_run(&m, &r), -EBADMSG);
    /* A 9-byte and a 0-byte integer inside. */
    msg_begin(&m, MSG_RUN, 0, 1);
    size_t mark = msg_nest_begin(&m, MSG_TAG_BUILD_LIMITS);
    msg_put_bytes(&m, MSG_TAG_WALL_MS, "123456789", 9);
    msg_nest_end(&m, mark);
    assert_int_equal(decode_built_run(&m, &r), -EBADMSG);
    msg_begin(&m, MSG_RUN, 0, 1);
    mark = msg_nest_begin(&m, MSG_TAG_BUILD_LIMITS);
    msg_put_bytes(&m, MSG_TAG_MEM_BYTES, "", 0);
    msg_nest_end(&m, mark);
    assert_int_equal(decode_built_run(&m, &r), -EBADMSG);

    /* Unknown tags, a nested BUILD_LIMITS and a RUN_ARGV inside are not
     * limits: skipped, and they do not reach the RUN's own fields. The
     * largest 8-byte value is taken as it is. */
    msg_begin(&m, MSG_RUN, 0, 1);
    mark = msg_nest_begin(&m, MSG_TAG_BUILD_LIMITS);
    msg_put_u64(&m, 0x7777, 5);
    msg_put_strv(&m, MSG_TAG_RUN_ARGV, (const char *const[]){"x", NULL});
    size_t inner = msg_nest_begin(&m, MSG_TAG_BUILD_LIMITS);
    msg_put_u64(&m, MSG_TAG_WALL_MS, 1);
    msg_nest_end(&m, inner);
    msg_put_u64(&m, MSG_TAG_MAX_PROCS, UINT64_MAX);
    msg_nest_end(&m, mark);
    assert_int_equal(decode_built_run(&m, &r), 0);
    assert_true(r.has_build_limits);
    assert_int_equal(r.build_limits.wall_ms, 0);
    assert_int_equal(r.build_limits.max_procs, UINT64_MAX);
    assert_false(r.run_argv.present);
    assert_int_equal(r.limits.max_procs, 0);

    /* Empty: present, every limit the agent's default. Repeated: the
     * last one wins whole. */
    msg_begin(&m, MSG_RUN, 0, 1);
    mark = msg_nest_begin(&m, MSG_TAG_BUILD_LIMITS);
    msg_put_u64(&m, MSG_TAG_CPU_MS, 7);
    msg_nest_end(&m, mark);
    msg_put_bytes(&m, MSG_TAG_BUILD_LIMITS, "", 0);
    assert_int_equal(decode_built_run(&m, &r), 0);
    assert_true(r.has_build_limits);
    assert_int_equal(r.build_limits.cpu_ms, 0);

    /* The builder refuses more files than a receiver takes. */
    static struct msg_run many = {.nfiles = MSG_MAX_FILES + 1};
    assert_int_equal(msg_build_run(&m, 1, &many), -E2BIG);
    msg_buf_free(&m);
}

static void announce_round_trip(void **state)
{
    (void)state;
    struct msg_buf m;
    struct msg_view v;
    msg_buf_init(&m);
    assert_int_equal(msg_build_announce(&m, 0xfffffffe, NULL), 0);
    parse_one(&m, &v);
    assert_int_equal(v.type, MSG_ANNOUNCE);
    assert_int_equal(v.type, 8);
    assert_int_equal(v.id, 0xfffffffe);
    assert_int_equal(v.flags, 0);
    assert_int_equal(v.len, 0);
    /* No typed decoder takes it for another type. */
    struct msg_hello h;
    assert_int_equal(msg_decode_hello(&v, &h), -EBADMSG);
    struct msg_announce an;
    assert_int_equal(msg_decode_announce(&v, &an), 0);
    assert_int_equal(an.entropy.len, 0);
    assert_false(an.has_realtime);

    /* With a restored VM's entropy and time. */
    uint8_t rnd[MSG_MAX_ENTROPY + 1];
    for (size_t i = 0; i < sizeof(rnd); i++)
        rnd[i] = (uint8_t)(i * 7);
    struct msg_announce in = {
        .entropy = {rnd, 32}, .has_realtime = true, .realtime_ns = 0};
    msg_buf_reset(&m);
    assert_int_equal(msg_build_announce(&m, 9, &in), 0);
    parse_one(&m, &v);
    assert_int_equal(msg_decode_announce(&v, &an), 0);
    assert_int_equal(an.entropy.len, 32);
    assert_memory_equal(an.entropy.p, rnd, 32);
    assert_true(an.has_realtime); /* 0 is a time, not its absence */
    assert_true(an.realtime_ns == 0);
    in.realtime_ns = 1765000000123456789ULL;
    msg_buf_reset(&m);
    assert_int_equal(msg_build_announce(&m, 10, &in), 0);
    parse_one(&m, &v);
    assert_int_equal(msg_decode_announce(&v, &an), 0);
    assert_true(an.realtime_ns == 1765000000123456789ULL);
    assert_int_equal(msg_decode_hello(&v, &h), -EBADMSG);

    /* Too much entropy: refused by the builder and the decoder. */
    in.entropy.len = MSG_MAX_ENTROPY + 1;
    msg_buf_reset(&m);
    assert_int_equal(msg_build_announce(&m, 11, &in), -EINVAL);
    msg_buf_reset(&m);
    msg_begin(&m, MSG_ANNOUNCE, 0, 12);
    msg_put_bytes(&m, MSG_TAG_ENTROPY, rnd, sizeof(rnd));
    assert_int_equal(msg_end(&m), 0);
    parse_one(&m, &v);
    assert_int_equal(msg_decode_announce(&v, &an), -EBADMSG);
    msg_buf_free(&m);
}

static void frame_faults(void **state)
{
    (void)state;
    struct msg_buf m;
    struct msg_view v;
    msg_buf_init(&m);
    assert_int_equal(msg_build_output(&m, 1, 1, 1, "hello", 5), 0);
    uint8_t f[128];
    size_t n = m.len;
    memcpy(f, m.data, n);

    assert_int_equal(msg_parse(f, n, &v), 0);
    for (size_t i = 0; i < n; i++) {
        /* Any single flipped bit anywhere is caught. */
        f[i] ^= 0x10;
        assert_int_not_equal(msg_parse(f, n, &v), 0);
        f[i] ^= 0x10;
    }
    f[n - 1] ^= 1;
    assert_int_equal(msg_parse(f, n, &v), -EILSEQ);
    f[n - 1] ^= 1;
    f[2] = 2;
    assert_int_equal(msg_parse(f, n, &v), -EPROTONOSUPPORT);
    f[2] = 1;
    f[0] = 'X';
    assert_int_equal(msg_parse(f, n, &v), -EBADMSG);
    f[0] = 0x52;
    for (size_t k = 0; k < n; k++)
        assert_int_not_equal(msg_parse(f, k, &v), 0); /* truncated */
    f[15] = 0x7f;                                     /* length 2 GiB */
    assert_int_equal(msg_parse(f, n, &v), -EMSGSIZE);
    f[15] = 0;
    f[12]++; /* length disagrees with the frame */
    assert_int_equal(msg_parse(f, n, &v), -EBADMSG);
    msg_buf_free(&m);
}

static void oversize_payload_refused_by_builder(void **state)
{
    (void)state;
    struct msg_buf m;
    msg_buf_init(&m);
    size_t big = MSG_MAX_PAYLOAD;
    char *p = calloc(1, big);
    assert_non_null(p);
    msg_begin(&m, MSG_OUTPUT, 0, 1);
    msg_put_bytes(&m, MSG_TAG_DATA, p, big); /* + 6 bytes of TLV header */
    assert_int_equal(msg_end(&m), -EMSGSIZE);
    free(p);
    msg_buf_free(&m);
}

struct got {
    int n;
    uint32_t ids[16];
    int drops[16];
    int ndrops;
};

static void got_msg(void *opaque, const struct msg_view *v)
{
    struct got *g = opaque;
    assert_true(g->n < 16);
    g->ids[g->n++] = v->id;
}

static void got_drop(void *opaque, int err)
{
    struct got *g = opaque;
    assert_true(g->ndrops < 16);
    g->drops[g->ndrops++] = err;
}

/* A stream of good frames, a flipped CRC, a wrong version and garbage, fed
 * one byte at a time: exactly the good ones arrive, the rest are counted. */
static void reader_counts_and_resyncs(void **state)
{
    (void)state;
    struct msg_buf m, wire;
    msg_buf_init(&m);
    msg_buf_init(&wire);
    for (uint32_t id = 1; id <= 4; id++) {
        msg_buf_reset(&m);
        assert_int_equal(msg_build_output(&m, id, 1, 1, "\xc0\xdb", 2), 0);
        if (id == 2)
            m.data[m.len - 2] ^= 0x40; /* CRC */
        if (id == 3)
            m.data[2] = 9; /* version */
        assert_int_equal(msg_slip_append(&wire, m.data, m.len), 0);
        if (id == 3)
            msg_buf_append(&wire, "garbage\xdb!", 9);
    }
    struct msg_reader r;
    struct got g = {0};
    assert_int_equal(msg_reader_init(&r, got_msg, got_drop, &g), 0);
    for (size_t i = 0; i < wire.len; i++)
        msg_reader_feed(&r, wire.data + i, 1);
    assert_int_equal(g.n, 2);
    assert_int_equal(g.ids[0], 1);
    assert_int_equal(g.ids[1], 4);
    assert_int_equal(r.stats.bad_crc, 1);
    assert_int_equal(r.stats.bad_version, 1);
    assert_int_equal(r.slip.stats.bad_escape, 1); /* "garbage ESC !" */
    assert_int_equal(msg_reader_dropped(&r), 3);
    assert_int_equal(g.ndrops, 3);
    msg_reader_free(&r);
    msg_buf_free(&m);
    msg_buf_free(&wire);
}

/* ---- docs/protocol.md examples, decoded verbatim ----------------------- */

/* Finds the fenced block "```KIND NAME" in the spec and decodes its hex. */
static size_t doc_block(const char *kind, const char *name, uint8_t *out,
                        size_t cap)
{
    FILE *f = fopen("docs/protocol.md", "r");
    if (!f)
        fail_msg("docs/protocol.md: run the test from the repository root");
    char line[256], want[64];
    snprintf(want, sizeof(want), "```%s %s\n", kind, name);
    bool in = false;
    size_t n = 0;
    while (fgets(line, sizeof(line), f)) {
        if (!in) {
            in = !strcmp(line, want);
            continue;
        }
        if (!strncmp(line, "```", 3))
            break;
        for (char *p = line; *p;) {
            unsigned b;
            int used;
            if (sscanf(p, " %2x%n", &b, &used) != 1)
                break;
            assert_true(n < cap);
            out[n++] = (uint8_t)b;
            p += used;
        }
    }
    fclose(f);
    if (!in || n == 0)
        fail_msg("docs/protocol.md has no ```%s %s block", kind, name);
    return n;
}

static void doc_view(const char *name, uint8_t *buf, size_t cap,
                     struct msg_view *v)
{
    size_t n = doc_block("hex", name, buf, cap);
    int r = msg_parse(buf, n, v);
    if (r)
        fail_msg("example %s does not parse: %d", name, r);
}

static bool bytes_eq(struct msg_bytes b, const char *s)
{
    return b.len == strlen(s) && !memcmp(b.p, s, b.len);
}

static void spec_examples_decode(void **state)
{
    (void)state;
    uint8_t buf[512];
    struct msg_view v;

    doc_view("HELLO", buf, sizeof(buf), &v);
    struct msg_hello h;
    assert_int_equal(msg_decode_hello(&v, &h), 0);
    assert_true(bytes_eq(h.agent_version, "0.2.0"));
    assert_true(bytes_eq(h.lang, "go"));
    assert_true(bytes_eq(h.toolchain, "go1.19.8"));
    assert_true(bytes_eq(h.source, "main.go"));

    doc_view("RUN", buf, sizeof(buf), &v);
    struct msg_run r;
    assert_int_equal(v.id, 7);
    assert_int_equal(msg_decode_run(&v, &r), 0);
    assert_int_equal(r.flags, MSG_RUN_STDIN_OPEN);
    assert_int_equal(r.nfiles, 1);
    assert_true(bytes_eq(r.files[0].name, "a.sh"));
    assert_int_equal(r.files[0].mode, 0755);
    assert_true(bytes_eq(r.files[0].data, "echo hi\n"));
    const char *argv[4];
    assert_int_equal(msg_strlist_split(&r.run_argv, argv, 4), 2);
    assert_string_equal(argv[0], "sh");
    assert_string_equal(argv[1], "a.sh");
    assert_false(r.build_argv.present);
    assert_true(bytes_eq(r.stdin_data, "x"));
    assert_int_equal(r.limits.wall_ms, 5000);

    doc_view("STDIN", buf, sizeof(buf), &v);
    struct msg_stdin s;
    assert_int_equal(msg_decode_stdin(&v, &s), 0);
    assert_true(s.eof);
    assert_true(bytes_eq(s.data, "y\n"));

    doc_view("OUTPUT", buf, sizeof(buf), &v);
    struct msg_output o;
    assert_int_equal(msg_decode_output(&v, &o), 0);
    assert_int_equal(o.phase, MSG_PHASE_RUN);
    assert_int_equal(o.stream, MSG_STREAM_STDOUT);
    assert_true(bytes_eq(o.data, "hi\n"));

    doc_view("EXIT", buf, sizeof(buf), &v);
    struct msg_exit e;
    assert_int_equal(msg_decode_exit(&v, &e), 0);
    assert_true(e.exited);
    assert_int_equal(e.code, 3);
    assert_false(e.signaled);
    assert_int_equal(e.wall_ms, 12);
    assert_int_equal(e.cpu_ms, 2);
    assert_int_equal(e.peak_mem, 1 << 20);
    assert_int_equal(e.status, MSG_EXIT_FINAL);

    doc_view("ERROR", buf, sizeof(buf), &v);
    struct msg_error er;
    assert_int_equal(v.id, 9);
    assert_int_equal(msg_decode_error(&v, &er), 0);
    assert_int_equal(er.code, MSG_ERR_UNKNOWN_TYPE);
    assert_true(bytes_eq(er.message, "type 99"));

    /* One RUN per snippet: an unnamed FILE and both steps' limits. */
    doc_view("RUN-ONE", buf, sizeof(buf), &v);
    assert_int_equal(v.id, 12);
    assert_int_equal(msg_decode_run(&v, &r), 0);
    assert_int_equal(r.flags, 0);
    assert_int_equal(r.nfiles, 1);
    assert_int_equal(r.files[0].name.len, 0);
    assert_int_equal(r.files[0].mode, 0);
    assert_true(bytes_eq(r.files[0].data, "print(6 * 7)\n"));
    assert_false(r.build_argv.present);
    assert_false(r.run_argv.present);
    assert_int_equal(r.limits.wall_ms, 10000);
    assert_true(r.has_build_limits);
    assert_int_equal(r.build_limits.wall_ms, 60000);
    assert_int_equal(r.build_limits.mem_bytes, 0);
    /* The doc's bytes are what the builder makes of those fields. */
    struct msg_buf m;
    msg_buf_init(&m);
    assert_int_equal(msg_build_run(&m, v.id, &r), 0);
    assert_int_equal(m.len, 16 + v.len + 4);
    assert_memory_equal(m.data, buf, m.len);
    msg_buf_reset(&m);

    doc_view("ANNOUNCE", buf, sizeof(buf), &v);
    assert_int_equal(v.type, MSG_ANNOUNCE);
    assert_int_equal(v.id, 13);
    assert_int_equal(v.len, 0);
    assert_int_equal(msg_build_announce(&m, 13, NULL), 0);
    assert_memory_equal(m.data, buf, m.len);
    msg_buf_free(&m);

    doc_view("HELLO-ANNOUNCED", buf, sizeof(buf), &v);
    assert_int_equal(v.id, 13);
    assert_int_equal(msg_decode_hello(&v, &h), 0);
    assert_true(bytes_eq(h.agent_version, "0.2.0"));
    assert_true(bytes_eq(h.lang, "python"));
    assert_true(bytes_eq(h.toolchain, "Python 3.11.2"));
    assert_true(bytes_eq(h.source, "main.py"));

    doc_view("SHUTDOWN", buf, sizeof(buf), &v);
    assert_int_equal(v.type, MSG_SHUTDOWN);
    assert_int_equal(v.id, 10);

    /* The SLIP example goes through the reader. */
    size_t n = doc_block("slip", "OUTPUT-STDERR", buf, sizeof(buf));
    struct msg_reader rd;
    struct got g = {0};
    assert_int_equal(msg_reader_init(&rd, got_msg, got_drop, &g), 0);
    msg_reader_feed(&rd, buf, n);
    assert_int_equal(g.n, 1);
    assert_int_equal(g.ids[0], 7);
    assert_int_equal(g.ndrops, 0);
    assert_int_equal(buf[n - 1], SLIP_END);
    msg_reader_free(&rd);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(crc_matches_zlib),
        cmocka_unit_test(hello_round_trip),
        cmocka_unit_test(run_round_trip),
        cmocka_unit_test(small_types_round_trip),
        cmocka_unit_test(bad_fields_rejected),
        cmocka_unit_test(build_limits_and_unnamed_file_round_trip),
        cmocka_unit_test(build_limits_hostile),
        cmocka_unit_test(announce_round_trip),
        cmocka_unit_test(frame_faults),
        cmocka_unit_test(oversize_payload_refused_by_builder),
        cmocka_unit_test(reader_counts_and_resyncs),
        cmocka_unit_test(spec_examples_decode),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
