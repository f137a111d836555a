#include "cli/cli.h"

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <fcntl.h>
#include <stdarg.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "session/catalog.h"
#include "session/event.h"
#include "api/serve.h"
#include "protocol/langconf.h"
#include "api/server.h"
#include "cli/agent_exec.h"
#include "cli/options.h"

/* Boot and unpacking allowance in the whole-VM watchdog. */
#define WATCHDOG_SLACK_S 120
#define MAX_SOURCE_BYTES (4u << 20)
#define MAX_STDIN_BYTES  (4u << 20)
#define MAX_DIRS         3

enum job_kind { JOB_EXEC, JOB_ONESHOT, JOB_API };

struct cli_job {
    enum job_kind kind;
    struct agent_exec *exec;
    struct api_server *api;
    struct agent_exec_config exec_cfg;
    struct api_server_config api_cfg;
    struct agent_request req;
    struct agent_file files[CLI_MAX_FILES];
    char *sources[CLI_MAX_FILES];
    char *stdin_data;
    size_t stdin_len;
    const char *const *argv;
    char kernel_path[PATH_MAX];
    struct catalog catalog;
    struct catalog_entry lang;    /* what --lang picked */
    struct session_expect expect; /* of job->lang */
};

static const char *const empty_argv[] = {NULL};

static void fail_infra(const char *fmt, ...)
    __attribute__((format(printf, 1, 2), noreturn));

static void fail_infra(const char *fmt, ...)
{
    va_list ap;
    fputs("runvm: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    exit(RUNVM_EXIT_INFRA);
}

/* ---- finding the kernel and images ------------------------------------ */

struct search {
    char kernels[MAX_DIRS + 1][PATH_MAX];
    char image_dirs[MAX_DIRS + 1][PATH_MAX];
    int nkernels, ndirs;
};

static void search_init(struct search *s)
{
    memset(s, 0, sizeof(*s));
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 4);
    if (n > 0) {
        exe[n] = '\0';
        char *slash = strrchr(exe, '/');
        char top[PATH_MAX];
        if (slash) {
            /* BIN/.. is the build directory or the installed prefix. */
            strcpy(slash, "/..");
            if (!realpath(exe, top))
                snprintf(top, sizeof(top), "%s", exe);
            snprintf(s->kernels[s->nkernels++], PATH_MAX,
                     "%.3000s/kernel/" ARCH_KERNEL_FILE, top);
            snprintf(s->image_dirs[s->ndirs++], PATH_MAX, "%.3000s/images",
                     top);
            snprintf(s->kernels[s->nkernels++], PATH_MAX,
                     "%.3000s/share/runvm/" ARCH_KERNEL_FILE, top);
            snprintf(s->image_dirs[s->ndirs++], PATH_MAX,
                     "%.3000s/share/runvm/images", top);
        }
    }
    const char *k = getenv("RUNVM_KERNEL"), *i = getenv("RUNVM_IMAGES");
    if (k && *k)
        snprintf(s->kernels[s->nkernels++], PATH_MAX, "%s", k);
    if (i && *i)
        snprintf(s->image_dirs[s->ndirs++], PATH_MAX, "%s", i);
}

static bool is_file(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0;
}

/* The languages and versions in the image directories. */
static void load_catalog(const struct search *s, struct catalog *c)
{
    const char *dirs[MAX_DIRS + 1];
    for (int d = 0; d < s->ndirs; d++)
        dirs[d] = s->image_dirs[d];
    if (catalog_load(c, dirs, (size_t)s->ndirs) < 0)
        fail_infra("out of memory");
}

static void no_image(const struct search *s, const char *why)
{
    fprintf(stderr, "runvm: %s\nrunvm: looked in:\n", why);
    for (int d = 0; d < s->ndirs; d++)
        fprintf(stderr, "  %s\n", s->image_dirs[d]);
    fprintf(stderr, "runvm: `runvm --list-langs` lists them all; "
                    "RUNVM_IMAGES names one more directory\n");
    exit(RUNVM_EXIT_INFRA);
}

/* ---- reading the caller's files --------------------------------------- */

