#include "guest-agent/pid1.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <linux/random.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/stat.h>
#include <unistd.h>

static int do_mount(const char *src, const char *dir, const char *type,
                    unsigned long flags, const char *data)
{
    if (mkdir(dir, 0755) < 0 && errno != EEXIST)
        fprintf(stderr, "runvm-agent: mkdir %s: %s\n", dir, strerror(errno));
    if (mount(src, dir, type, flags, data) < 0 && errno != EBUSY) {
        int e = -errno;
        fprintf(stderr, "runvm-agent: mount %s on %s: %s\n", type, dir,
                strerror(errno));
        return e;
    }
    return 0;
}

static int write_str(const char *path, const char *s)
{
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    int r = write(fd, s, strlen(s)) < 0 ? -errno : 0;
    close(fd);
    return r;
}

/* The kernel starts init with fds 0-2 on /dev/console only when the
 * initramfs has that node; make sure they are open so no later fd (the
 * channel, a pipe) lands on 0-2. */
static void ensure_stdio(void)
{
    for (int fd = 0; fd < 3; fd++) {
        if (fcntl(fd, F_GETFD) >= 0)
            continue;
        int n = open("/dev/console", O_RDWR | O_NOCTTY);
        if (n < 0)
            n = open("/dev/null", O_RDWR);
        if (n >= 0 && n != fd) {
            dup2(n, fd);
            close(n);
        }
    }
}

int pid1_setup(void)
{
    const unsigned long nsd = MS_NOSUID | MS_NODEV;

    do_mount("devtmpfs", "/dev", "devtmpfs", MS_NOSUID, "mode=0755");
    ensure_stdio();
    do_mount("proc", "/proc", "proc", nsd | MS_NOEXEC, NULL);
    do_mount("sysfs", "/sys", "sysfs", nsd | MS_NOEXEC, NULL);
    do_mount("tmpfs", PID1_TMP_ROOT, "tmpfs", nsd,
             "mode=1777,size=" PID1_TMPFS_SIZE);
    do_mount("tmpfs", PID1_WORK_ROOT, "tmpfs", nsd,
             "mode=0755,size=" PID1_TMPFS_SIZE);
    setenv("PATH",
           "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:"
           "/bin",
           1);

    int r =
        do_mount("cgroup2", PID1_CGROUP_ROOT, "cgroup2", nsd | MS_NOEXEC, NULL);
    if (r < 0)
        return r;
    r = write_str(PID1_CGROUP_ROOT "/cgroup.subtree_control", "+memory +pids");
    if (r < 0) {
        fprintf(stderr,
                "runvm-agent: enabling memory and pids controllers: %s\n",
                strerror(-r));
        return r;
    }
    /* Optional: only CPU accounting comes from it, and cpu.stat has
     * usage_usec without it. */
    (void)write_str(PID1_CGROUP_ROOT "/cgroup.subtree_control", "+cpu");
    return 0;
}

void pid1_end(void)
{
    sync();
    reboot(RB_AUTOBOOT);
    /* Still here: nothing else to do but not exit (init exiting panics). */
    fprintf(stderr, "runvm-agent: reboot: %s\n", strerror(errno));
    for (;;)
        pause();
}

int pid1_refresh(const struct msg_announce *a, char *err, size_t err_len)
{
    if (a->entropy.len) {
        struct {
            struct rand_pool_info info;
            uint8_t buf[MSG_MAX_ENTROPY];
        } pool;
        if (a->entropy.len > sizeof(pool.buf))
            return -EINVAL;
        pool.info.entropy_count = (int)(a->entropy.len * 8);
        pool.info.buf_size = (int)a->entropy.len;
        memcpy(pool.buf, a->entropy.p, a->entropy.len);
        int fd = open("/dev/urandom", O_RDWR | O_CLOEXEC);
        if (fd < 0) {
            int ret = -errno;
            snprintf(err, err_len, "open /dev/urandom: %s", strerror(-ret));
            return ret;
        }
        const char *what = "RNDADDENTROPY";
        int ret = ioctl(fd, RNDADDENTROPY, &pool.info);
        if (ret == 0) {
            what = "RNDRESEEDCRNG";
            ret = ioctl(fd, RNDRESEEDCRNG);
        }
        ret = ret < 0 ? -errno : 0;
        close(fd);
        explicit_bzero(&pool, sizeof(pool));
        if (ret < 0) {
            snprintf(err, err_len, "%s: %s", what, strerror(-ret));
            return ret;
        }
    }
    if (a->has_realtime) {
        struct timespec ts = {
            .tv_sec = (time_t)(a->realtime_ns / 1000000000ULL),
            .tv_nsec = (long)(a->realtime_ns % 1000000000ULL),
        };
        if (clock_settime(CLOCK_REALTIME, &ts) < 0) {
            int ret = -errno;
            snprintf(err, err_len, "clock_settime: %s", strerror(-ret));
            return ret;
        }
    }
    return 0;
}
