/* Bulk transfer through the guest's /dev/hvc0 (virtio-console), checked
 * byte for byte against a deterministic pattern on the other side.
 *
 * As the guest's /init (PID 1), the kernel parameter hvctest=MODE:BYTES
 * picks what it does (the kernel hands unknown name=value parameters to
 * init as environment):
 *   g2h:N  write N pattern bytes to hvc0, then the line
 *          "HVC-RESULT g2h bytes=N ns=T ok=1"
 *   h2g:N  write "HVC-READY", read N bytes from hvc0, compare with the
 *          pattern, then write "HVC-RESULT h2g bytes=N ns=T ok=0|1"
 * and reboots. T is the guest's own time for the transfer, which it also
 * marks on runvm's boot timer (MARK_START, MARK_END): with --boot-timer
 * runvm prints its KVM exit counts at both, so a test can count the
 * transfer's exits.
 *
 * On the host:
 *   hvc_bulk gen N     writes N pattern bytes to stdout
 *   hvc_bulk check N   reads N bytes from stdin, compares with the pattern,
 *                      prints "CHECK ok bytes=N" or "CHECK bad at OFFSET"
 *                      and then copies the rest of stdin to stdout */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "tests/guest/boot_mark.h"

#define BLOCK 65536

/* Boot-timer marker bytes around the transfer. */
#define MARK_START 0x10
#define MARK_END   0x11

struct pattern {
    uint64_t state;
    uint8_t block[BLOCK];
    size_t pos; /* next byte of block to hand out; BLOCK: refill */
};

static void pattern_init(struct pattern *p)
{
    p->state = 0x9e3779b97f4a7c15ULL;
    p->pos = BLOCK;
}

/* xorshift64*, one 64-bit word per 8 bytes, in whole blocks so that the
 * stream does not depend on how callers slice it. */
static void pattern_refill(struct pattern *p)
{
    for (size_t i = 0; i < BLOCK; i += 8) {
        p->state ^= p->state >> 12;
        p->state ^= p->state << 25;
        p->state ^= p->state >> 27;
        uint64_t v = p->state * 0x2545f4914f6cdd1dULL;
        memcpy(p->block + i, &v, 8);
    }
    p->pos = 0;
}

/* Pointer to the next n (<= BLOCK) contiguous pattern bytes; *n may shrink
 * to what is left in the block. */
static const uint8_t *pattern_next(struct pattern *p, size_t *n)
{
    if (p->pos == BLOCK)
        pattern_refill(p);
    if (*n > BLOCK - p->pos)
        *n = BLOCK - p->pos;
    const uint8_t *r = p->block + p->pos;
    p->pos += *n;
    return r;
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static int write_all(int fd, const uint8_t *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, buf, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        buf += n;
        len -= (size_t)n;
    }
    return 0;
}

static int send_pattern(int fd, uint64_t total)
{
    struct pattern p;
    pattern_init(&p);
    while (total > 0) {
        size_t n = total < BLOCK ? (size_t)total : BLOCK;
        const uint8_t *b = pattern_next(&p, &n);
        if (write_all(fd, b, n) < 0)
            return -1;
        total -= n;
    }
    return 0;
}

static void say(const char *msg)
{
    int fd = open("/dev/console", O_WRONLY | O_NOCTTY);
    if (fd >= 0) {
        write_all(fd, (const uint8_t *)msg, strlen(msg));
        close(fd);
    }
}

/* Reads total bytes from fd, comparing. Returns -1 when all matched, else
 * the offset of the first difference (or of the early end). */
