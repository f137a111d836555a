#include "api/request.h"

#include <jansson.h>
#include <stdbool.h>
#include <string.h>

#include "protocol/msg.h"

/* A limit in the request: absent 0, else 1..max. false if malformed. */
static bool get_limit(json_t *limits, const char *key, uint64_t max,
                      uint64_t *out)
{
    json_t *v = limits ? json_object_get(limits, key) : NULL;
    if (!v)
        return true;
    if (!json_is_integer(v) || json_integer_value(v) < 1 ||
        (uint64_t)json_integer_value(v) > max)
        return false;
    *out = (uint64_t)json_integer_value(v);
    return true;
}

/* Fills r from a JSON body. NULL or the message to refuse it with. */
static const char *parse_json(struct api_request *r, const char *body,
                              size_t len)
{
    json_error_t jerr;
    json_t *root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
    r->json = root;
    if (!root || !json_is_object(root))
        return "body is not a JSON object";
    json_t *code = json_object_get(root, "code");
    json_t *files = json_object_get(root, "files");
    json_t *in = json_object_get(root, "stdin");
    json_t *args = json_object_get(root, "args");
    json_t *limits = json_object_get(root, "limits");
    json_t *reuse = json_object_get(root, "reuse");
    json_t *lang = json_object_get(root, "lang");
    json_t *keep = json_object_get(root, "keep");
    json_t *submission = json_object_get(root, "submission");
    if (code && !json_is_string(code))
        return "\"code\" must be a string";
    if (files && !json_is_object(files))
        return "\"files\" must be an object of file name to content";
    if (in && !json_is_string(in))
        return "\"stdin\" must be a string";
    if (args && (!json_is_array(args) || json_array_size(args) == 0 ||
                 json_array_size(args) > API_MAX_ARGS))
        return "\"args\" must be a list of 1 to 64 strings (the run argv)";
    if (limits && !json_is_object(limits))
        return "\"limits\" must be an object";
    if (reuse && !json_is_boolean(reuse))
        return "\"reuse\" must be true or false";
    if (lang && !json_is_string(lang))
        return "\"lang\" must be a string: LANG or LANG@VERSION";
    if (keep && !json_is_boolean(keep))
        return "\"keep\" must be true or false";
    if (submission &&
        (!json_is_string(submission) || json_string_length(submission) == 0 ||
         json_string_length(submission) > 64))
        return "\"submission\" must be the id a run with \"keep\" "
               "answered";
    r->lang = lang ? json_string_value(lang) : NULL;
    r->keep = keep && json_is_true(keep);
    r->submission = submission ? json_string_value(submission) : NULL;
    bool reusing = reuse && json_is_true(reuse);
    if (!code && !files && !reusing)
        return "give \"code\" or \"files\"";
    struct agent_request *run = &r->run;
    if (code) {
        r->files[run->nfiles++] = (struct agent_file){
            .name = NULL, /* the agent names it: the image's SOURCE */
            .data = json_string_value(code),
            .len = json_string_length(code)};
    }
    const char *name;
    json_t *v;
    json_object_foreach(files, name, v)
    {
        if (run->nfiles == API_MAX_FILES)
            return "too many files (at most 16)";
        if (!msg_file_name_ok(name))
            return "file names are plain names: letters, digits, . _ - (not "
                   "first: . or -)";
        if (!json_is_string(v))
            return "file contents must be strings";
        r->files[run->nfiles++] =
            (struct agent_file){.name = name,
                                .data = json_string_value(v),
                                .len = json_string_length(v)};
    }
    if (args) {
        size_t i;
        json_array_foreach(args, i, v)
        {
            if (!json_is_string(v))
                return "\"args\" must be a list of strings";
            r->argv[i] = json_string_value(v);
        }
        r->argv[json_array_size(args)] = NULL;
        run->run_argv = r->argv;
    }
    if (in) {
        run->stdin_data = json_string_value(in);
        run->stdin_len = json_string_length(in);
    }
    struct msg_limits *rl = &run->limits;
    if (!get_limit(limits, "timeout_ms", API_MAX_LIMIT_MS, &rl->wall_ms) ||
        !get_limit(limits, "build_timeout_ms", API_MAX_LIMIT_MS,
                   &run->build_limits.wall_ms) ||
        !get_limit(limits, "memory_bytes", 1ull << 40, &rl->mem_bytes) ||
        !get_limit(limits, "max_procs", 100000, &rl->max_procs) ||
        !get_limit(limits, "max_output_bytes", 1ull << 32, &rl->max_output))
        return "limits are positive integers: timeout_ms, build_timeout_ms "
               "(at most 600000), memory_bytes, max_procs, max_output_bytes";
    if (reusing) /* run step only, in the previous RUN's directory */
        run->flags = MSG_RUN_REUSE_WORKDIR | MSG_RUN_SKIP_BUILD;
    return NULL;
}

int api_request_parse(struct api_request *r, const char *content_type,
                      const char *body, size_t len, uint64_t run_ms,
                      uint64_t build_ms, const char **why)
{
    /* The request's limits are the run step's; the build keeps the
     * agent's defaults but for its time limit. */
    *r = (struct api_request){
        .run = {.limits = {.wall_ms = run_ms},
                .has_build_limits = true,
                .build_limits = {.wall_ms = build_ms},
                .files = r->files},
    };
    const char *ct = content_type;
    if (strcmp(ct, "application/json") == 0) {
        *why = parse_json(r, body, len);
        return *why ? 400 : 0;
    }
    /* curl --data-binary sends form-urlencoded unless told. */
    if (ct[0] != '\0' && strcmp(ct, "text/plain") != 0 &&
        strcmp(ct, "application/octet-stream") != 0 &&
        strcmp(ct, "application/x-www-form-urlencoded") != 0) {
        *why = "send text/plain (the source) or application/json";
        return 415;
    }
    if (len == 0) {
        *why = "empty body: send the program's source";
        return 400;
    }
    r->files[r->run.nfiles++] = (struct agent_file){.data = body, .len = len};
    return 0;
}

void api_request_free(struct api_request *r)
{
    if (r->json)
        json_decref(r->json);
    r->json = NULL;
}
