/* Test /init for runvm's boot tests (static, PID 1, root). Mounts /proc,
 * marks the boot timer, prints
 *     RUNVM-TESTINIT-OK nproc=N memtotal_kb=M
 * on /dev/console, then reboots. The kernel passes unknown "name=value"
 * boot parameters to init as environment, so testinit_mode= on the
 * command line picks the ending:
 *     (unset)  reboot(RB_AUTOBOOT)  -- with reboot=k an i8042 reset
 *     halt     reboot(RB_HALT_SYSTEM): the CPUs halt forever
 *     panic    exit, so the kernel panics ("Attempted to kill init")
 * A triple fault is asked of the kernel with reboot=t on the command line
 * (user space cannot cause one). */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <termios.h>
#include <unistd.h>

#include "tests/guest/boot_mark.h"

/* Boot-timer marker bytes. */
#define MARK_INIT 0x01

static long memtotal_kb(void)
{
    FILE *f = fopen("/proc/meminfo", "r");
    if (!f)
        return -1;
    char line[128];
    long kb = -1;
    while (fgets(line, sizeof(line), f))
        if (sscanf(line, "MemTotal: %ld kB", &kb) == 1)
            break;
    fclose(f);
    return kb;
}

int main(void)
{
    int timer_errno = boot_mark(MARK_INIT);
    mkdir("/proc", 0555);
    mount("proc", "/proc", "proc", 0, NULL);
    int fd = open("/dev/console", O_WRONLY | O_NOCTTY);
    if (fd < 0) {
        /* No console (runvm without --console): still finish the run. */
        mkdir("/dev", 0755);
        mount("devtmpfs", "/dev", "devtmpfs", 0, NULL);
        fd = open("/dev/console", O_WRONLY | O_NOCTTY);
    }
    long nproc = sysconf(_SC_NPROCESSORS_ONLN);
    char msg[160];
    if (timer_errno && fd >= 0) {
        int m = snprintf(msg, sizeof(msg), "testinit: no boot-timer mark: %s\n",
                         strerror(timer_errno));
        if (m > 0) {
            ssize_t w = write(fd, msg, (size_t)m);
            (void)w;
        }
    }
    int n = snprintf(msg, sizeof(msg),
                     "RUNVM-TESTINIT-OK nproc=%ld memtotal_kb=%ld\n", nproc,
                     memtotal_kb());
    if (fd >= 0 && n > 0) {
        ssize_t w = write(fd, msg, (size_t)n);
        (void)w;
    }
    /* The tty holds what the UART has not sent yet; reboot() would drop
     * it (seen under load: "RUNVM-" and then the reset). */
    if (fd >= 0)
        tcdrain(fd);
    const char *mode = getenv("testinit_mode");
    if (mode && strcmp(mode, "panic") == 0)
        return 1;
    sync();
    if (mode && strcmp(mode, "halt") == 0)
        reboot(RB_HALT_SYSTEM);
    else
        reboot(RB_AUTOBOOT);
    for (;;)
        pause();
}
