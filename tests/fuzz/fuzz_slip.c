/* libFuzzer target for what the agent and the VMM read from the channel:
 * the SLIP decoder, the message parser and every typed decoder. The input's
 * first byte picks the chunk size, so partial frames are fuzzed too. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "protocol/msg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void on_msg(void *opaque, const struct msg_view *v)
{
    (void)opaque;
    struct msg_hello h;
    struct msg_run r;
    struct msg_stdin s;
    struct msg_output o;
    struct msg_exit e;
    struct msg_error er;
    const char *argv[16];

    switch (v->type) {
    case MSG_HELLO: (void)msg_decode_hello(v, &h); break;
    case MSG_RUN:
        if (msg_decode_run(v, &r) == 0) {
            (void)msg_strlist_split(&r.run_argv, argv, 16);
            (void)msg_strlist_split(&r.build_argv, argv, 16);
            (void)msg_strlist_split(&r.env, argv, 16);
            /* Rebuilding what was decoded must succeed and re-decode. */
            struct msg_buf m;
            msg_buf_init(&m);
            if (msg_build_run(&m, v->id, &r) == 0) {
                struct msg_view v2;
                struct msg_run r2;
                if (msg_parse(m.data, m.len, &v2) != 0 ||
                    msg_decode_run(&v2, &r2) != 0 || r2.nfiles != r.nfiles ||
                    r2.has_build_limits != r.has_build_limits ||
                    memcmp(&r2.build_limits, &r.build_limits,
                           sizeof(r.build_limits)) != 0)
                    __builtin_trap();
            }
            msg_buf_free(&m);
        }
        break;
    case MSG_STDIN: (void)msg_decode_stdin(v, &s); break;
    case MSG_OUTPUT: (void)msg_decode_output(v, &o); break;
    case MSG_EXIT: (void)msg_decode_exit(v, &e); break;
    case MSG_ERROR:
        if (msg_decode_error(v, &er) == 0)
            free(msg_bytes_strdup(er.message));
        break;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct msg_reader r;
    if (size == 0)
        return 0;
    size_t chunk = (size_t)data[0] + 1;
    data++;
    size--;
    if (msg_reader_init(&r, on_msg, NULL, NULL) != 0)
        return 0;
    for (size_t off = 0; off < size; off += chunk) {
        size_t n = size - off < chunk ? size - off : chunk;
        msg_reader_feed(&r, data + off, n);
    }
    /* Every frame either arrived or was counted as dropped. */
    msg_reader_free(&r);
    return 0;
}
