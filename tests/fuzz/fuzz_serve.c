/* libFuzzer target: what runvm serve parses from others. The first byte
 * picks the parser, the rest is its input: a Piston execute body, a judge
 * body (each turned into /start bodies, which api/request.c must take),
 * or a VM's event stream gathered (api/collect.c) and answered both ways.
 * None may crash, and every /start body made must parse. */
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "api/collect.h"
#include "api/judge.h"
#include "api/piston.h"
#include "api/request.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void start_body_parses(const struct msg_buf *b)
{
    struct api_request r;
    const char *why;
    int st = api_request_parse(&r, "application/json", (const char *)b->data,
                               b->len, 1000, 1000, &why);
    api_request_free(&r);
    /* Made from a request that parsed: only its own limits or fields may
     * be refused, never the JSON. */
    if (st == 415)
        __builtin_trap();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    const char *p = (const char *)data + 1;
    size_t n = size - 1;
    struct msg_buf b;
    msg_buf_init(&b);
    const char *why;
    switch (data[0] % 3) {
    case 0: {
        struct piston_request r;
        static const char *const run[] = {"./main", NULL};
        if (piston_parse(&r, p, n, &why) == 0) {
            if (piston_start_body(&r, data[0] & 4 ? run : NULL, &b, &why) == 0)
                start_body_parses(&b);
            piston_request_free(&r);
        }
        break;
    }
    case 1: {
        struct judge_request r;
        if (judge_parse(&r, p, n, &why) == 0) {
            for (size_t k = 0; k < r.ncases && k < 4; k++) {
                msg_buf_reset(&b);
                judge_start_body(&r, k, &b);
                start_body_parses(&b);
            }
            judge_request_free(&r);
        }
        break;
    }
    default: {
        struct collect c;
        collect_init(&c, 4096, data[0] & 4);
        /* In two pieces, as a socket may give it. */
        size_t half = n / 2;
        (void)collect_feed(&c, p, half);
        (void)collect_feed(&c, p + half, n - half);
        collect_fail(&c, 125, "the stream ended");
        if (c.run.out.len > 4096 || c.run.both.len > 4096)
            __builtin_trap();
        piston_answer(&c, "x", "1", true, &b);
        json_t *j = json_loads((const char *)b.data, JSON_ALLOW_NUL, NULL);
        if (!j)
            __builtin_trap(); /* the answer is JSON whatever came in */
        json_decref(j);
        collect_free(&c);
        break;
    }
    }
    msg_buf_free(&b);
    return 0;
}
