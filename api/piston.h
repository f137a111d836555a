/* Piston's API v2 (`POST /api/v2/execute`, `GET /api/v2/runtimes`) in
 * runvm serve's terms, as Piston's real clients use it: a body parsed
 * whatever its Content-Type, files[0] the language's source file, "args"
 * appended to the language's run command, timeouts in ms, -1 for the
 * server's default, "language" perhaps "python:3.11"; answers with
 * Piston's "run" and "compile" objects, errors as {"message": ...}. Pure:
 * JSON in, JSON out (docs/cli.md, "Piston"). */
#ifndef RUNVM_PISTON_H
#define RUNVM_PISTON_H

#include <stddef.h>

#include "api/collect.h"
#include "protocol/msg.h"
#include "protocol/version.h"

struct json_t;

struct piston_request {
    /* The language as a catalog spec: NAME, NAME@VERSION or NAME@*. */
    char spec[LANG_NAME_MAX + LANG_VERSION_MAX + 2];
    struct json_t *json;
};

/* Parses an execute body. 0, or 400 with *why (request then freed). */
int piston_parse(struct piston_request *r, const char *body, size_t len,
                 const char **why);

/* The /start JSON body for r into out (appended): run_argv is the
 * language's run command (NULL-terminated; NULL when not known, and then
 * "args" must be empty). 0, or 400 with *why. */
int piston_start_body(const struct piston_request *r,
                      const char *const *run_argv, struct msg_buf *out,
                      const char **why);

void piston_request_free(struct piston_request *r);

/* The execute answer for a run that ended as c says, appended to out (a
 * NUL-terminated JSON document): lang and version name what ran;
 * compiled: the language has a build step (a "compile" object). */
void piston_answer(const struct collect *c, const char *lang,
                   const char *version, bool compiled, struct msg_buf *out);

/* One runtimes entry ({"language","version","aliases"}) appended to a
 * JSON array being written in out; first: no comma before it. aliases:
 * space-separated. */
void piston_runtime(struct msg_buf *out, bool first, const char *lang,
                    const char *version, const char *aliases);

#endif