static long long check_pattern(int fd, uint64_t total)
{
    static uint8_t buf[BLOCK];
    struct pattern p;
    pattern_init(&p);
    uint64_t off = 0;
    long long bad = -1;
    while (off < total) {
        size_t want = total - off < BLOCK ? (size_t)(total - off) : BLOCK;
        ssize_t n = read(fd, buf, want);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return (long long)off;
        if (getenv("hvcdebug") && (off >> 16) != ((off + (uint64_t)n) >> 16)) {
            char msg[64];
            snprintf(msg, sizeof(msg), "hvc_bulk: %llu bytes\n",
                     (unsigned long long)(off + (uint64_t)n));
            say(msg);
        }
        for (size_t done = 0; done < (size_t)n;) {
            size_t k = (size_t)n - done;
            const uint8_t *e = pattern_next(&p, &k);
            if (bad < 0 && memcmp(buf + done, e, k) != 0)
                for (size_t i = 0; i < k; i++)
                    if (buf[done + i] != e[i]) {
                        bad = (long long)(off + done + i);
                        break;
                    }
            done += k;
        }
        off += (uint64_t)n;
    }
    return bad;
}

static int host_main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: hvc_bulk gen|check BYTES\n");
        return 2;
    }
    uint64_t n = strtoull(argv[2], NULL, 0);
    if (strcmp(argv[1], "gen") == 0)
        return send_pattern(STDOUT_FILENO, n) < 0 ? 1 : 0;
    if (strcmp(argv[1], "check") != 0)
        return 2;
    long long bad = check_pattern(STDIN_FILENO, n);
    if (bad >= 0)
        printf("CHECK bad at %lld\n", bad);
    else
        printf("CHECK ok bytes=%llu\n", (unsigned long long)n);
    fflush(stdout);
    static uint8_t rest[4096];
    ssize_t r;
    while ((r = read(STDIN_FILENO, rest, sizeof(rest))) > 0)
        if (write_all(STDOUT_FILENO, rest, (size_t)r) < 0)
            break;
    return bad >= 0;
}

static void mark(uint8_t value)
{
    (void)boot_mark(value);
}

static int guest_main(void)
{
    mount("proc", "/proc", "proc", 0, NULL);
    mount("devtmpfs", "/dev", "devtmpfs", 0, NULL);
    const char *mode = getenv("hvctest");
    char dir[8] = "";
    unsigned long long total = 0;
    if (!mode || sscanf(mode, "%3[a-z2]:%llu", dir, &total) != 2) {
        say("hvc_bulk: no hvctest=g2h:N or h2g:N parameter\n");
        goto out;
    }
    int fd = open("/dev/hvc0", O_RDWR | O_NOCTTY);
    if (fd < 0) {
        say("hvc_bulk: /dev/hvc0: cannot open\n");
        goto out;
    }
    struct termios t;
    if (tcgetattr(fd, &t) == 0) {
        cfmakeraw(&t); /* no echo, no newline translation */
        tcsetattr(fd, TCSANOW, &t);
    }
    char line[160];
    uint64_t t0 = now_ns();
    if (strcmp(dir, "g2h") == 0) {
        mark(MARK_START);
        int ok = send_pattern(fd, total) == 0;
        tcdrain(fd);
        mark(MARK_END);
        snprintf(line, sizeof(line),
                 "HVC-RESULT g2h bytes=%llu ns=%llu ok=%d\n", total,
                 (unsigned long long)(now_ns() - t0), ok);
    } else {
        /* The host sends only after this line: input that arrives while
         * hvc0 is still in canonical mode (hvc reads as soon as the tty
         * opens) would meet line editing and the 4 KiB line limit. */
        const char ready[] = "HVC-READY\n";
        write_all(fd, (const uint8_t *)ready, sizeof(ready) - 1);
        t0 = now_ns();
        mark(MARK_START);
        long long bad = check_pattern(fd, total);
        mark(MARK_END);
        snprintf(line, sizeof(line),
                 "HVC-RESULT h2g bytes=%llu ns=%llu ok=%d bad_at=%lld\n", total,
                 (unsigned long long)(now_ns() - t0), bad < 0, bad);
    }
    write_all(fd, (const uint8_t *)line, strlen(line));
    tcdrain(fd);
    say(line);
out:
    sync();
    reboot(RB_AUTOBOOT);
    return 0;
}

int main(int argc, char **argv)
{
    if (getpid() == 1)
        return guest_main();
    return host_main(argc, argv);
}