static char *read_file(const char *flag, const char *path, size_t max,
                       size_t *len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        fail_infra("%s %s: %s", flag, path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) < 0 || S_ISDIR(st.st_mode))
        fail_infra("%s %s: not a file", flag, path);
    size_t cap = 65536, n = 0;
    char *buf = malloc(cap);
    for (;;) {
        if (!buf)
            fail_infra("%s %s: out of memory", flag, path);
        if (n == cap) {
            cap *= 2;
            buf = realloc(buf, cap);
            continue;
        }
        ssize_t r = read(fd, buf + n, cap - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            fail_infra("%s %s: %s", flag, path, strerror(errno));
        if (r == 0)
            break;
        n += (size_t)r;
        if (n > max)
            fail_infra("%s %s: larger than %zu MiB", flag, path, max >> 20);
    }
    close(fd);
    *len = n;
    return buf;
}

/* ---- jobs ------------------------------------------------------------- */

int cli_list_langs(void)
{
    struct search s;
    struct catalog c;
    search_init(&s);
    load_catalog(&s, &c);
    size_t n = catalog_print(&c, stdout);
    catalog_free(&c);
    if (n == 0) {
        fprintf(stderr, "runvm: no language configs or images found; "
                        "build them with `make images`\n");
        return RUNVM_EXIT_INFRA;
    }
    return 0;
}

int cli_serve(const struct cli_config *cfg)
{
    struct search s;
    struct catalog c;
    search_init(&s);
    load_catalog(&s, &c);
    struct serve_config sc = {
        .sock_path = cfg->api_sock,
        .catalog = &c,
        .max_vms = (unsigned int)cfg->max_vms,
        .queue = (unsigned int)cfg->queue,
        .warm = cfg->warm_given ? (unsigned int)cfg->warm : 1,
        .default_run_ms = cfg->timeout_s * 1000,
        .default_build_ms = cfg->build_timeout_s * 1000,
    };
    char why[2048];
    for (size_t i = 0; i < cfg->nserve_langs; i++) {
        const struct catalog_entry *e =
            catalog_find(&c, cfg->serve_langs[i], why, sizeof(why));
        if (!e)
            no_image(&s, why);
        bool dup = false;
        for (size_t j = 0; j < sc.nlangs; j++)
            dup = dup || sc.langs[j] == e;
        if (!dup)
            sc.langs[sc.nlangs++] = e;
    }
    /* No --langs: every language's default version that is built. */
    for (size_t i = 0; !cfg->nserve_langs && i < c.n; i++) {
        if (i > 0 && !strcmp(c.e[i].lang, c.e[i - 1].lang))
            continue;
        const struct catalog_entry *e =
            catalog_find(&c, c.e[i].lang, why, sizeof(why));
        if (e && sc.nlangs < SERVE_MAX_LANGS)
            sc.langs[sc.nlangs++] = e;
    }
    if (!sc.nlangs)
        no_image(&s, "no language image is built (`make images`)");
    /* Each language's run command and build step, from its config: Piston's
     * "args" follow the one, its "compile" object is the other's. */
    char **run_words[SERVE_MAX_LANGS] = {0};
    for (size_t i = 0; i < sc.nlangs; i++) {
        struct langconf_kv kv;
        char kerr[256];
        size_t nw;
        if (!sc.langs[i]->conf[0] ||
            langconf_kv_load(&kv, sc.langs[i]->conf, kerr, sizeof(kerr)) < 0)
            continue;
        if (langconf_kv_words(&kv, "RUN", &run_words[i], &nw, kerr,
                              sizeof(kerr)) == 0 &&
            nw > 0)
            sc.run_argv[i] = (const char *const *)run_words[i];
        sc.compiled[i] = langconf_kv_get(&kv, "BUILD") != NULL;
        langconf_kv_free(&kv);
    }
    if (!sc.max_vms) {
        long cpus = sysconf(_SC_NPROCESSORS_ONLN);
        sc.max_vms = cpus < 1 ? 1 : cpus > 64 ? 64 : (unsigned int)cpus;
    }
    if (!sc.queue)
        sc.queue = 4 * sc.max_vms;
    /* The children: this runvm, with the VM options serve was given. */
    char exe[PATH_MAX], mem[32], cpus[32], run_s[32], build_s[32];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    if (n <= 0)
        fail_infra("serve: /proc/self/exe: %s", strerror(errno));
    exe[n] = '\0';
    sc.exe = exe;
    const char *args[16];
    size_t na = 0;
    snprintf(run_s, sizeof(run_s), "%lu", cfg->timeout_s);
    snprintf(build_s, sizeof(build_s), "%lu", cfg->build_timeout_s);
    args[na++] = "--timeout";
    args[na++] = run_s;
    args[na++] = "--build-timeout";
    args[na++] = build_s;
    if (cfg->mem_mib) {
        snprintf(mem, sizeof(mem), "%lu", cfg->mem_mib);
        args[na++] = "--mem";
        args[na++] = mem;
    }
    if (cfg->cpus_given) {
        snprintf(cpus, sizeof(cpus), "%lu", cfg->cpus);
        args[na++] = "--cpus";
        args[na++] = cpus;
    }
    if (cfg->boot_timer)
        args[na++] = "--boot-timer";
    if (cfg->cgroup) {
        args[na++] = "--cgroup";
        args[na++] = cfg->cgroup;
    }
    args[na] = NULL;
    sc.child_args = args;
    sc.cgroup = cfg->cgroup;
    sc.listen = cfg->listen;
    int status = serve_main(&sc);
    for (size_t i = 0; i < sc.nlangs; i++)
        langconf_free_words(run_words[i]);
    catalog_free(&c);
    return status;
}

