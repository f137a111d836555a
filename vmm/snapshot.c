#include "vmm/snapshot.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

int snapshot_out_open(struct snapshot_out *out, const char *dir, int kernel_fd,
                      int initrd_fd, char *err, size_t err_len)
{
    *out = (struct snapshot_out){.state_fd = -1, .mem_fd = -1};
    int ret = snap_digest_init();
    if (ret == 0)
        ret = snap_digest_fd(kernel_fd, out->kernel_digest);
    if (ret == 0)
        ret = snap_digest_fd(initrd_fd, out->image_digest);
    if (ret < 0) {
        snprintf(err, err_len,
                 "snapshot: digest of the kernel or initramfs: %s",
                 strerror(-ret));
        return ret;
    }
    /* The memory file holds what the guest's RNG will produce until a
     * restore reseeds it: the snapshot is its user's alone. */
    if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
        ret = -errno;
        snprintf(err, err_len, "snapshot directory %s: %s", dir,
                 strerror(-ret));
        return ret;
    }
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0) {
        ret = -errno;
        snprintf(err, err_len, "snapshot directory %s: %s", dir,
                 strerror(-ret));
        return ret;
    }
    /* O_EXCL: a directory that already holds a snapshot is not written
     * over half-way. */
    out->state_fd = openat(dfd, SNAPSHOT_STATE_FILE,
                           O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (out->state_fd >= 0)
        out->mem_fd = openat(dfd, SNAPSHOT_MEMORY_FILE,
                             O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0400);
    ret = out->mem_fd < 0 ? -errno : 0;
    close(dfd);
    if (ret < 0) {
        snprintf(err, err_len, "snapshot directory %s: %s%s", dir,
                 strerror(-ret),
                 ret == -EEXIST ? " (it holds a snapshot already: remove it "
                                  "or name another)"
                                : "");
        snapshot_out_close(out);
    }
    return ret;
}

void snapshot_out_close(struct snapshot_out *out)
{
    state_w_free(&out->kept);
    if (out->state_fd >= 0)
        close(out->state_fd);
    if (out->mem_fd >= 0)
        close(out->mem_fd);
    out->state_fd = out->mem_fd = -1;
}

/* Sections: the VM, each vCPU, each device; their bytes in w[]. */
#define SNAPSHOT_MAX_PARTS (1 + VM_MAX_VCPUS + MACHINE_MAX_DEVICES)

