#include "cli/cli.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdarg.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "session/event.h"
#include "api/server.h"
#include "session/agent_exec.h"
#include "cli/args.h"

#ifndef RUNVM_VERSION
#define RUNVM_VERSION "0.1.0"
#endif

#define DEFAULT_RUN_TIMEOUT_S 10
#define DEFAULT_BUILD_TIMEOUT_S 60
/* Boot and unpacking allowance in the whole-VM watchdog. */
#define WATCHDOG_SLACK_S 120
#define MAX_TIMEOUT_S 86400
#define MAX_SOURCE_BYTES (4u << 20)
#define MAX_STDIN_BYTES (4u << 20)
#define DEFAULT_CMDLINE "reboot=k panic=-1 quiet"
#define MAX_DIRS 3

enum job_kind { JOB_EXEC, JOB_ONESHOT, JOB_API };

struct cli_job {
    enum job_kind kind;
    struct agent_exec *exec;
    struct api_server *api;
    struct agent_exec_config exec_cfg;
    struct api_server_config api_cfg;
    struct agent_request req;
    struct agent_file file;
    char *source, *stdin_data;
    size_t source_len, stdin_len;
    const char *const *argv;
};

static const char *const empty_argv[] = {NULL};

static const char cli_usage[] =
    "usage: runvm --lang LANG FILE [options]     build and run FILE in a VM\n"
    "       runvm --lang LANG --api-sock PATH    serve the HTTP API\n"
    "       runvm --list-langs | --version | --help\n"
    "       runvm --kernel K --initrd I [--exec -- ARGV...]  (runvm "
    "--kernel x --help)\n"
    "\n"
    "  --stdin FILE         the program's standard input (default: none)\n"
    "  --timeout S          run-step time limit (default 10)\n"
    "  --build-timeout S    build-step time limit (default 60)\n"
    "  --mem MiB            guest RAM (default: from the image size)\n"
    "  --cpus N             vCPUs (default 1)\n"
    "  --json               print the event stream (NDJSON) instead of the\n"
    "                       program's output\n"
    "  --console            show the guest kernel's log on stdout\n"
    "  --api-sock PATH      API mode: HTTP/1.1 on a Unix socket (mode 0600)\n"
    "  --kernel PATH, --initrd PATH   use these instead of searching\n"
    "\n"
    "The kernel and images are searched for in the build tree next to the\n"
    "binary (BIN/../kernel/bzImage, BIN/../images/LANG.cpio.gz), then the\n"
    "installed prefix (BIN/../share/runvm/), then $RUNVM_KERNEL and\n"
    "$RUNVM_IMAGES.\n"
    "\n"
    "Exit status: the program's own; 124 a time limit stopped it; 125\n"
    "runvm, the VM or the agent failed; 126 the build failed; 128+N a\n"
    "signal N killed the program; 2 bad command line. See docs/cli.md.\n";

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
                     "%.3000s/kernel/bzImage", top);
            snprintf(s->image_dirs[s->ndirs++], PATH_MAX, "%.3000s/images",
                     top);
            snprintf(s->kernels[s->nkernels++], PATH_MAX,
                     "%.3000s/share/runvm/bzImage", top);
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

static const char *const image_suffixes[] = {".cpio.gz", ".cpio.lz4",
                                             ".cpio"};

/* Finds LANG's image: 1 with the path in out, 0 if none. */
static int find_image(const struct search *s, const char *lang, char *out)
{
    for (int d = 0; d < s->ndirs; d++)
        for (size_t i = 0; i < 3; i++) {
            snprintf(out, PATH_MAX, "%.3000s/%s%s", s->image_dirs[d], lang,
                     image_suffixes[i]);
            if (is_file(out))
                return 1;
        }
    return 0;
}

static bool lang_name_ok(const char *l)
{
    size_t n = strlen(l);
    if (n == 0 || n > 32)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((l[i] >= 'a' && l[i] <= 'z') || (l[i] >= '0' && l[i] <= '9') ||
              l[i] == '-' || l[i] == '_' || l[i] == '+'))
            return false;
    return true;
}