/* The kernel, image and memory a --lang command line leaves to runvm,
 * found and filled into cfg; the paths live in job. */
static void resolve_lang(struct cli_config *cfg, struct cli_job *job)
{
    struct search s;
    search_init(&s);
    if (!cfg->kernel) {
        int i;
        for (i = 0; i < s.nkernels && !is_file(s.kernels[i]); i++)
            ;
        if (i == s.nkernels) {
            fprintf(stderr, "runvm: no guest kernel; looked for:\n");
            for (i = 0; i < s.nkernels; i++)
                fprintf(stderr, "  %s\n", s.kernels[i]);
            fail_infra("build it with `make kernel` in the source tree, or "
                       "set RUNVM_KERNEL to a kernel " ARCH_KERNEL_FILE);
        }
        snprintf(job->kernel_path, sizeof(job->kernel_path), "%s",
                 s.kernels[i]);
        cfg->kernel = job->kernel_path;
    }
    load_catalog(&s, &job->catalog);
    char why[2048];
    const struct catalog_entry *e =
        catalog_find(&job->catalog, cfg->lang, why, sizeof(why));
    if (cfg->initrd) {
        /* The caller's image: its HELLO must say what --lang named, no
         * more (its version only when --lang gave one). options.c
         * checked the spec. */
        struct lang_spec ls;
        (void)lang_spec_parse(cfg->lang, strlen(cfg->lang), &ls);
        snprintf(job->lang.lang, sizeof(job->lang.lang), "%s",
                 e ? e->lang : ls.name);
        snprintf(job->lang.version, sizeof(job->lang.version), "%s",
                 ls.version);
    } else if (e) {
        job->lang = *e;
        cfg->initrd = job->lang.image;
    } else {
        no_image(&s, why);
    }
    job->expect = (struct session_expect){
        .lang = job->lang.lang,
        .version = job->lang.version[0] ? job->lang.version : NULL,
    };
    if (!cfg->mem_mib) {
        /* The initramfs is held twice at boot (the archive, then the
         * unpacked tmpfs, gzip shrinks about 3x) plus room to build. */
        struct stat st;
        unsigned long long img =
            stat(cfg->initrd, &st) == 0 ? (unsigned long long)st.st_size : 0;
        unsigned long mem = (unsigned long)((img * 4) >> 20) + 512;
        cfg->mem_mib = mem > 16384 ? 16384 : mem;
    }
}

static void exec_job(struct cli_job *job, char **argv, unsigned long timeout_s)
{
    job->kind = JOB_EXEC;
    job->argv = (const char *const *)argv;
    job->req = (struct agent_request){
        .build_argv = empty_argv,
        .run_argv = job->argv,
        /* A low-level tool: no output cap beyond the agent's maximum. */
        .limits = {.wall_ms = timeout_s * 1000, .max_output = 1ull << 40},
    };
    /* RUNVM_EXEC_REPEAT=N: the round-trip benchmark (docs/cli.md). */
    const char *repeat = getenv("RUNVM_EXEC_REPEAT");
    job->exec_cfg = (struct agent_exec_config){
        .req = &job->req,
        .shutdown_grace_ms = 1000,
        .repeat = repeat ? atoi(repeat) : 0,
    };
    if (job->exec_cfg.repeat > 100000)
        job->exec_cfg.repeat = 100000;
}

