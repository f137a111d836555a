#include "cli/options.h"

#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sys/un.h>

#include "arch/arch.h"
#include "protocol/msg.h"
#include "vmm/vm.h"
#include "session/catalog.h"

int cli_parse_number(const char *s, unsigned long min, unsigned long max,
                     unsigned long *out)
{
    if (*s < '0' || *s > '9')
        return -EINVAL; /* strtoul would take a sign or spaces */
    char *end;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (*end != '\0')
        return -EINVAL;
    if (errno == ERANGE || v < min || v > max)
        return -ERANGE;
    *out = v;
    return 0;
}

int cli_parse_mac(const char *text, uint8_t mac[6])
{
    unsigned int b[6];
    char end;
    if (sscanf(text, "%2x:%2x:%2x:%2x:%2x:%2x%c", &b[0], &b[1], &b[2], &b[3],
               &b[4], &b[5], &end) != 6)
        return -EINVAL;
    if (b[0] & 1)
        return -EINVAL; /* multicast bit: not a station address */
    for (int i = 0; i < 6; i++)
        mac[i] = (uint8_t)b[i];
    return 0;
}

static int fail(char *err, size_t err_len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail(char *err, size_t err_len, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, err_len, fmt, ap);
    va_end(ap);
    return -EINVAL;
}

static int number(const char *flag, const char *s, unsigned long min,
                  unsigned long max, unsigned long *out, char *err,
                  size_t err_len)
{
    int ret = cli_parse_number(s, min, max, out);
    if (ret == -EINVAL)
        return fail(err, err_len, "%s %s: not a number", flag, s);
    if (ret < 0)
        return fail(err, err_len, "%s %s: out of range (%lu to %lu)", flag, s,
                    min, max);
    return 0;
}

static int vconsole(struct cli_config *c, const char *spec, char *err,
                    size_t err_len)
{
    if (strcmp(spec, "stdio") == 0) {
        c->vconsole_stdio = true;
        c->vconsole_path = NULL;
    } else if (strncmp(spec, "unix:", 5) == 0 && spec[5] != '\0') {
        if (strlen(spec + 5) >= sizeof(((struct sockaddr_un *)0)->sun_path))
            return fail(err, err_len, "--vconsole %s: path too long", spec);
        c->vconsole_path = spec + 5;
        c->vconsole_stdio = false;
    } else {
        return fail(err, err_len, "--vconsole %s: want stdio or unix:PATH",
                    spec);
    }
    return 0;
}

static int net(struct cli_config *c, const char *spec, char *err,
               size_t err_len)
{
    /* A locally administered unicast default, as QEMU's 52:54:00:... */
    static const uint8_t default_mac[6] = {0x52, 0x54, 0x00, 0x12, 0x34, 0x56};
    const char *comma = strchr(spec, ',');
    size_t len = comma ? (size_t)(comma - spec) : strlen(spec);
    if (len == 0 || len > CLI_TAP_NAME_MAX)
        return fail(err, err_len,
                    "--net %s: want TAP[,mac=MAC], TAP a "
                    "tap device's name (1 to %d characters)",
                    spec, CLI_TAP_NAME_MAX);
    memcpy(c->net_tap, spec, len);
    c->net_tap[len] = '\0';
    memcpy(c->net_mac, default_mac, sizeof(default_mac));
    if (comma && (strncmp(comma + 1, "mac=", 4) != 0 ||
                  cli_parse_mac(comma + 5, c->net_mac) < 0))
        return fail(err, err_len,
                    "--net %s: want TAP[,mac=52:54:00:xx:xx:xx] "
                    "(a unicast MAC)",
                    spec);
    return 0;
}

enum {
    O_LANG = 256,
    O_STDIN,
    O_TIMEOUT,
    O_BTIMEOUT,
    O_MEM,
    O_CPUS,
    O_JSON,
    O_CONSOLE,
    O_API,
    O_LIST,
    O_VERSION,
    O_KERNEL,
    O_INITRD,
    O_CMDLINE,
    O_BOOT_TIMER,
    O_VCONSOLE,
    O_NET,
    O_EXEC,
    O_USER,
    O_GROUP,
    O_CGROUP,
    O_SNAPSHOT_OUT,
    O_RESTORE,
    O_NO_SNAPSHOT,
    O_VERIFY,
    O_API_FD,
    O_LANGS,
    O_MAX_VMS,
    O_QUEUE,
    O_WARM,
    O_LISTEN,
};

