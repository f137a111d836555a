/* The native peer of the exec round-trip benchmark: fork, exec and wait for
 * a program COUNT times, printing each round trip in milliseconds, one a
 * line. A C loop rather than a scripting language's subprocess module, so
 * the baseline is the kernel's own spawn cost and not an interpreter's.
 *
 * usage: bench_spawn COUNT PROGRAM [ARG...]
 * Exit status: 0, 1 if a run failed (its status is reported), 2 on usage. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

int main(int argc, char **argv)
{
    char *end;
    if (argc < 3) {
        fprintf(stderr, "usage: bench_spawn COUNT PROGRAM [ARG...]\n");
        return 2;
    }
    errno = 0;
    unsigned long count = strtoul(argv[1], &end, 10);
    if (errno || *end || count == 0 || count > 1000000) {
        fprintf(stderr, "bench_spawn: COUNT %s: want 1 to 1000000\n", argv[1]);
        return 2;
    }
    for (unsigned long i = 0; i < count; i++) {
        double t = now_ms();
        pid_t pid = fork();
        if (pid < 0) {
            fprintf(stderr, "bench_spawn: fork: %s\n", strerror(errno));
            return 1;
        }
        if (pid == 0) {
            execv(argv[2], argv + 2);
            fprintf(stderr, "bench_spawn: %s: %s\n", argv[2], strerror(errno));
            _exit(127);
        }
        int status;
        while (waitpid(pid, &status, 0) < 0) {
            if (errno != EINTR) {
                fprintf(stderr, "bench_spawn: waitpid: %s\n", strerror(errno));
                return 1;
            }
        }
        double ms = now_ms() - t;
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
            fprintf(stderr, "bench_spawn: run %lu of %s: status 0x%x\n", i + 1,
                    argv[2], status);
            return 1;
        }
        printf("%.3f\n", ms);
    }
    return fflush(stdout) == 0 ? 0 : 1;
}
