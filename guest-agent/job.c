/* Setting a RUN's job up: naming its files, its argv and environment from
 * the request and lang.conf, and each step's limits. */
#include "guest-agent/agent_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define STEP_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

/* Gives a FILE without a name the lang.conf SOURCE name (so the host need
 * not learn it from HELLO first) and checks every name. 0, or -EINVAL
 * with the ERROR sent. */
int job_name_files(struct agent *a, struct job *j)
{
    bool unnamed_seen = false;
    for (size_t i = 0; i < j->run.nfiles; i++) {
        struct msg_file *f = &j->run.files[i];
        if (f->name.len == 0) {
            if (unnamed_seen || !a->lang.source) {
                agent_send_error(a, j->id, MSG_ERR_BAD_REQUEST,
                                 "file %zu has no name and %s", i,
                                 unnamed_seen ? "another one has none either"
                                              : "lang.conf names no SOURCE");
                return -EINVAL;
            }
            unnamed_seen = true;
            f->name = (struct msg_bytes){(const uint8_t *)a->lang.source,
                                         (uint32_t)strlen(a->lang.source)};
        }
        if (!workdir_valid_name(f->name)) {
            agent_send_error(a, j->id, MSG_ERR_BAD_REQUEST,
                             "file %zu: a name must be a plain file name", i);
            return -EINVAL;
        }
    }
    /* One file a name: a second would be written over the first (the
     * source, say), and the program built would not be the one sent. */
    for (size_t i = 0; i < j->run.nfiles; i++)
        for (size_t k = 0; k < i; k++) {
            struct msg_bytes x = j->run.files[i].name, y = j->run.files[k].name;
            if (x.len == y.len && !memcmp(x.p, y.p, x.len)) {
                agent_send_error(a, j->id, MSG_ERR_BAD_REQUEST,
                                 "files %zu and %zu are both named %.*s", k, i,
                                 (int)x.len, (const char *)x.p);
                return -EINVAL;
            }
        }
    return 0;
}

static void env_set(const char **env, const char *kv)
{
    size_t kl = strcspn(kv, "=");
    size_t i;
    for (i = 0; env[i]; i++)
        if (!strncmp(env[i], kv, kl) && env[i][kl] == '=') {
            env[i] = kv;
            return;
        }
    if (i < MAX_ENV) {
        env[i] = kv;
        env[i + 1] = NULL;
    }
}

void job_clear(struct job *j)
{
    free(j->payload);
    for (size_t i = 0; i < MAX_ENV; i++)
        free(j->env_storage[i]);
    msg_buf_free(&j->stdin_pending);
    memset(j, 0, sizeof(*j));
    j->out_fd = j->err_fd = j->in_fd = -1;
}

void job_end(struct agent *a)
{
    job_clear(&a->job);
}

static uint64_t or_default(uint64_t v, uint64_t def)
{
    return v ? v : def;
}

/* A step's limits: the request's, the agent's default where it says 0. */
static void fill_limits(struct msg_limits *out, const struct msg_limits *in)
{
    out->wall_ms = or_default(in->wall_ms, AGENT_DEFAULT_WALL_MS);
    out->cpu_ms = in->cpu_ms;
    out->mem_bytes = or_default(in->mem_bytes, AGENT_DEFAULT_MEM_BYTES);
    out->max_procs = or_default(in->max_procs, AGENT_DEFAULT_MAX_PROCS);
    out->max_output = or_default(in->max_output, AGENT_DEFAULT_MAX_OUTPUT);
}

/* The limits of a step of the job. */
const struct msg_limits *job_limits(const struct job *j, uint8_t phase)
{
    return phase == MSG_PHASE_BUILD ? &j->build_limits : &j->limits;
}

/* Fills the job's argv and environment from the request and lang.conf.
 * Returns 0 or an ERROR code (the message is sent here). */
int job_resolve(struct agent *a, struct job *j)
{
    const struct msg_run *r = &j->run;
    int n;

    j->has_build = false;
    if (!(r->flags & MSG_RUN_SKIP_BUILD)) {
        if (r->build_argv.present) {
            n = msg_strlist_split(&r->build_argv, j->build_argv, MAX_ARGV);
            if (n < 0)
                goto bad_argv;
            j->has_build = n > 0;
        } else if (a->lang.has_build) {
            for (n = 0; a->lang.build_argv[n]; n++)
                j->build_argv[n] = a->lang.build_argv[n];
            j->build_argv[n] = NULL;
            j->has_build = true;
        }
    }
    if (r->run_argv.present) {
        n = msg_strlist_split(&r->run_argv, j->run_argv, MAX_ARGV);
        if (n < 0)
            goto bad_argv;
    } else if (a->lang.has_run) {
        for (n = 0; a->lang.run_argv[n]; n++)
            j->run_argv[n] = a->lang.run_argv[n];
        j->run_argv[n] = NULL;
    } else {
        n = 0;
    }
    if (n == 0) {
        agent_send_error(
            a, j->id, MSG_ERR_NO_COMMAND,
            "no run command: the request has none and %s has no RUN",
            a->cfg.lang_conf);
        return MSG_ERR_NO_COMMAND;
    }

    const char *req_env[MAX_ENV];
    n = r->env.present ? msg_strlist_split(&r->env, req_env, MAX_ENV) : 0;
    if (n < 0) {
        agent_send_error(a, j->id, MSG_ERR_BAD_REQUEST,
                         "env: too many entries");
        return MSG_ERR_BAD_REQUEST;
    }
    j->env[0] = NULL;
    env_set(j->env, "PATH=" STEP_PATH);
    /* TMPDIR is the directory the agent empties for each fresh RUN. */
    if (asprintf(&j->env_storage[0], "HOME=%s", a->workdir) < 0)
        j->env_storage[0] = NULL;
    if (asprintf(&j->env_storage[1], "TMPDIR=%s",
                 a->cfg.tmp_root ? a->cfg.tmp_root : "/tmp") < 0)
        j->env_storage[1] = NULL;
    if (!j->env_storage[0] || !j->env_storage[1]) {
        agent_send_error(a, j->id, MSG_ERR_INTERNAL, "out of memory");
        return MSG_ERR_INTERNAL;
    }
    env_set(j->env, j->env_storage[1]);
    env_set(j->env, j->env_storage[0]);
    for (int i = 0; a->lang.env[i]; i++)
        env_set(j->env, a->lang.env[i]);
    for (int i = 0; i < n; i++) {
        if (!strchr(req_env[i], '=') || req_env[i][0] == '=') {
            agent_send_error(a, j->id, MSG_ERR_BAD_REQUEST,
                             "env entry %d is not NAME=VALUE", i);
            return MSG_ERR_BAD_REQUEST;
        }
        env_set(j->env, req_env[i]);
    }

    /* Without BUILD_LIMITS the RUN's limits are each step's. */
    fill_limits(&j->limits, &r->limits);
    fill_limits(&j->build_limits,
                r->has_build_limits ? &r->build_limits : &r->limits);
    return 0;

bad_argv:
    agent_send_error(a, j->id, MSG_ERR_BAD_REQUEST, "argv: %s",
                     n == -E2BIG ? "too many words" : "malformed");
    return MSG_ERR_BAD_REQUEST;
}
