/* The body of POST /start turned into one agent run (docs/cli.md,
 * "POST /start"): the program's source as text, or JSON with code, files,
 * stdin, args, limits, reuse, lang, keep and submission. Pure: bytes in, a
 * request or the status and message to refuse it with out;
 * tests/unit/test_api.c checks every refusal through the server. */
#ifndef RUNVM_API_REQUEST_H
#define RUNVM_API_REQUEST_H

#include <stddef.h>
#include <stdint.h>

#include "session/agent_client.h"

#define API_MAX_FILES    16
#define API_MAX_ARGS     64
#define API_MAX_LIMIT_MS (600u * 1000) /* timeout_ms, build_timeout_ms */

struct json_t;

/* One run to start. Its strings point into the JSON it owns or into the
 * body it was parsed from, which must outlive it. */
struct api_request {
    struct agent_request run;
    struct agent_file files[API_MAX_FILES];
    const char *argv[API_MAX_ARGS + 1];
    const char *lang; /* the language it names ("lang"), or NULL */
    /* runvm serve's: keep the VM for the submission's next run ("keep"),
     * and the submission a run belongs to ("submission"; NULL: a new
     * one). API mode has one VM and ignores both. */
    bool keep;
    const char *submission;
    struct json_t *json;
};

/* Fills r from body[0..len) of media type content_type (lower case, no
 * parameters, as http_parse gives it); the run and build time limits
 * default to run_ms and build_ms. 0, or the HTTP status to refuse it with
 * (400, 415) and *why the message. Free r with api_request_free either
 * way. */
int api_request_parse(struct api_request *r, const char *content_type,
                      const char *body, size_t len, uint64_t run_ms,
                      uint64_t build_ms, const char **why)
    __attribute__((warn_unused_result));

/* Releases what api_request_parse allocated; r may be zeroed. */
void api_request_free(struct api_request *r);

#endif
