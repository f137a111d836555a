/* runvm's command line: one parser and one configuration for every mode
 * (the one-shot `--lang LANG FILE`, API mode, the low-level boot and
 * `--exec`). Pure: argv in, a configuration or a one-line error out; no
 * I/O and no exit, so every flag and every bad value is unit-tested.
 * docs/cli.md is the user's reference. */
#ifndef RUNVM_OPTIONS_H
#define RUNVM_OPTIONS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Bounds a user sees in --help and docs/cli.md. */
#define CLI_MAX_MEM_MIB             65536
#define CLI_MAX_TIMEOUT_S           (7ul * 24 * 3600)
#define CLI_DEFAULT_RUN_TIMEOUT_S   10
#define CLI_DEFAULT_BUILD_TIMEOUT_S 60
#define CLI_DEFAULT_BOOT_MEM_MIB    256
#define CLI_TAP_NAME_MAX            15 /* IFNAMSIZ less its NUL */
/* Every mode's kernel command line unless --cmdline replaces it. */
#define CLI_DEFAULT_CMDLINE "reboot=k panic=-1"

enum cli_mode {
    CLI_HELP,            /* --help: usage on stdout */
    CLI_VERSION,         /* --version */
    CLI_LIST_LANGS,      /* --list-langs */
    CLI_ONESHOT,         /* --lang LANG FILE */
    CLI_API,             /* --lang LANG --api-sock PATH */
    CLI_BOOT,            /* --kernel K --initrd I: boot, nothing else */
    CLI_EXEC,            /* --kernel K --initrd I --exec -- ARGV, or
                            --restore DIR --exec -- ARGV */
    CLI_SNAPSHOT,        /* --kernel K --initrd I --snapshot-out DIR */
    CLI_SNAPSHOT_LANG,   /* snapshot --lang LANG: the image's, in the store */
    CLI_SNAPSHOT_VERIFY, /* snapshot --verify DIR */
    CLI_SERVE,           /* serve --api-sock PATH: the daemon */
};

#define CLI_SERVE_MAX_LANGS 16
#define CLI_SERVE_MAX_VMS   256
/* FILEs of one snippet: the API's limit too (API_MAX_FILES). */
#define CLI_MAX_FILES 16

struct cli_config {
    enum cli_mode mode;
    const char *lang;
    /* The snippet (one-shot): files[0] is stored as the language's
     * source file, the others under their own base names. */
    char *const *files;
    size_t nfiles;
    const char *stdin_path; /* the program's stdin (one-shot) */
    const char *api_sock;
    /* --api-fd N: API mode on a listening socket it is handed (runvm
     * serve's children, socket activation); -1 when not given. */
    int api_fd;
    /* runvm serve: --langs (each NAME[@VERSION]; none: every language's
     * default), --max-vms, --queue, --warm (0: their defaults). */
    const char *serve_langs[CLI_SERVE_MAX_LANGS];
    size_t nserve_langs;
    unsigned long max_vms, queue, warm;
    const char *listen; /* serve --listen [ADDR:]PORT */
    bool warm_given;
    /* --user, --group: who runvm becomes once /dev/kvm, the tap and its
     * files are open (names or numbers, resolved by main). */
    const char *user, *group;
    /* --cgroup PARENT: the VM runs in a cgroup v2 of its own under it
     * (vmm/cgroup.h); serve passes it to every VM. */
    const char *cgroup;
    bool json;
    const char *kernel, *initrd; /* NULL with --lang: searched for */
    const char *cmdline;         /* the kernel command line */
    bool cmdline_given;          /* --cmdline replaced the default */
    unsigned long mem_mib;       /* 0 with --lang: from the image's size */
    unsigned long cpus;
    bool cpus_given; /* --cpus was on the command line */
    /* --timeout: the run step's limit with --lang and --exec, else the
     * whole VM's; 0 (not given) for a bare boot means none. */
    unsigned long timeout_s;
    unsigned long build_timeout_s;
    bool console;
    bool boot_timer;
    /* --vconsole stdio|unix:PATH */
    bool vconsole_stdio;
    const char *vconsole_path; /* the Unix socket's path */
    /* --net TAP[,mac=MAC]: the tap's name ("" for none) and the MAC, a
     * locally administered default when not given */
    char net_tap[CLI_TAP_NAME_MAX + 1];
    uint8_t net_mac[6];
    char **exec_argv; /* NULL-terminated, inside the caller's argv */
    /* --snapshot-out DIR: boot to the agent's HELLO and write a snapshot
     * there; --restore DIR: start from one instead of a kernel. */
    const char *snapshot_out, *restore;
    bool no_snapshot;   /* --lang: boot cold, neither use nor take one */
    const char *verify; /* snapshot --verify DIR */
};

/* Parses argv into cfg. 0, or -EINVAL with a one-line message (without
 * "runvm: ") in err: an unknown option, a missing or bad value, options
 * that do not go together, a missing FILE, --kernel or --initrd. */
int cli_parse_args(int argc, char **argv, struct cli_config *cfg, char *err,
                   size_t err_len) __attribute__((warn_unused_result));

/* Parses a decimal number in [min, max]: digits only (no sign, no spaces,
 * no suffix). 0, -EINVAL (not a number) or -ERANGE. */
int cli_parse_number(const char *s, unsigned long min, unsigned long max,
                     unsigned long *out) __attribute__((warn_unused_result));

/* Parses a MAC address "52:54:00:12:34:56" into mac. 0, or -EINVAL (also
 * for a multicast MAC, which is no station's). */
int cli_parse_mac(const char *text, uint8_t mac[6])
    __attribute__((warn_unused_result));

/* The part of path after its last '/': the name a FILE goes under. */
const char *cli_base_name(const char *path);

#endif