int snapshot_save(struct machine *m, struct snapshot_out *out, char *err,
                  size_t err_len)
{
    struct vm *vm = &m->vm;
    struct state_w w[SNAPSHOT_MAX_PARTS];
    struct snap_section sec[SNAPSHOT_MAX_PARTS];
    unsigned int n = 0;
    for (unsigned int i = 0; i < SNAPSHOT_MAX_PARTS; i++)
        state_w_init(&w[i]);
    int ret = vm_quiesce(vm, err, err_len);
    if (ret == 0)
        ret = vm_save(vm, &w[0], &w[1], err, err_len);
    if (ret < 0)
        goto out;
    sec[n++] = (struct snap_section){SNAP_SEC_VM, 0, NULL, 0};
    for (unsigned int i = 0; i < vm->nr_vcpus; i++)
        sec[n++] = (struct snap_section){SNAP_SEC_VCPU, i, NULL, 0};
    for (unsigned int i = 0; i < m->nr_devs; i++) {
        ret = machine_save_device(m, i, &w[n], err, err_len);
        if (ret < 0)
            goto out;
        sec[n++] = (struct snap_section){SNAP_SEC_DEVICE, i, NULL, 0};
    }
    for (unsigned int i = 0; i < n; i++) {
        if (w[i].err) {
            ret = w[i].err;
            snprintf(err, err_len, "snapshot: %s", strerror(-ret));
            goto out;
        }
        sec[i].data = w[i].buf;
        sec[i].len = (uint32_t)w[i].len;
    }

    struct snap_header h = {
        .arch = snap_host_arch(),
        .ram_size = vm->mem.ram_size,
        .nr_vcpus = vm->nr_vcpus,
        .nr_regions = vm->mem.nr_regions,
    };
    const void *hva[GM_MAX_REGIONS];
    uint64_t sizes[GM_MAX_REGIONS], offset = 0;
    for (unsigned int i = 0; i < vm->mem.nr_regions; i++) {
        const struct gm_region *r = &vm->mem.regions[i];
        h.regions[i] = (struct snap_region){r->gpa, r->size, offset};
        hva[i] = r->hva;
        sizes[i] = r->size;
        offset += r->size;
    }
    h.mem_file_size = offset;
    memcpy(h.kernel_digest, out->kernel_digest, SNAP_DIGEST_LEN);
    memcpy(h.image_digest, out->image_digest, SNAP_DIGEST_LEN);
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    h.created_unix_ns =
        (uint64_t)now.tv_sec * 1000000000ULL + (uint64_t)now.tv_nsec;
    machine_describe(m, h.machine, sizeof(h.machine));

    ret = snap_write_memory(out->mem_fd, hva, sizes, vm->mem.nr_regions,
                            h.mem_digest);
    if (ret == 0 && fsync(out->mem_fd) < 0)
        ret = -errno;
    if (ret < 0) {
        snprintf(err, err_len, "snapshot: writing guest memory: %s",
                 strerror(-ret));
        goto out;
    }
    struct state_w *file = &out->kept;
    state_w_free(file);
    ret = snap_encode(&h, sec, n, file);
    if (ret == 0)
        ret = snap_write_all(out->state_fd, file->buf, file->len);
    if (ret == 0 && fsync(out->state_fd) < 0)
        ret = -errno;
    if (ret < 0)
        snprintf(err, err_len, "snapshot: writing its state: %s",
                 strerror(-ret));
out:
    for (unsigned int i = 0; i < SNAPSHOT_MAX_PARTS; i++)
        state_w_free(&w[i]);
    return ret;
}

static int check_opened(struct snapshot *s, const char *dir, char *err,
                        size_t err_len);

int snapshot_open(struct snapshot *s, const char *dir, char *err,
                  size_t err_len)
{
    memset(s, 0, sizeof(*s));
    s->mem_fd = -1;
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0) {
        int ret = -errno;
        snprintf(err, err_len, "snapshot %s: %s", dir, strerror(-ret));
        return ret;
    }
    int ret = 0;
    const char *what = SNAPSHOT_STATE_FILE;
    int fd = openat(dfd, SNAPSHOT_STATE_FILE, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        ret = -errno;
    else {
        ret = snap_read_file(fd, &s->buf, &s->len);
        close(fd);
    }
    if (ret == 0) {
        what = SNAPSHOT_MEMORY_FILE;
        s->mem_fd = openat(dfd, SNAPSHOT_MEMORY_FILE, O_RDONLY | O_CLOEXEC);
        if (s->mem_fd < 0)
            ret = -errno;
    }
    close(dfd);
    if (ret < 0) {
        snprintf(err, err_len, "snapshot %s: %s: %s", dir, what,
                 strerror(-ret));
        snapshot_close(s);
        return ret;
    }
    return check_opened(s, dir, err, err_len);
}

/* Decodes s->buf and checks it against s->mem_fd: the rest of
 * snapshot_open (and snapshot_adopt). */