static const struct option longopts[] = {
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
    {"cmdline", required_argument, NULL, O_CMDLINE},
    {"boot-timer", no_argument, NULL, O_BOOT_TIMER},
    {"vconsole", required_argument, NULL, O_VCONSOLE},
    {"net", required_argument, NULL, O_NET},
    {"exec", no_argument, NULL, O_EXEC},
    {"user", required_argument, NULL, O_USER},
    {"group", required_argument, NULL, O_GROUP},
    {"cgroup", required_argument, NULL, O_CGROUP},
    {"snapshot-out", required_argument, NULL, O_SNAPSHOT_OUT},
    {"restore", required_argument, NULL, O_RESTORE},
    {"no-snapshot", no_argument, NULL, O_NO_SNAPSHOT},
    {"verify", required_argument, NULL, O_VERIFY},
    {"api-fd", required_argument, NULL, O_API_FD},
    {"langs", required_argument, NULL, O_LANGS},
    {"max-vms", required_argument, NULL, O_MAX_VMS},
    {"queue", required_argument, NULL, O_QUEUE},
    {"warm", required_argument, NULL, O_WARM},
    {"listen", required_argument, NULL, O_LISTEN},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

/* The options only a --lang command line takes, for a clear error. */
static int lang_only(const struct cli_config *c, char *err, size_t err_len)
{
    const char *flag = c->stdin_path        ? "--stdin"
                       : c->json            ? "--json"
                       : c->api_sock        ? "--api-sock"
                       : c->api_fd >= 0     ? "--api-fd"
                       : c->build_timeout_s ? "--build-timeout"
                       : c->no_snapshot     ? "--no-snapshot"
                                            : NULL;
    if (flag)
        return fail(err, err_len, "%s goes with --lang LANG", flag);
    return 0;
}

/* --lang's NAME[@VERSION], or why not in err. */
static bool lang_spec_ok(const char *lang, char *err, size_t err_len)
{
    struct lang_spec ls;
    if (lang_spec_parse(lang, strlen(lang), &ls))
        return true;
    fail(err, err_len,
         "--lang %s: not a language: NAME or NAME@VERSION "
         "(go, go@1.24, python@3)",
         lang);
    return false;
}

const char *cli_base_name(const char *path)
{
    const char *b = strrchr(path, '/');
    return b ? b + 1 : path;
}

/* FILE [FILE...]: the others than the first go under their base names,
 * which must be names the API would take and differ from each other (the
 * agent refuses one that is the source's name). */
static int check_files(char **args, int nargs, char *err, size_t err_len)
{
    if (nargs > CLI_MAX_FILES)
        return fail(err, err_len, "at most %d FILEs", CLI_MAX_FILES);
    for (int i = 1; i < nargs; i++) {
        const char *b = cli_base_name(args[i]);
        if (!msg_file_name_ok(b))
            return fail(err, err_len,
                        "%s: a FILE after the first keeps its name, which "
                        "must be letters, digits, . _ - (not starting "
                        "with . or -)",
                        args[i]);
        for (int k = 1; k < i; k++)
            if (strcmp(cli_base_name(args[k]), b) == 0)
                return fail(err, err_len, "two FILEs named %s", b);
    }
    return 0;
}

static int check_lang(struct cli_config *c, int nargs, char **args, bool exec,
                      char *err, size_t err_len)
{
    if (!lang_spec_ok(c->lang, err, err_len))
        return -EINVAL;
    if (exec)
        return fail(err, err_len,
                    "--exec runs ARGV in a bare initramfs; "
                    "it does not go with --lang");
    if (c->api_sock && c->api_fd >= 0)
        return fail(err, err_len, "--api-sock and --api-fd: pick one");
    if (c->api_sock || c->api_fd >= 0) {
        if (nargs || c->stdin_path || c->json)
            return fail(err, err_len,
                        "%s takes its programs from "
                        "requests, not FILE, --stdin or --json",
                        c->api_sock ? "--api-sock" : "--api-fd");
        c->mode = CLI_API;
    } else {
        if (!nargs)
            return fail(err, err_len,
                        "--lang %s needs a FILE to run (or "
                        "--api-sock PATH)",
                        c->lang);
        int ret = check_files(args, nargs, err, err_len);
        if (ret < 0)
            return ret;
        c->files = args;
        c->nfiles = (size_t)nargs;
        c->mode = CLI_ONESHOT;
    }
    if (!c->timeout_s)
        c->timeout_s = CLI_DEFAULT_RUN_TIMEOUT_S;
    if (!c->build_timeout_s)
        c->build_timeout_s = CLI_DEFAULT_BUILD_TIMEOUT_S;
    return 0;
}

static int check_boot(struct cli_config *c, int nargs, char **args, bool exec,
                      char *err, size_t err_len)
{
    int ret = lang_only(c, err, err_len);
    if (ret < 0)
        return ret;
    if (exec && !nargs)
        return fail(err, err_len,
                    "--exec needs the program to run: "
                    "--exec -- ARGV...");
    if (!exec && nargs)
        return fail(err, err_len, "unexpected argument %s", args[0]);
    if (c->restore && c->snapshot_out)
        return fail(err, err_len,
                    "--restore and --snapshot-out do not go together");
    if ((c->restore || c->snapshot_out) &&
        (c->vconsole_stdio || c->vconsole_path || c->net_tap[0]))
        return fail(err, err_len,
                    "snapshots of a machine with --vconsole or --net are "
                    "not supported yet");
    if (c->restore) {
        if (c->kernel || c->initrd || c->mem_mib || c->cpus_given)
            return fail(err, err_len,
                        "--restore %s: the snapshot holds the kernel, "
                        "memory and vCPUs; drop --kernel, --initrd, --mem "
                        "and --cpus",
                        c->restore);
        if (!exec)
            return fail(err, err_len,
                        "--restore %s needs --exec -- ARGV (the program to "
                        "run in the restored VM)",
                        c->restore);
        c->exec_argv = args;
        c->mode = CLI_EXEC;
        return 0;
    }
    if (c->snapshot_out && exec)
        return fail(err, err_len,
                    "--snapshot-out writes a snapshot of the VM at the "
                    "agent's HELLO and runs nothing; drop --exec");
    if (!c->kernel)
        return fail(err, err_len,
                    "--kernel KERNEL is required (or "
                    "--lang LANG FILE)");
    if (!c->initrd)
        return fail(err, err_len, "--initrd CPIO is required");
    if (!c->mem_mib)
        c->mem_mib = CLI_DEFAULT_BOOT_MEM_MIB;
    c->exec_argv = exec ? args : NULL;
    c->mode = exec ? CLI_EXEC : c->snapshot_out ? CLI_SNAPSHOT : CLI_BOOT;
    return 0;
}

/* `runvm snapshot --lang LANG` or `runvm snapshot --verify DIR`. */
static int check_snapshot_cmd(struct cli_config *c, int nargs, char **args,
                              bool exec, char *err, size_t err_len)
{
    if (nargs)
        return fail(err, err_len, "snapshot: unexpected argument %s", args[0]);
    if (c->verify) {
        if (c->lang || c->kernel || c->initrd || exec || c->restore ||
            c->snapshot_out)
            return fail(err, err_len,
                        "snapshot --verify DIR takes nothing "
                        "else");
        c->mode = CLI_SNAPSHOT_VERIFY;
        return 0;
    }
    if (!c->lang)
        return fail(err, err_len,
                    "snapshot needs --lang LANG (take the image's snapshot) "
                    "or --verify DIR");
    if (!lang_spec_ok(c->lang, err, err_len))
        return -EINVAL;
    if (exec || c->kernel || c->initrd || c->restore || c->snapshot_out ||
        c->api_sock || c->api_fd >= 0 || c->stdin_path || c->json ||
        c->no_snapshot || c->net_tap[0] || c->vconsole_stdio ||
        c->vconsole_path || c->user || c->group || c->cgroup)
        return fail(err, err_len,
                    "snapshot --lang LANG takes only --mem, --cpus, "
                    "--cmdline, --console, --timeout, --build-timeout and "
                    "--boot-timer");
    c->mode = CLI_SNAPSHOT_LANG;
    return 0;
}

/* --langs go,python@3.11: each a NAME[@VERSION], kept in c. */
static int serve_langs(struct cli_config *c, char *list, char *err,
                       size_t err_len)
{
    c->nserve_langs = 0;
    for (char *save = NULL, *l = strtok_r(list, ",", &save); l;
         l = strtok_r(NULL, ",", &save)) {
        struct lang_spec ls;
        if (!lang_spec_parse(l, strlen(l), &ls))
            return fail(err, err_len,
                        "--langs: %s: not a language: NAME or NAME@VERSION "
                        "(go, go@1.24, python@3)",
                        l);
        if (c->nserve_langs == CLI_SERVE_MAX_LANGS)
            return fail(err, err_len, "--langs: %d languages at most",
                        CLI_SERVE_MAX_LANGS);
        c->serve_langs[c->nserve_langs++] = l;
    }
    if (!c->nserve_langs)
        return fail(err, err_len, "--langs: name at least one language");
    return 0;
}

/* `runvm serve --api-sock PATH ...`. */
static int check_serve_cmd(struct cli_config *c, int nargs, char **args,
                           bool exec, char *err, size_t err_len)
{
    if (nargs)
        return fail(err, err_len, "serve: unexpected argument %s", args[0]);
    if (!c->api_sock)
        return fail(err, err_len, "serve needs --api-sock PATH");
    if (exec || c->lang || c->kernel || c->initrd || c->restore ||
        c->snapshot_out || c->api_fd >= 0 || c->stdin_path || c->json ||
        c->no_snapshot || c->net_tap[0] || c->vconsole_stdio ||
        c->vconsole_path || c->user || c->group || c->console ||
        c->cmdline_given || c->verify)
        return fail(err, err_len,
                    "serve takes --api-sock, --listen, --langs, --max-vms, "
                    "--queue, --warm, --mem, --cpus, --timeout, "
                    "--build-timeout, --cgroup and --boot-timer");
    if (!c->timeout_s)
        c->timeout_s = CLI_DEFAULT_RUN_TIMEOUT_S;
    if (!c->build_timeout_s)
        c->build_timeout_s = CLI_DEFAULT_BUILD_TIMEOUT_S;
    c->mode = CLI_SERVE;
    return 0;
}

int cli_parse_args(int argc, char **argv, struct cli_config *c, char *err,
                   size_t err_len)
{
    *c = (struct cli_config){
        .cmdline = CLI_DEFAULT_CMDLINE, .cpus = 1, .api_fd = -1};
    /* A leading "snapshot" or "serve" is a command of its own. */
    bool snapshot_cmd = argc > 1 && strcmp(argv[1], "snapshot") == 0;
    bool serve_cmd = argc > 1 && strcmp(argv[1], "serve") == 0;
    if (snapshot_cmd || serve_cmd) {
        argv++;
        argc--;
    }
    unsigned long min_mem = (unsigned long)(arch_min_mem() >> 20);
    bool exec = false;
    int ret = 0;
    opterr = 0;
    optind = 0; /* a full reset: the parser may run more than once */
    for (;;) {
        int prev = optind ? optind : 1;
        int o = getopt_long(argc, argv, ":h", longopts, NULL);
        if (o == -1)
            break;
        switch (o) {
        case O_LANG: c->lang = optarg; break;
        case O_STDIN: c->stdin_path = optarg; break;
        case O_API: c->api_sock = optarg; break;
        case O_JSON: c->json = true; break;
        case O_KERNEL: c->kernel = optarg; break;
        case O_INITRD: c->initrd = optarg; break;
        case O_CMDLINE:
            c->cmdline = optarg;
            c->cmdline_given = true;
            break;
        case O_MEM:
            ret = number("--mem", optarg, min_mem, CLI_MAX_MEM_MIB, &c->mem_mib,
                         err, err_len);
            break;
        case O_CPUS:
            /* What the arch's tables describe and the VMM runs. */
            ret = number("--cpus", optarg, 1,
                         arch_max_cpus() < VM_MAX_VCPUS ? arch_max_cpus()
                                                        : VM_MAX_VCPUS,
                         &c->cpus, err, err_len);
            c->cpus_given = true;
            break;
        case O_TIMEOUT:
            ret = number("--timeout", optarg, 1, CLI_MAX_TIMEOUT_S,
                         &c->timeout_s, err, err_len);
            break;
        case O_BTIMEOUT:
            ret = number("--build-timeout", optarg, 1, CLI_MAX_TIMEOUT_S,
                         &c->build_timeout_s, err, err_len);
            break;
        case O_CONSOLE: c->console = true; break;
        case O_BOOT_TIMER: c->boot_timer = true; break;
        case O_VCONSOLE: ret = vconsole(c, optarg, err, err_len); break;
        case O_NET: ret = net(c, optarg, err, err_len); break;
        case O_EXEC: exec = true; break;
        case O_USER: c->user = optarg; break;
        case O_GROUP: c->group = optarg; break;
        case O_CGROUP: c->cgroup = optarg; break;
        case O_SNAPSHOT_OUT: c->snapshot_out = optarg; break;
        case O_RESTORE: c->restore = optarg; break;
        case O_NO_SNAPSHOT: c->no_snapshot = true; break;
        case O_VERIFY: c->verify = optarg; break;
        case O_API_FD: {
            unsigned long fd;
            ret = number("--api-fd", optarg, 3, 65535, &fd, err, err_len);
            c->api_fd = (int)fd;
            break;
        }
        case O_LANGS: ret = serve_langs(c, optarg, err, err_len); break;
        case O_MAX_VMS:
            ret = number("--max-vms", optarg, 1, CLI_SERVE_MAX_VMS, &c->max_vms,
                         err, err_len);
            break;
        case O_QUEUE:
            ret = number("--queue", optarg, 1, 65536, &c->queue, err, err_len);
            break;
        case O_WARM:
            ret = number("--warm", optarg, 0, CLI_SERVE_MAX_VMS, &c->warm, err,
                         err_len);
            c->warm_given = true;
            break;
        case O_LISTEN: c->listen = optarg; break;
        case O_LIST: c->mode = CLI_LIST_LANGS; return 0;
        case O_VERSION: c->mode = CLI_VERSION; return 0;
        case 'h': c->mode = CLI_HELP; return 0;
        case ':':
            return fail(err, err_len, "%s needs a value", argv[optind - 1]);
        default:
            return fail(err, err_len, "unknown option %s",
                        argv[prev < argc ? prev : argc - 1]);
        }
        if (ret < 0)
            return ret;
    }
    int nargs = argc - optind;
    char **args = argv + optind;
    /* "--" ends the options; what follows is ARGV (--exec) or FILE. */
    if (c->console && c->vconsole_stdio)
        return fail(err, err_len,
                    "--console and --vconsole stdio both want "
                    "stdin and stdout; use --vconsole unix:PATH");
    if (exec && (c->vconsole_stdio || c->vconsole_path))
        return fail(err, err_len,
                    "--exec uses the virtio-console itself; "
                    "drop --vconsole");
    /* An arch without snapshots (ARCH_SNAPSHOTS 0: aarch64 so far) has
     * none of what rests on them; --lang boots cold there. */
    if (!ARCH_SNAPSHOTS &&
        (snapshot_cmd || serve_cmd || c->restore || c->snapshot_out))
        return fail(err, err_len,
                    "snapshots (runvm snapshot, runvm serve, --restore, "
                    "--snapshot-out) are not supported on this arch yet");
    if (snapshot_cmd)
        return check_snapshot_cmd(c, nargs, args, exec, err, err_len);
    if (serve_cmd)
        return check_serve_cmd(c, nargs, args, exec, err, err_len);
    if (c->nserve_langs || c->max_vms || c->queue || c->warm_given || c->listen)
        return fail(err, err_len,
                    "--langs, --max-vms, --queue, --warm and --listen go "
                    "with `runvm serve`");
    if (c->verify)
        return fail(err, err_len, "--verify goes with `runvm snapshot`");
    if (c->lang && (c->restore || c->snapshot_out))
        return fail(err, err_len,
                    "--lang finds and makes its snapshots itself; "
                    "--restore and --snapshot-out go with --exec and "
                    "--kernel");
    if (c->lang)
        return check_lang(c, nargs, args, exec, err, err_len);
    return check_boot(c, nargs, args, exec, err, err_len);
}