/* Prints every language with an image, one per line, each once. */
static int list_langs(const struct search *s, FILE *f, const char *indent)
{
    char seen[64][40];
    int nseen = 0;
    for (int d = 0; d < s->ndirs; d++) {
        DIR *dir = opendir(s->image_dirs[d]);
        if (!dir)
            continue;
        struct dirent *e;
        while ((e = readdir(dir)) && nseen < 64) {
            char name[40];
            const char *dot = strstr(e->d_name, ".cpio");
            size_t n = dot ? (size_t)(dot - e->d_name) : 0;
            if (!dot || n == 0 || n >= sizeof(name))
                continue;
            memcpy(name, e->d_name, n);
            name[n] = '\0';
            if (!lang_name_ok(name))
                continue;
            char path[PATH_MAX];
            if (!find_image(s, name, path))
                continue;
            bool dup = false;
            for (int i = 0; i < nseen; i++)
                dup |= strcmp(seen[i], name) == 0;
            if (dup)
                continue;
            strcpy(seen[nseen++], name);
            fprintf(f, "%s%-10s %s\n", indent, name, path);
        }
        closedir(dir);
    }
    return nseen;
}

static void image_hint(const struct search *s, const char *lang)
{
    fprintf(stderr, "runvm: no image for language \"%s\"; looked for "
            "%s.cpio.gz in:\n", lang, lang);
    for (int d = 0; d < s->ndirs; d++)
        fprintf(stderr, "  %s\n", s->image_dirs[d]);
    fprintf(stderr, "runvm: known languages:\n");
    if (list_langs(s, stderr, "  ") == 0)
        fprintf(stderr, "  (none: no images built yet)\n");
    fprintf(stderr, "runvm: build it with `make images IMAGE_LANGS=%s` in "
            "the source tree, or point RUNVM_IMAGES at a directory holding "
            "%s.cpio.gz\n", lang, lang);
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

/* ---- parsing ---------------------------------------------------------- */

static bool wants_cli(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--") == 0)
            return false;
        if (strcmp(argv[i], "--lang") == 0 ||
            strncmp(argv[i], "--lang=", 7) == 0 ||
            strcmp(argv[i], "--list-langs") == 0 ||
            strcmp(argv[i], "--version") == 0)
            return true;
    }
    /* A bare `runvm` or `runvm --help` gets the product's usage. */
    return argc == 1 ||
           (argc == 2 && (strcmp(argv[1], "--help") == 0 ||
                          strcmp(argv[1], "-h") == 0));
}