struct cli_job *cli_job_new(struct cli_config *cfg)
{
    if (cfg->mode == CLI_BOOT)
        return NULL;
    struct cli_job *job = calloc(1, sizeof(*job));
    if (!job)
        fail_infra("out of memory");
    if (cfg->mode == CLI_EXEC) {
        exec_job(job, cfg->exec_argv, cfg->timeout_s);
        job->exec_cfg.resumed = cfg->restore != NULL;
        return job;
    }
    if (cfg->mode == CLI_SNAPSHOT) {
        /* Boot to the agent's HELLO and pause there: nothing runs. */
        job->kind = JOB_EXEC;
        job->exec_cfg = (struct agent_exec_config){
            .shutdown_grace_ms = 1000,
            .pause_at_ready = true,
        };
        return job;
    }
    resolve_lang(cfg, job);
    unsigned long run_s = cfg->timeout_s, build_s = cfg->build_timeout_s;
    bool json = cfg->json;
    /* The agent modes keep the kernel quiet unless its log was asked
     * for: nothing reads it. */
    if (!cfg->cmdline_given && !cfg->console)
        cfg->cmdline = CLI_DEFAULT_CMDLINE " quiet";
    if (cfg->mode == CLI_SNAPSHOT_LANG) {
        /* Boot the image to its agent's HELLO, for the store's snapshot;
         * a --lang run of the same image and options then restores it. */
        job->kind = JOB_EXEC;
        job->exec_cfg = (struct agent_exec_config){
            .expect = job->expect,
            .shutdown_grace_ms = 1000,
        };
        cfg->timeout_s = build_s ? build_s : CLI_DEFAULT_BUILD_TIMEOUT_S;
        return job;
    }
    if (cfg->mode == CLI_API) {
        job->kind = JOB_API;
        job->api_cfg = (struct api_server_config){
            .sock_path = cfg->api_sock,
            .listen_fd = cfg->api_fd,
            .expect = job->expect,
            .catalog = &job->catalog,
            .default_run_ms = run_s * 1000,
            .default_build_ms = build_s * 1000,
        };
        cfg->timeout_s = 0; /* runs have their own limits */
        return job;
    }
    job->kind = JOB_ONESHOT;
    size_t total = 0;
    for (size_t i = 0; i < cfg->nfiles; i++) {
        /* The first has no name: the agent writes it under the image's
         * SOURCE. The others keep their base names. */
        job->files[i] = (struct agent_file){
            .name = i ? cli_base_name(cfg->files[i]) : NULL};
        job->sources[i] = read_file("FILE", cfg->files[i], MAX_SOURCE_BYTES,
                                    &job->files[i].len);
        job->files[i].data = job->sources[i];
        total += job->files[i].len;
    }
    /* What one run may carry to the agent, checked before a VM starts. */
    if (total > MAX_SOURCE_BYTES)
        fail_infra("FILEs: %zu KiB in all, more than the %u MiB a run takes",
                   total >> 10, MAX_SOURCE_BYTES >> 20);
    if (cfg->stdin_path)
        job->stdin_data = read_file("--stdin", cfg->stdin_path, MAX_STDIN_BYTES,
                                    &job->stdin_len);
    /* One RUN: the build under --build-timeout, then the program under
     * --timeout; the other limits are the agent's defaults for each. */
    job->req = (struct agent_request){
        .files = job->files,
        .nfiles = cfg->nfiles,
        .stdin_data = job->stdin_data,
        .stdin_len = job->stdin_len,
        .limits = {.wall_ms = run_s * 1000},
        .has_build_limits = true,
        .build_limits = {.wall_ms = build_s * 1000},
    };
    job->exec_cfg = (struct agent_exec_config){
        .req = &job->req,
        .json = json,
        .expect = job->expect,
        .shutdown_grace_ms = 1000,
    };
    /* The whole VM's watchdog. */
    cfg->timeout_s = build_s + run_s + WATCHDOG_SLACK_S;
    return job;
}

