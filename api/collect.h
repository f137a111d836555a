/* A run's NDJSON events (session/event.h, as an output socket gives them)
 * gathered into one result: each phase's stdout, stderr and both
 * interleaved, how it ended, and the final status. For answers that are
 * one JSON document (runvm serve's Piston route and POST /judge). Pure:
 * bytes in, a result out; tests/fuzz/fuzz_collect.c feeds it anything. */
#ifndef RUNVM_COLLECT_H
#define RUNVM_COLLECT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "protocol/msg.h"

#define COLLECT_MAX_LINE (8u << 20) /* an event longer is malformed */

struct collect_phase {
    bool ended;                    /* its step or exit event came */
    bool out_capped;               /* stdout past the cap was dropped */
    struct msg_buf out, err, both; /* output kept, up to the cap each */
    bool exited, signaled;         /* exit_code, signal valid */
    int exit_code, signal;
    uint64_t wall_ms, cpu_ms, peak_memory_bytes;
    bool timed_out, output_truncated, oom_killed;
};

/* Which phase the final exit event was of: a final exit in the build
 * phase is a failed build (whatever its status: a program's exit(126)
 * has the same one); none for a failure's event or collect_fail. */
enum collect_final { COLLECT_NONE, COLLECT_BUILD, COLLECT_RUN };

struct collect {
    struct collect_phase build, run;
    enum collect_final final;
    bool done;           /* the final exit event came (or collect_fail) */
    int status;          /* its status: docs/cli.md's table */
    char error[256];     /* a failure's "error", or "" */
    bool capped;         /* output past cap was dropped */
    size_t cap;          /* bytes kept per stream and phase */
    bool keep_both;      /* also keep stdout and stderr interleaved */
    struct msg_buf line; /* a partial event */
};

void collect_init(struct collect *c, size_t cap, bool keep_both);

/* Whether the build failed (its phase ended the run), and whether the run
 * was lost (the VM, runvm or the agent failed: no final event of a
 * phase). */
bool collect_build_failed(const struct collect *c);
bool collect_lost(const struct collect *c);
void collect_free(struct collect *c);

/* Takes n more bytes of the stream. 0, or -EBADMSG for an event that is
 * not one (not JSON, no known type, too long): the result then says
 * nothing more. Bytes after the final event are ignored. */
int collect_feed(struct collect *c, const char *p, size_t n);

/* The stream ended before its final event: status and why. */
void collect_fail(struct collect *c, int status, const char *why);

/* Appends s[0..len) to b as a JSON string (bytes that are not UTF-8
 * become U+FFFD). */
void collect_json_bytes(struct msg_buf *b, const struct msg_buf *s);

#endif
