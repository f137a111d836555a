/* runvm-agent: the guest's /init, or a plain process on a host for tests.
 *
 *   runvm-agent                          as PID 1: mounts, the channel port
 *   runvm-agent --host --fd N            serve fd N (socketpair, pipe)
 *   runvm-agent --host --channel PATH    serve a tty or socket path
 *
 * Options: --channel PATH, --fd N, --lang-conf PATH (default
 * /etc/runvm/lang.conf), --work DIR, --tmp DIR (emptied for each fresh
 * RUN and the steps' TMPDIR; as PID 1 /tmp, on a host none unless given),
 * --cgroup DIR (host mode; a cgroup v2 directory whose subtree has memory
 * and pids enabled), --uid N, --gid N (step user, default 1000:1000; only
 * used when root). */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "guest-agent/agent.h"
#include "guest-agent/pid1.h"
#include "guest-agent/port.h"
#include "protocol/msg.h"

#define DEFAULT_LANG_CONF "/etc/runvm/lang.conf"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: runvm-agent [--host] [--fd N | --channel PATH]\n"
            "                   [--lang-conf PATH] [--work DIR] "
            "[--tmp DIR] [--cgroup DIR]\n"
            "                   [--uid N] [--gid N]\n"
            "As PID 1 (the guest's /init) it needs no options and serves "
            "the virtio-serial\nport named %s (or %s where there is "
            "none).\n"
            "On a host, --host with --fd or --channel serves that channel.\n",
            MSG_CHANNEL_PORT_NAME, PID1_CHANNEL);
}

/* Opens the channel; a tty is put in raw mode so every byte passes as is. */
static int open_channel(const char *path, bool wait_for_it)
{
    int fd = -1;
    for (int tries = 0; tries < 400; tries++) {
        fd = open(path, O_RDWR | O_NOCTTY | O_CLOEXEC);
        if (fd >= 0 || !wait_for_it || errno != ENOENT)
            break;
        struct timespec ts = {0, 5000000};
        nanosleep(&ts, NULL);
    }
    if (fd < 0) {
        int e = -errno;
        fprintf(stderr, "runvm-agent: channel %s: %s\n", path, strerror(errno));
        return e;
    }
    struct termios t;
    if (tcgetattr(fd, &t) == 0) {
        cfmakeraw(&t);
        if (tcsetattr(fd, TCSANOW, &t) < 0)
            fprintf(stderr, "runvm-agent: raw mode on %s: %s\n", path,
                    strerror(errno));
    }
    return fd;
}

static bool parse_id(const char *s, unsigned *out)
{
    char *end;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (errno || !*s || *end || v > 0x7fffffff)
        return false;
    *out = (unsigned)v;
    return true;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"host", no_argument, NULL, 'H'},
        {"fd", required_argument, NULL, 'f'},
        {"channel", required_argument, NULL, 'c'},
        {"lang-conf", required_argument, NULL, 'l'},
        {"work", required_argument, NULL, 'w'},
        {"tmp", required_argument, NULL, 't'},
        {"cgroup", required_argument, NULL, 'g'},
        {"uid", required_argument, NULL, 'u'},
        {"gid", required_argument, NULL, 'G'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    bool host = false;
    int fd = -1;
    unsigned uid = 1000, gid = 1000, num;
    const char *channel = NULL, *lang_conf = DEFAULT_LANG_CONF;
    const char *work = NULL, *tmp = NULL, *cgroup = NULL;
    bool pid1 = getpid() == 1;
    int c;

    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'H': host = true; break;
        case 'f':
            if (!parse_id(optarg, &num))
                goto bad;
            fd = (int)num;
            break;
        case 'c': channel = optarg; break;
        case 'l': lang_conf = optarg; break;
        case 'w': work = optarg; break;
        case 't': tmp = optarg; break;
        case 'g': cgroup = optarg; break;
        case 'u':
            if (!parse_id(optarg, &uid))
                goto bad;
            break;
        case 'G':
            if (!parse_id(optarg, &gid))
                goto bad;
            break;
        case 'h': usage(stdout); return 0;
        default: goto bad;
        }
    }
    if (optind != argc)
        goto bad;
    if (host)
        pid1 = false;
    if (!pid1 && !host) {
        fprintf(stderr, "runvm-agent: not PID 1; on a host run it with "
                        "--host --fd N or --host --channel PATH\n");
        return 2;
    }

    struct agent_config cfg = {
        .lang_conf = lang_conf,
        .uid = uid,
        .gid = gid,
        .switch_user = geteuid() == 0,
    };
    char tmpwork[] = "/tmp/runvm-agent.XXXXXX";
    bool made_work = false;

    if (pid1) {
        bool have_cgroup = pid1_setup() == 0;
        cfg.work_root = work ? work : PID1_WORK_ROOT;
        cfg.tmp_root = tmp ? tmp : PID1_TMP_ROOT;
        cfg.cgroup_root =
            cgroup ? cgroup : (have_cgroup ? PID1_CGROUP_ROOT : NULL);
        cfg.kill_uid = true;
        cfg.refresh = pid1_refresh;
        char port[64];
        if (fd < 0 && !channel) {
            /* The port runvm names; /dev/hvc0 from a runvm without one. */
            int pr = port_wait("/sys", MSG_CHANNEL_PORT_NAME, PID1_PORT_WAIT_MS,
                               port, sizeof(port));
            if (pr == 0)
                channel = port;
            else if (pr != -ENOENT)
                fprintf(stderr, "runvm-agent: port %s: %s; trying %s\n",
                        MSG_CHANNEL_PORT_NAME, strerror(-pr), PID1_CHANNEL);
        }
        fd =
            fd >= 0 ? fd : open_channel(channel ? channel : PID1_CHANNEL, true);
        if (fd < 0)
            pid1_end();
    } else {
        if ((fd < 0) == !channel) {
            fprintf(stderr, "runvm-agent: --host needs one of --fd N or "
                            "--channel PATH\n");
            return 2;
        }
        if (channel) {
            fd = open_channel(channel, false);
            if (fd < 0)
                return 1;
        }
        if (!work) {
            if (!mkdtemp(tmpwork)) {
                perror("runvm-agent: mkdtemp /tmp/runvm-agent.XXXXXX");
                return 1;
            }
            made_work = true;
            work = tmpwork;
        }
        /* The step user must reach its directory inside. */
        if (cfg.switch_user)
            chmod(work, 0711);
        cfg.work_root = work;
        /* Never the host's own /tmp: only a directory given to empty. */
        cfg.tmp_root = tmp;
        cfg.cgroup_root = cgroup;
    }
    cfg.channel_fd = fd;

    struct agent *a = agent_new(&cfg);
    if (!a) {
        if (pid1)
            pid1_end();
        return 1;
    }
    int r = agent_run(a);
    if (r < 0)
        agent_report_fatal(a, strerror(-r));
    agent_free(a);
    if (made_work)
        rmdir(tmpwork);
    if (pid1)
        pid1_end(); /* SHUTDOWN, a closed channel and errors all end here */
    return r < 0 ? 1 : 0;

bad:
    usage(stderr);
    return 2;
}