int cli_parse(int argc, char **argv, struct cli_boot *boot,
              struct cli_job **jobp)
{
    enum { O_LANG = 256, O_STDIN, O_TIMEOUT, O_BTIMEOUT, O_MEM, O_CPUS,
           O_JSON, O_CONSOLE, O_API, O_LIST, O_VERSION, O_KERNEL, O_INITRD };
    static const struct option opts[] = {
        {"lang", required_argument, NULL, O_LANG},
        {"stdin", required_argument, NULL, O_STDIN},
        {"timeout", required_argument, NULL, O_TIMEOUT},
        {"build-timeout", required_argument, NULL, O_BTIMEOUT},
        {"mem", required_argument, NULL, O_MEM},
        {"cpus", required_argument, NULL, O_CPUS},
        {"json", no_argument, NULL, O_JSON},
        {"console", no_argument, NULL, O_CONSOLE},
        {"api-sock", required_argument, NULL, O_API},
        {"list-langs", no_argument, NULL, O_LIST},
        {"version", no_argument, NULL, O_VERSION},
        {"kernel", required_argument, NULL, O_KERNEL},
        {"initrd", required_argument, NULL, O_INITRD},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    if (!wants_cli(argc, argv))
        return 0;
    const char *lang = NULL, *stdin_path = NULL, *api = NULL;
    const char *kernel = NULL, *initrd = NULL;
    unsigned long run_s = DEFAULT_RUN_TIMEOUT_S;
    unsigned long build_s = DEFAULT_BUILD_TIMEOUT_S;
    unsigned long mem = 0, cpus = 1;
    bool json = false, list = false, version = false;
    int console = 0;
    opterr = 0;
    optind = 1;
    for (;;) {
        int prev = optind;
        int c = getopt_long(argc, argv, ":h", opts, NULL);
        if (c == -1)
            break;
        switch (c) {
        case O_LANG: lang = optarg; break;
        case O_STDIN: stdin_path = optarg; break;
        case O_TIMEOUT:
            run_s = args_number("--timeout", optarg, 1, MAX_TIMEOUT_S);
            break;
        case O_BTIMEOUT:
            build_s = args_number("--build-timeout", optarg, 1, MAX_TIMEOUT_S);
            break;
        case O_MEM: mem = args_number("--mem", optarg, 128, 65536); break;
        case O_CPUS: cpus = args_number("--cpus", optarg, 1, 32); break;
        case O_JSON: json = true; break;
        case O_CONSOLE: console = 1; break;
        case O_API: api = optarg; break;
        case O_LIST: list = true; break;
        case O_VERSION: version = true; break;
        case O_KERNEL: kernel = optarg; break;
        case O_INITRD: initrd = optarg; break;
        case 'h':
            fputs(cli_usage, stdout);
            exit(0);
        case ':':
            args_usage_error("%s needs a value", argv[optind - 1]);
        default:
            args_usage_error("unknown option %s",
                            argv[prev < argc ? prev : argc - 1]);
        }
    }
    if (version) {
        printf("runvm %s (agent protocol %d)\n", RUNVM_VERSION, MSG_VERSION);
        exit(0);
    }
    struct search s;
    search_init(&s);
    if (list) {
        if (list_langs(&s, stdout, "") == 0) {
            fprintf(stderr, "runvm: no language images found; build them "
                    "with `make images`\n");
            exit(RUNVM_EXIT_INFRA);
        }
        exit(0);
    }
    if (!lang) {
        fputs(cli_usage, stderr);
        exit(ARGS_EXIT_USAGE);
    }
    const char *file = optind < argc ? argv[optind] : NULL;
    if (optind + 1 < argc)
        args_usage_error("unexpected argument %s", argv[optind + 1]);
    if (api && (file || stdin_path || json))
        args_usage_error("--api-sock takes its programs from requests, not "
                        "FILE, --stdin or --json");
    if (!api && !file)
        args_usage_error("--lang %s needs a FILE to run (or --api-sock PATH)",
                        lang);
    if (!lang_name_ok(lang))
        args_usage_error("--lang %s: not a language name", lang);

    static char kernel_path[PATH_MAX], image_path[PATH_MAX];
    if (!kernel) {
        int i;
        for (i = 0; i < s.nkernels && !is_file(s.kernels[i]); i++)
            ;
        if (i == s.nkernels) {
            fprintf(stderr, "runvm: no guest kernel; looked for:\n");
            for (i = 0; i < s.nkernels; i++)
                fprintf(stderr, "  %s\n", s.kernels[i]);
            fail_infra("build it with `make kernel` in the source tree, or "
                       "set RUNVM_KERNEL to a bzImage");
        }
        snprintf(kernel_path, sizeof(kernel_path), "%s", s.kernels[i]);
        kernel = kernel_path;
    }
    if (!initrd) {
        if (!find_image(&s, lang, image_path))
            image_hint(&s, lang);
        initrd = image_path;
    }
    if (!mem) {
        /* The initramfs is held twice at boot (the archive, then the
         * unpacked tmpfs, gzip shrinks about 3x) plus room to build. */
        struct stat st;
        unsigned long long img = stat(initrd, &st) == 0
                                     ? (unsigned long long)st.st_size : 0;
        mem = (unsigned long)((img * 4) >> 20) + 512;
        if (mem > 16384)
            mem = 16384;
    }

    struct cli_job *job = calloc(1, sizeof(*job));
    if (!job)
        fail_infra("out of memory");
    *boot = (struct cli_boot){
        .kernel = kernel, .initrd = initrd, .cmdline = DEFAULT_CMDLINE,
        .mem_mib = mem, .cpus = cpus, .console = console,
    };
    if (api) {
        job->kind = JOB_API;
        job->api_cfg = (struct api_server_config){
            .sock_path = api, .lang = lang,
            .default_run_ms = run_s * 1000,
            .default_build_ms = build_s * 1000,
        };
        *jobp = job;
        return 1;
    }
    job->kind = JOB_ONESHOT;
    job->source = read_file("FILE", file, MAX_SOURCE_BYTES,
                            &job->source_len);
    if (stdin_path)
        job->stdin_data = read_file("--stdin", stdin_path, MAX_STDIN_BYTES,
                                    &job->stdin_len);
    /* No name: the agent writes it under the image's SOURCE. */
    job->file = (struct agent_file){.data = job->source,
                                    .len = job->source_len};
    /* One RUN: the build under --build-timeout, then the program under
     * --timeout; the other limits are the agent's defaults for each. */
    job->req = (struct agent_request){
        .files = &job->file, .nfiles = 1,
        .stdin_data = job->stdin_data, .stdin_len = job->stdin_len,
        .limits = {.wall_ms = run_s * 1000},
        .has_build_limits = true,
        .build_limits = {.wall_ms = build_s * 1000},
    };
    job->exec_cfg = (struct agent_exec_config){
        .req = &job->req, .json = json, .lang = lang,
        .shutdown_grace_ms = 1000,
    };
    boot->timeout_s = build_s + run_s + WATCHDOG_SLACK_S;
    *jobp = job;
    return 1;
}

struct cli_job *cli_exec_job(char **argv, unsigned long timeout_s)
{
    struct cli_job *job = calloc(1, sizeof(*job));
    if (!job)
        return NULL;
    job->kind = JOB_EXEC;
    job->argv = (const char *const *)argv;
    job->req = (struct agent_request){
        .build_argv = empty_argv, .run_argv = job->argv,
        /* A low-level tool: no output cap beyond the agent's maximum. */
        .limits = {.wall_ms = timeout_s * 1000, .max_output = 1ull << 40},
    };
    /* RUNVM_EXEC_REPEAT=N: the round-trip benchmark (docs/cli.md). */
    const char *repeat = getenv("RUNVM_EXEC_REPEAT");
    job->exec_cfg = (struct agent_exec_config){
        .req = &job->req, .shutdown_grace_ms = 1000,
        .repeat = repeat ? atoi(repeat) : 0,
    };
    if (job->exec_cfg.repeat > 100000)
        job->exec_cfg.repeat = 100000;
    return job;
}

int cli_job_attach(struct cli_job *job, struct vm *vm, char *err,
                   size_t err_len)
{
    if (job->kind == JOB_API)
        return api_server_attach(&job->api, vm, &job->api_cfg, err,
                                 err_len);
    return agent_exec_attach(&job->exec, vm, &job->exec_cfg, err, err_len);
}

int cli_job_status(struct cli_job *job, enum vm_stop stop, int vm_status)
{
    if (job->api)
        return api_server_status(job->api, stop, vm_status);
    if (job->exec)
        return agent_exec_status(job->exec, stop, vm_status);
    return RUNVM_EXIT_INFRA;
}

int cli_failure_status(const struct cli_job *job, int bare_status)
{
    return job ? RUNVM_EXIT_INFRA : bare_status;
}

void cli_job_free(struct cli_job *job)
{
    if (!job)
        return;
    agent_exec_free(job->exec);
    api_server_free(job->api);
    free(job->source);
    free(job->stdin_data);
    free(job);
}
