#include "cli/snapstore.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <pwd.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

/* The store's directory, or -ENOENT where there is none (no home). */
static int store_dir(char *buf, size_t len)
{
    const char *s = getenv("RUNVM_SNAPSHOTS");
    const char *c = getenv("RUNVM_CACHE");
    const char *h = getenv("HOME");
    if (!h || !*h) {
        const struct passwd *pw = getpwuid(geteuid());
        h = pw ? pw->pw_dir : NULL;
    }
    int n;
    if (s && *s)
        n = snprintf(buf, len, "%s", s);
    else if (c && *c)
        n = snprintf(buf, len, "%s/snapshots", c);
    else if (h && *h)
        n = snprintf(buf, len, "%s/.cache/runvm/snapshots", h);
    else
        return -ENOENT;
    return n > 0 && (size_t)n < len ? 0 : -ENAMETOOLONG;
}

/* mkdir -p, the last one mode 0700; then the store must be a directory of
 * runvm's user that no one else can write (nobody else may plant a
 * snapshot there, or a link where runvm removes one). */
static int make_store(const char *path)
{
    char p[PATH_MAX];
    if (snprintf(p, sizeof(p), "%s", path) >= (int)sizeof(p))
        return -ENAMETOOLONG;
    for (char *c = p + 1; *c; c++) {
        if (*c != '/')
            continue;
        *c = '\0';
        if (mkdir(p, 0755) < 0 && errno != EEXIST)
            return -errno;
        *c = '/';
    }
    if (mkdir(p, 0700) < 0 && errno != EEXIST)
        return -errno;
    struct stat st;
    if (lstat(p, &st) < 0)
        return -errno;
    if (!S_ISDIR(st.st_mode) || st.st_uid != geteuid() || (st.st_mode & 022))
        return -EPERM;
    return 0;
}

/* Removes the temporary directories of runs of this snapshot that died
 * (NAME-KEY.tmp.PID whose PID is gone). */
static void remove_dead_tmps(const char *base, const char *name)
{
    DIR *d = opendir(base);
    if (!d)
        return;
    size_t n = strlen(name);
    const struct dirent *e;
    while ((e = readdir(d))) {
        if (strncmp(e->d_name, name, n) != 0 ||
            strncmp(e->d_name + n, ".tmp.", 5) != 0)
            continue;
        char *end;
        long pid = strtol(e->d_name + n + 5, &end, 10);
        if (*end || pid <= 0 || kill((pid_t)pid, 0) == 0 || errno != ESRCH)
            continue;
        char path[PATH_MAX];
        if (snprintf(path, sizeof(path), "%s/%s", base, e->d_name) <
            (int)sizeof(path))
            snapshot_remove(path);
    }
    closedir(d);
}

/* Whether a snapshot that failed with ret is itself at fault (corrupt,
 * another format or machine, a CPU this host lacks): then it is removed
 * and taken again; anything else (out of memory, a busy host) is not its
 * fault and it stays for the next run. */
static bool snapshot_at_fault(int ret)
{
    return ret == -EBADMSG || ret == -EPROTO || ret == -ENOEXEC ||
           ret == -EINVAL || ret == -ENOTSUP;
}

/* The image's name: its file name up to ".cpio" (go@1.19). */
static void image_name(const char *path, char *out, size_t len)
{
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    const char *end = strstr(base, ".cpio");
    size_t n = end ? (size_t)(end - base) : strlen(base);
    snprintf(out, len, "%.*s", (int)(n < 100 ? n : 100), base);
}

static void plan_take(struct snapstore *s, const struct arch_boot_files *files)
{
    char base[PATH_MAX], err[512];
    int ret = store_dir(base, sizeof(base));
    if (ret == 0)
        ret = make_store(base);
    if (ret == 0 && snprintf(s->tmp, sizeof(s->tmp), "%s.tmp.%ld", s->dir,
                             (long)getpid()) >= (int)sizeof(s->tmp))
        ret = -ENAMETOOLONG;
    if (ret < 0) {
        fprintf(stderr, "runvm: snapshots: %s: %s; booting without one\n", base,
                ret == -EPERM ? "not a directory of this user's that only "
                                "it can write"
                              : strerror(-ret));
        return;
    }
    remove_dead_tmps(base, s->name);
    if (snapshot_out_open(&s->out, s->tmp, files->kernel_fd, files->initrd_fd,
                          err, sizeof(err)) < 0) {
        fprintf(stderr, "runvm: %s; booting without one\n", err);
        snapshot_remove(s->tmp);
        return;
    }
    fprintf(stderr,
            "runvm: no snapshot of %s yet: taking one as this run boots "
            "(%s)\n",
            s->name, s->dir);
    s->take = true;
}