static int check_opened(struct snapshot *s, const char *dir, char *err,
                        size_t err_len)
{
    int ret;
    char why[200];
    ret = snap_decode(s->buf, s->len, &s->h, s->sec, SNAP_MAX_SECTIONS,
                      &s->nsec, why, sizeof(why));
    if (ret < 0) {
        snprintf(err, err_len, "snapshot %s: %s", dir, why);
        snapshot_close(s);
        return ret;
    }
    /* A memory file shorter than its header says would fault the guest
     * (SIGBUS) where it is missing: refuse it now. */
    struct stat st;
    if (fstat(s->mem_fd, &st) < 0) {
        ret = -errno;
        snprintf(err, err_len, "snapshot %s: memory file: %s", dir,
                 strerror(-ret));
        snapshot_close(s);
        return ret;
    }
    if (!S_ISREG(st.st_mode) || (uint64_t)st.st_size != s->h.mem_file_size) {
        snprintf(err, err_len,
                 "snapshot %s: memory file is %llu bytes, its state says "
                 "%llu: truncated or not this snapshot's",
                 dir, (unsigned long long)st.st_size,
                 (unsigned long long)s->h.mem_file_size);
        snapshot_close(s);
        return -EBADMSG;
    }
    if (s->h.nr_vcpus > VM_MAX_VCPUS || s->h.nr_regions > GM_MAX_REGIONS) {
        snprintf(err, err_len,
                 "snapshot %s: %u vCPUs, %u RAM regions: "
                 "more than this runvm supports",
                 dir, s->h.nr_vcpus, s->h.nr_regions);
        snapshot_close(s);
        return -EBADMSG;
    }
    s->ram.fd = s->mem_fd;
    s->ram.nr_regions = s->h.nr_regions;
    for (unsigned int i = 0; i < s->h.nr_regions; i++)
        s->ram.offsets[i] = s->h.regions[i].offset;
    return 0;
}

int snapshot_adopt(struct snapshot *s, struct snapshot_out *out, char *err,
                   size_t err_len)
{
    memset(s, 0, sizeof(*s));
    s->mem_fd = -1;
    if (out->kept.err || !out->kept.len) {
        snprintf(err, err_len, "no snapshot was written");
        return -EINVAL;
    }
    s->buf = out->kept.buf;
    s->len = out->kept.len;
    out->kept = (struct state_w){0};
    s->mem_fd = fcntl(out->mem_fd, F_DUPFD_CLOEXEC, 0);
    if (s->mem_fd < 0) {
        int ret = -errno;
        snprintf(err, err_len, "snapshot memory file: %s", strerror(-ret));
        snapshot_close(s);
        return ret;
    }
    return check_opened(s, "just taken", err, err_len);
}

void snapshot_desc(const struct snapshot *s, struct machine_desc *d)
{
    d->mem_bytes = s->h.ram_size;
    d->cpus = s->h.nr_vcpus;
    d->ram_file = &s->ram;
}

static const struct snap_section *find(const struct snapshot *s, uint32_t kind,
                                       uint32_t index)
{
    for (unsigned int i = 0; i < s->nsec; i++)
        if (s->sec[i].kind == kind && s->sec[i].index == index)
            return &s->sec[i];
    return NULL;
}