int cli_job_attach(struct cli_job *job, struct vm *vm, struct agent_channel *ch,
                   char *err, size_t err_len)
{
    if (job->kind == JOB_API)
        return api_server_attach(&job->api, vm, ch, &job->api_cfg, err,
                                 err_len);
    return agent_exec_attach(&job->exec, vm, ch, &job->exec_cfg, err, err_len);
}

void cli_job_snapshot(struct cli_job *job, bool resumed, bool take)
{
    if (job->kind == JOB_API) {
        job->api_cfg.resumed = resumed;
        job->api_cfg.pause_at_ready = take;
        /* With a snapshot, each submission gets a VM restored from it. */
        job->api_cfg.fresh_vms = resumed || take;
        return;
    }
    job->exec_cfg.resumed = resumed;
    job->exec_cfg.pause_at_ready = take;
}

int cli_job_go_on(struct cli_job *job, char *err, size_t err_len)
{
    if (job->api) {
        api_server_go_on(job->api);
        return 0;
    }
    return agent_exec_go_on(job->exec, err, err_len);
}

bool cli_job_paused(const struct cli_job *job)
{
    if (!job)
        return false;
    if (job->api)
        return api_server_paused(job->api);
    return job->exec && agent_exec_paused(job->exec);
}

void cli_job_no_fresh_vms(struct cli_job *job)
{
    if (job && job->kind == JOB_API) {
        job->api_cfg.fresh_vms = false;
        if (job->api)
            api_server_no_fresh_vms(job->api);
    }
}

bool cli_job_wants_vm(const struct cli_job *job)
{
    return job && job->api && api_server_wants_renewal(job->api);
}

void cli_job_detach(struct cli_job *job)
{
    api_server_detach(job->api);
}

int cli_job_reattach(struct cli_job *job, struct vm *vm,
                     struct agent_channel *ch, char *err, size_t err_len)
{
    return api_server_renewed(job->api, vm, ch, true, err, err_len);
}

void cli_job_no_vm(struct cli_job *job, const char *why)
{
    api_server_renewal_failed(job->api, why);
}

int cli_job_status(struct cli_job *job, enum vm_stop stop, int signo)
{
    if (job->api)
        return api_server_status(job->api, stop, signo);
    if (job->exec)
        return agent_exec_status(job->exec, stop, signo);
    return RUNVM_EXIT_INFRA;
}

/* A name or a number: the id in *id, the name's own group in *group. */
static int user_id(const char *s, uid_t *id, gid_t *group)
{
    struct passwd *pw = getpwnam(s);
    char *end;
    if (!pw) {
        unsigned long v = strtoul(s, &end, 10);
        if (!*s || *end || v > 0xfffffffeUL)
            return -1;
        pw = getpwuid((uid_t)v);
        *id = (uid_t)v;
        *group = pw ? pw->pw_gid : (gid_t)v;
        return 0;
    }
    *id = pw->pw_uid;
    *group = pw->pw_gid;
    return 0;
}

int cli_resolve_ids(const char *user, const char *group, uid_t *uid, gid_t *gid,
                    char *err, size_t err_len)
{
    gid_t own = getgid();
    *uid = getuid();
    if (user && user_id(user, uid, &own) < 0) {
        snprintf(err, err_len, "--user %s: no such user", user);
        return -1;
    }
    *gid = own;
    if (group) {
        struct group *gr = getgrnam(group);
        char *end;
        unsigned long v = strtoul(group, &end, 10);
        if (gr)
            *gid = gr->gr_gid;
        else if (*group && !*end && v <= 0xfffffffeUL)
            *gid = (gid_t)v;
        else {
            snprintf(err, err_len, "--group %s: no such group", group);
            return -1;
        }
    }
    return 0;
}

int cli_job_chown(struct cli_job *job, uid_t uid, gid_t gid, char *err,
                  size_t err_len)
{
    return job && job->api ? api_server_chown(job->api, uid, gid, err, err_len)
                           : 0;
}

void cli_job_free(struct cli_job *job)
{
    if (!job)
        return;
    agent_exec_free(job->exec);
    api_server_free(job->api);
    for (size_t i = 0; i < CLI_MAX_FILES; i++)
        free(job->sources[i]);
    free(job->stdin_data);
    catalog_free(&job->catalog);
    free(job);
}