void snapstore_plan(struct snapstore *s, const struct arch_boot_files *files,
                    uint64_t mem_bytes, unsigned int cpus, const char *cmdline,
                    bool can_take)
{
    char base[PATH_MAX], image[128], err[512];
    memset(s, 0, sizeof(*s));
    s->snap.mem_fd = -1;
    s->out.state_fd = s->out.mem_fd = -1;
    image_name(files->initrd_path, image, sizeof(image));
    int ret = snapshot_key(s->name, sizeof(s->name), image, files->kernel_fd,
                           files->initrd_fd, mem_bytes, cpus, cmdline);
    if (ret == 0)
        ret = store_dir(base, sizeof(base));
    if (ret == 0 && snprintf(s->dir, sizeof(s->dir), "%s/%s", base, s->name) >=
                        (int)sizeof(s->dir))
        ret = -ENAMETOOLONG;
    if (ret < 0) {
        fprintf(stderr, "runvm: snapshots: %s; booting without one\n",
                ret == -ENOENT ? "no home directory for the store (set "
                                 "RUNVM_SNAPSHOTS)"
                               : strerror(-ret));
        return;
    }
    ret = snapshot_open(&s->snap, s->dir, err, sizeof(err));
    if (ret == 0) {
        s->restore = true;
        return;
    }
    if (!can_take) {
        if (ret != -ENOENT)
            fprintf(stderr, "runvm: %s; booting without it\n", err);
        return;
    }
    if (snapshot_at_fault(ret)) {
        fprintf(stderr, "runvm: %s; taking it again\n", err);
        snapshot_remove(s->dir);
    } else if (ret != -ENOENT) {
        fprintf(stderr, "runvm: %s; booting without it\n", err);
        return;
    }
    plan_take(s, files);
}

void snapstore_fallback(struct snapstore *s,
                        const struct arch_boot_files *files, int ret,
                        const char *err, bool can_take)
{
    snapshot_close(&s->snap);
    s->restore = false;
    if (!can_take || !snapshot_at_fault(ret)) {
        fprintf(stderr, "runvm: restoring %s: %s; booting without it\n", s->dir,
                err);
        return;
    }
    fprintf(stderr, "runvm: restoring %s: %s; taking it again\n", s->dir, err);
    snapshot_remove(s->dir);
    plan_take(s, files);
}

int snapstore_take(struct snapstore *s, struct machine *m)
{
    char err[512];
    int ret = snapshot_save(m, &s->out, err, sizeof(err));
    /* Kept open for API mode's fresh VMs (nothing can be opened now). */
    if (ret == 0 && snapshot_adopt(&s->snap, &s->out, err, sizeof(err)) == 0)
        s->restore = true;
    snapshot_out_close(&s->out);
    s->take = false;
    if (ret < 0) {
        fprintf(stderr, "runvm: %s; the run goes on without it\n", err);
        snapshot_remove(s->tmp);
        return -1;
    }
    /* Another run may have put one there first: theirs stays. */
    if (rename(s->tmp, s->dir) < 0) {
        int e = errno;
        snapshot_remove(s->tmp);
        if (e != EEXIST && e != ENOTEMPTY) {
            fprintf(stderr, "runvm: snapshot %s: %s\n", s->dir, strerror(e));
            return -1;
        }
    }
    return 0;
}

int snapstore_verify(const char *dir)
{
    char err[512] = "cannot load SHA-256 (OpenSSL)";
    struct snapshot snap;
    if (snap_digest_init() < 0 ||
        snapshot_open(&snap, dir, err, sizeof(err)) < 0) {
        fprintf(stderr, "runvm: %s\n", err);
        return 125;
    }
    const struct snap_header *h = &snap.h;
    int ret = snap_verify_memory(snap.mem_fd, h->mem_file_size, h->mem_digest);
    if (ret < 0) {
        fprintf(stderr, "runvm: snapshot %s: memory file: %s\n", dir,
                ret == -EBADMSG ? "its digest does not match: damaged"
                                : strerror(-ret));
        snapshot_close(&snap);
        return 125;
    }
    printf("%s: ok: %llu MiB of RAM, %u vCPU%s, devices %s, kernel sha256 "
           "%02x%02x%02x%02x..., image sha256 %02x%02x%02x%02x...\n",
           dir, (unsigned long long)(h->ram_size >> 20), h->nr_vcpus,
           h->nr_vcpus == 1 ? "" : "s", h->machine, h->kernel_digest[0],
           h->kernel_digest[1], h->kernel_digest[2], h->kernel_digest[3],
           h->image_digest[0], h->image_digest[1], h->image_digest[2],
           h->image_digest[3]);
    snapshot_close(&snap);
    return 0;
}

void snapstore_free(struct snapstore *s)
{
    snapshot_close(&s->snap);
    if (s->take) {
        snapshot_out_close(&s->out);
        snapshot_remove(s->tmp);
        s->take = false;
    }
}
