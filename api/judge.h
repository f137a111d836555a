/* POST /judge in runvm serve's terms: one program (/start's schema: lang,
 * code, files, limits) and "cases" [{stdin, expected_stdout, limits}],
 * built once and run once per case in that submission's VM; one verdict
 * per case. Pure: the request in, each run's /start body out, then the
 * runs' results (api/collect.h) in, the answer out (docs/cli.md,
 * "POST /judge"). */
#ifndef RUNVM_JUDGE_H
#define RUNVM_JUDGE_H

#include <stdbool.h>
#include <stddef.h>

#include "api/collect.h"
#include "protocol/msg.h"

#define JUDGE_MAX_CASES 256

struct json_t;

struct judge_request {
    struct json_t *json;
    const char *lang; /* its "lang", or NULL */
    size_t ncases;
    bool exact; /* "compare": "exact" */
};

/* Parses a judge body. 0, or 400 with *why (the request then freed). */
int judge_parse(struct judge_request *r, const char *body, size_t len,
                const char **why);
void judge_request_free(struct judge_request *r);

/* The /start body of case k's run, appended to out: case 0 builds the
 * program and runs it; later cases reuse the build (reuse: true). Each
 * with the case's stdin and the request's limits, the case's own over
 * them. */
void judge_start_body(const struct judge_request *r, size_t k,
                      struct msg_buf *out);

/* Whether two outputs are the same: byte for byte when exact, else
 * ignoring whitespace at the end of each line and empty lines at the
 * end. */
bool judge_same_output(const char *a, size_t alen, const char *b, size_t blen,
                       bool exact);

/* Case k's verdict from its run's result (NULL: it never ran because the
 * build failed or the VM was lost: build's result says which). */
const char *judge_verdict(const struct judge_request *r, size_t k,
                          const struct collect *run,
                          const struct collect *build);

/* The answer, a NUL-terminated JSON document appended to out: the build
 * (from the first run's result, build) and each case (runs[k], NULL for
 * one that did not run). */
void judge_answer(const struct judge_request *r, const struct collect *build,
                  const struct collect *const *runs, struct msg_buf *out);

#endif