int snapshot_restore(struct machine *m, const struct snapshot *s, char *err,
                     size_t err_len)
{
    struct vm *vm = &m->vm;
    char have[SNAP_MACHINE_LEN];
    machine_describe(m, have, sizeof(have));
    if (strcmp(have, s->h.machine) != 0) {
        snprintf(err, err_len,
                 "snapshot of a machine with devices \"%.100s\", this one "
                 "has \"%.100s\"",
                 s->h.machine, have);
        return -EINVAL;
    }
    /* The layout comes from the size; the file's regions must be it. */
    for (unsigned int i = 0; i < vm->mem.nr_regions; i++) {
        if (vm->mem.regions[i].gpa != s->h.regions[i].gpa ||
            vm->mem.regions[i].size != s->h.regions[i].size) {
            snprintf(err, err_len,
                     "snapshot RAM region %u is not where "
                     "this runvm puts it",
                     i);
            return -EBADMSG;
        }
    }
    const struct snap_section *vs = find(s, SNAP_SEC_VM, 0);
    struct state_r vmr, vcpur[VM_MAX_VCPUS];
    if (!vs) {
        snprintf(err, err_len, "snapshot has no VM state");
        return -EBADMSG;
    }
    state_r_init(&vmr, vs->data, vs->len);
    for (unsigned int i = 0; i < vm->nr_vcpus; i++) {
        const struct snap_section *c = find(s, SNAP_SEC_VCPU, i);
        if (!c) {
            snprintf(err, err_len, "snapshot has no state for vCPU %u", i);
            return -EBADMSG;
        }
        state_r_init(&vcpur[i], c->data, c->len);
    }
    int ret = vm_restore(vm, &vmr, vcpur, err, err_len);
    if (ret < 0)
        return ret;
    for (unsigned int i = 0; i < m->nr_devs; i++) {
        const struct snap_section *d = find(s, SNAP_SEC_DEVICE, i);
        if (!d) {
            snprintf(err, err_len, "snapshot has no state for %s",
                     m->devs[i].name);
            return -EBADMSG;
        }
        struct state_r r;
        state_r_init(&r, d->data, d->len);
        ret = machine_restore_device(m, i, &r, err, err_len);
        if (ret < 0)
            return ret;
    }
    return 0;
}

void snapshot_close(struct snapshot *s)
{
    free(s->buf);
    s->buf = NULL;
    if (s->mem_fd >= 0)
        close(s->mem_fd);
    s->mem_fd = -1;
}

/* What runvm makes of a VM beyond its files and options (its CPUID
 * policy, say): a change here makes every stored snapshot another. 2: no
 * asynchronous page faults. */
#define SNAPSHOT_KEY_EPOCH 2

int snapshot_key(char *out, size_t len, const char *name, int kernel_fd,
                 int initrd_fd, uint64_t mem_bytes, unsigned int cpus,
                 const char *cmdline)
{
    struct stat k, i;
    if (fstat(kernel_fd, &k) < 0 || fstat(initrd_fd, &i) < 0)
        return -errno;
    char text[4096];
    int n = snprintf(
        text, sizeof(text),
        "runvm snapshot %u/%u arch %u kernel %llu:%llu:%lld:%lld.%ld "
        "initrd %llu:%llu:%lld:%lld.%ld mem %llu cpus %u "
        "cmdline %s",
        SNAP_FORMAT_VERSION, SNAPSHOT_KEY_EPOCH, snap_host_arch(),
        (unsigned long long)k.st_dev, (unsigned long long)k.st_ino,
        (long long)k.st_size, (long long)k.st_mtim.tv_sec, k.st_mtim.tv_nsec,
        (unsigned long long)i.st_dev, (unsigned long long)i.st_ino,
        (long long)i.st_size, (long long)i.st_mtim.tv_sec, i.st_mtim.tv_nsec,
        (unsigned long long)mem_bytes, cpus, cmdline);
    if (n < 0 || (size_t)n >= sizeof(text))
        return -ENAMETOOLONG;
    uint8_t md[SNAP_DIGEST_LEN];
    int ret = snap_digest_bytes(text, (size_t)n, md);
    if (ret < 0)
        return ret;
    n = snprintf(out, len, "%s-", name);
    for (unsigned int b = 0; b < 8 && n > 0 && (size_t)n + 2 < len; b++)
        n += snprintf(out + n, len - (size_t)n, "%02x", md[b]);
    return n > 0 && (size_t)n < len && strlen(out) == strlen(name) + 17
               ? 0
               : -ENAMETOOLONG;
}

void snapshot_remove(const char *dir)
{
    /* By path: it may run sandboxed, where nothing is opened. */
    static const char *const files[] = {SNAPSHOT_STATE_FILE,
                                        SNAPSHOT_MEMORY_FILE};
    char path[4096];
    for (unsigned int i = 0; i < 2; i++)
        if (snprintf(path, sizeof(path), "%s/%s", dir, files[i]) <
            (int)sizeof(path))
            unlink(path);
    rmdir(dir);
}
