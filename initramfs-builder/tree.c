/* In-memory root filesystem tree: OCI layer semantics without touching the
 * host filesystem. See tree.h for the model; the OCI image spec's
 * "Changesets" and "Whiteouts" sections (image-spec layer.md) for the rules.
 */
#include "initramfs-builder/tree.h"

#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define WH_PREFIX ".wh."
#define WH_OPAQUE ".wh..wh..opq"
/* Same bound as Linux's MAXSYMLINKS. */
#define MAX_SYMLINK_FOLLOWS 40

/* Marks a deleted slot so probing continues past it. */
static struct tree_entry tombstone_entry;
#define TOMBSTONE (&tombstone_entry)

static uint64_t hash_path(const char *s)
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */
    while (*s) {
        h ^= (unsigned char)*s++;
        h *= 1099511628211ULL;
    }
    return h;
}

static int table_grow(struct tree *t)
{
    size_t n = t->nslots ? t->nslots * 2 : 1024;
    /* Growing when half full of live entries; otherwise a same-size rehash
     * just sweeps tombstones out. */
    if (t->nlive * 4 < t->nslots)
        n = t->nslots;
    struct tree_entry **slots = calloc(n, sizeof(*slots));
    if (!slots)
        return -ENOMEM;
    for (size_t i = 0; i < t->nslots; i++) {
        struct tree_entry *e = t->slots[i];
        if (!e || e == TOMBSTONE)
            continue;
        size_t j = hash_path(e->path) & (n - 1);
        while (slots[j])
            j = (j + 1) & (n - 1);
        slots[j] = e;
    }
    free(t->slots);
    t->slots = slots;
    t->nslots = n;
    t->nused = t->nlive;
    return 0;
}

/* Slot index holding `path`, or SIZE_MAX. */
static size_t table_find(const struct tree *t, const char *path)
{
    if (!t->nslots)
        return SIZE_MAX;
    size_t mask = t->nslots - 1;
    for (size_t j = hash_path(path) & mask;; j = (j + 1) & mask) {
        struct tree_entry *e = t->slots[j];
        if (!e)
            return SIZE_MAX;
        if (e != TOMBSTONE && strcmp(e->path, path) == 0)
            return j;
    }
}

struct tree_entry *tree_lookup(const struct tree *t, const char *path)
{
    size_t j = table_find(t, path);
    return j == SIZE_MAX ? NULL : t->slots[j];
}

static int table_insert(struct tree *t, struct tree_entry *e)
{
    if ((t->nused + 1) * 2 > t->nslots) {
        int err = table_grow(t);
        if (err)
            return err;
    }
    size_t mask = t->nslots - 1;
    size_t j = hash_path(e->path) & mask;
    while (t->slots[j] && t->slots[j] != TOMBSTONE)
        j = (j + 1) & mask;
    if (!t->slots[j])
        t->nused++;
    t->slots[j] = e;
    t->nlive++;
    return 0;
}

static void entry_free(struct tree_entry *e)
{
    if (e->content && --e->content->refs == 0)
        free(e->content);
    free(e->path);
    free(e->symlink);
    free(e);
}

/* Parent directory of a non-root path: the entry at its longest proper
 * prefix ending before a '/', or the root. */
static struct tree_entry *parent_of(const struct tree *t, const char *path)
{
    char dir[PATH_MAX];
    const char *slash = strrchr(path, '/');
    size_t n = slash ? (size_t)(slash - path) : 0;
    if (n >= sizeof(dir))
        return NULL;
    memcpy(dir, path, n);
    dir[n] = '\0';
    return tree_lookup(t, dir);
}

/* Adds `e` to the table and, unless it is the root, to its parent's
 * children; the parent must be a live directory (-ENOTDIR otherwise). */
static int entry_insert(struct tree *t, struct tree_entry *e)
{
    struct tree_entry *parent = NULL;
    if (t->max_entries && t->nlive >= t->max_entries) {
        t->cap_hit = TREE_CAP_ENTRIES;
        return -EDQUOT;
    }
    if (e->path[0] != '\0') {
        parent = parent_of(t, e->path);
        if (!parent || !S_ISDIR(parent->mode))
            return -ENOTDIR;
    }
    int err = table_insert(t, e);
    if (err)
        return err;
    e->parent = parent;
    if (parent) {
        e->next = parent->children;
        if (e->next)
            e->next->prev = e;
        parent->children = e;
    }
    return 0;
}

/* Unlinks and frees `e`, which must have no children left (an entry
 * never outlives its directory). */
static void entry_remove(struct tree *t, struct tree_entry *e)
{
    size_t mask = t->nslots - 1;
    size_t j = hash_path(e->path) & mask;
    while (t->slots[j] != e)
        j = (j + 1) & mask;
    if (e->prev)
        e->prev->next = e->next;
    else if (e->parent)
        e->parent->children = e->next;
    if (e->next)
        e->next->prev = e->prev;
    entry_free(e);
    t->slots[j] = TOMBSTONE;
    t->nlive--;
}

int tree_init(struct tree *t, const char *spool_dir)
{
    memset(t, 0, sizeof(*t));
    if (!spool_dir)
        spool_dir = getenv("TMPDIR");
    if (!spool_dir || !*spool_dir)
        spool_dir = "/tmp";
    t->spool_fd = open(spool_dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    if (t->spool_fd < 0) {
        char tmpl[PATH_MAX];
        if ((size_t)snprintf(tmpl, sizeof(tmpl), "%s/runvm-spool.XXXXXX",
                             spool_dir) >= sizeof(tmpl))
            return -ENAMETOOLONG;
        t->spool_fd = mkostemp(tmpl, O_CLOEXEC);
        if (t->spool_fd < 0)
            return -errno;
        unlink(tmpl);
    }
    t->layer = 1;
    struct tree_entry *root = calloc(1, sizeof(*root));
    if (!root || !(root->path = strdup(""))) {
        free(root);
        tree_free(t);
        return -ENOMEM;
    }
    root->mode = S_IFDIR | 0755;
    root->live = 1;
    int err = entry_insert(t, root);
    if (err) {
        entry_free(root);
        tree_free(t);
    }
    return err;
}

void tree_free(struct tree *t)
{
    for (size_t i = 0; i < t->nslots; i++)
        if (t->slots[i] && t->slots[i] != TOMBSTONE)
            entry_free(t->slots[i]);
    free(t->slots);
    if (t->spool_fd >= 0)
        close(t->spool_fd);
    memset(t, 0, sizeof(*t));
    t->spool_fd = -1;
}

void tree_next_layer(struct tree *t)
{
    t->layer++;
}

int tree_normalize(const char *name, char *out, size_t outlen)
{
    size_t len = 0;
    const char *p = name;
    if (outlen == 0)
        return -ENAMETOOLONG;
    while (*p) {
        while (*p == '/')
            p++;
        const char *end = strchrnul(p, '/');
        size_t n = (size_t)(end - p);
        if (n == 0 || (n == 1 && p[0] == '.')) {
            /* skip */
        } else if (n == 2 && p[0] == '.' && p[1] == '.') {
            if (len == 0)
                return -EPERM; /* would climb out of the root */
            while (len > 0 && out[len - 1] != '/')
                len--;
            if (len > 0)
                len--; /* the separator */
        } else {
            if (len + (len ? 1 : 0) + n + 1 > outlen)
                return -ENAMETOOLONG;
            if (len)
                out[len++] = '/';
            memcpy(out + len, p, n);
            len += n;
        }
        p = end;
    }
    out[len] = '\0';
    return 0;
}

/* Resolves a normalized path inside the tree, following symlinks in every
 * component but the last (and the last too when `follow_last`) the way a
 * chroot would: absolute targets restart at the tree root and ".." stops at
 * it, so no result lies outside. Writes a normalized path to `out`.
 * Returns 0, -ELOOP, -ENOTDIR (a parent is not a directory) or
 * -ENAMETOOLONG. */
static int resolve(const struct tree *t, const char *path, int follow_last,
                   char *out, size_t outlen)
{
    /* `rest` holds the components still to walk; symlink targets are
     * spliced in front of it. */
    char *rest = strdup(path);
    size_t cur = 0;
    int follows = 0, err = 0;
    if (!rest)
        return -ENOMEM;
    out[0] = '\0';
    char *p = rest;
    while (*p) {
        while (*p == '/')
            p++;
        if (!*p)
            break;
        char *end = strchrnul(p, '/');
        size_t n = (size_t)(end - p);
        int last = (*end == '\0');
        if (n == 1 && p[0] == '.') {
            p = end;
            continue;
        }
        if (n == 2 && p[0] == '.' && p[1] == '.') {
            while (cur > 0 && out[cur - 1] != '/')
                cur--;
            if (cur > 0)
                cur--;
            out[cur] = '\0';
            p = end;
            continue;
        }
        if (cur + 1 + n + 1 > outlen) {
            err = -ENAMETOOLONG;
            break;
        }
        size_t saved = cur;
        if (cur)
            out[cur++] = '/';
        memcpy(out + cur, p, n);
        cur += n;
        out[cur] = '\0';
        p = end;
        struct tree_entry *e = tree_lookup(t, out);
        if (!e)
            continue; /* missing: the caller creates parents */
        if (S_ISLNK(e->mode) && (!last || follow_last)) {
            if (++follows > MAX_SYMLINK_FOLLOWS) {
                err = -ELOOP;
                break;
            }
            size_t tlen = strlen(e->symlink), rlen = strlen(p);
            char *next = malloc(tlen + 1 + rlen + 1);
            if (!next) {
                err = -ENOMEM;
                break;
            }
            memcpy(next, e->symlink, tlen);
            next[tlen] = '/';
            memcpy(next + tlen + 1, p, rlen + 1);
            cur = e->symlink[0] == '/' ? 0 : saved;
            out[cur] = '\0';
            free(rest);
            rest = p = next;
            continue;
        }
        if (!last && !S_ISDIR(e->mode)) {
            err = -ENOTDIR;
            break;
        }
    }
    free(rest);
    return err;
}

static struct tree_entry *entry_new(const char *path, mode_t mode, uid_t uid,
                                    gid_t gid, unsigned layer)
{
    struct tree_entry *e = calloc(1, sizeof(*e));
    if (!e || !(e->path = strdup(path))) {
        free(e);
        return NULL;
    }
    e->mode = mode;
    e->uid = uid;
    e->gid = gid;
    e->layer = layer;
    e->live = 1;
    return e;
}

/* Makes sure every parent of the resolved `path` is a directory, creating
 * missing ones (0755, root) and stamping them with the current layer so a
 * whiteout later in the same layer keeps them. */
static int ensure_parents(struct tree *t, const char *path)
{
    char buf[PATH_MAX];
    size_t len = strlen(path);
    if (len >= sizeof(buf))
        return -ENAMETOOLONG;
    memcpy(buf, path, len + 1);
    for (char *s = buf; (s = strchr(s, '/')); s++) {
        *s = '\0';
        struct tree_entry *e = tree_lookup(t, buf);
        if (e && !S_ISDIR(e->mode))
            return -ENOTDIR;
        if (e) {
            e->layer = t->layer;
        } else {
            e = entry_new(buf, S_IFDIR | 0755, 0, 0, t->layer);
            if (!e)
                return -ENOMEM;
            int err = entry_insert(t, e);
            if (err) {
                entry_free(e);
                return err;
            }
        }
        *s = '/';
    }
    return 0;
}

/* Whether the subtree of directory `e` may still hold entries of layers
 * before `below`. */
static int may_hold_older(const struct tree_entry *e, unsigned below)
{
    return below == UINT_MAX || e->cleared_below < below;
}

/* After its children were visited: removes `e` when it was written before
 * layer `below` and nothing in it stayed; a directory that stays is marked
 * as cleared of layers before `below`. */
static void settle(struct tree *t, struct tree_entry *e, unsigned below)
{
    if (e->layer < below && !e->children && e->parent) {
        entry_remove(t, e);
        return;
    }
    if (below != UINT_MAX && S_ISDIR(e->mode) && e->cleared_below < below)
        e->cleared_below = below;
}

/* Removes the descendants of directory `dir` written before layer `below`
 * (all of them when `below` is UINT_MAX), children before their parents.
 * The walk visits the subtree only, and skips directories this layer's
 * whiteouts already cleared: an entry is written with its layer and its
 * parents stamped with it (ensure_parents), so nothing below a cleared
 * directory can be older. Each entry is thus removed once and visited at
 * most once a layer while it stays, whatever the number of markers. */
static void remove_descendants(struct tree *t, struct tree_entry *dir,
                               unsigned below)
{
    if (!may_hold_older(dir, below))
        return;
    struct tree_entry *e = dir->children;
    while (e) {
        t->removal_steps++;
        if (e->children && may_hold_older(e, below)) {
            e = e->children;
            continue;
        }
        /* Settle `e`, then every directory whose last child it was. */
        for (;;) {
            struct tree_entry *next = e->next, *up = e->parent;
            settle(t, e, below);
            if (next || up == dir) {
                e = next;
                break;
            }
            e = up;
        }
    }
    if (below != UINT_MAX && dir->cleared_below < below)
        dir->cleared_below = below;
}

/* Removes `path` and, for a directory, its subtree (entries of layers
 * before `below` only). */
static void remove_path(struct tree *t, const char *path, unsigned below)
{
    struct tree_entry *e = tree_lookup(t, path);
    if (!e)
        return;
    t->removal_steps++;
    if (S_ISDIR(e->mode))
        remove_descendants(t, e, below);
    settle(t, e, below);
}

static const char *base_name(const char *path)
{
    const char *s = strrchr(path, '/');
    return s ? s + 1 : path;
}

static int spool_data(struct tree *t, struct tree_content *c, tree_read_fn read,
                      void *opaque)
{
    char buf[65536];
    c->offset = t->spool_size;
    c->size = 0;
    if (!read)
        return 0;
    for (;;) {
        ssize_t n = read(opaque, buf, sizeof(buf));
        if (n < 0)
            return (int)n;
        if (n == 0)
            return 0;
        if (t->max_bytes && c->offset + c->size + (uint64_t)n > t->max_bytes) {
            t->cap_hit = TREE_CAP_BYTES;
            return -EDQUOT;
        }
        for (ssize_t done = 0; done < n;) {
            ssize_t w = pwrite(t->spool_fd, buf + done, (size_t)(n - done),
                               (off_t)(c->offset + c->size));
            if (w < 0) {
                if (errno == EINTR)
                    continue;
                return -errno;
            }
            done += w;
            c->size += (uint64_t)w;
        }
        t->spool_size = c->offset + c->size;
    }
}

/* Inserts `e` at its path, replacing what is there (a directory over a
 * directory only updates its attributes and keeps the children). Takes
 * `e` over: on failure it is freed. */
static int place(struct tree *t, struct tree_entry *e)
{
    int err = 0;
    struct tree_entry *old = tree_lookup(t, e->path);
    if (old) {
        if (S_ISDIR(old->mode) && S_ISDIR(e->mode)) {
            old->mode = e->mode;
            old->uid = e->uid;
            old->gid = e->gid;
            old->layer = e->layer;
            entry_free(e);
            return 0;
        }
        remove_path(t, e->path, UINT_MAX);
        if (tree_lookup(t, e->path)) /* the root: never replaced */
            err = -EPERM;
    }
    if (!err)
        err = entry_insert(t, e);
    if (err)
        entry_free(e);
    return err;
}

int tree_apply(struct tree *t, const struct tree_input *in, tree_read_fn read,
               void *opaque)
{
    char norm[PATH_MAX], path[PATH_MAX];
    int err = tree_normalize(in->name, norm, sizeof(norm));
    if (err == 0 && norm[0] == '\0')
        return 0; /* "./": the root's own attributes are not kept */
    if (err == 0)
        err = resolve(t, norm, 0, path, sizeof(path));
    if (err)
        goto unsafe;

    const char *base = base_name(path);
    if (strncmp(base, WH_PREFIX, strlen(WH_PREFIX)) == 0) {
        t->whiteouts++;
        size_t dlen = (size_t)(base - path);
        char dir[PATH_MAX];
        memcpy(dir, path, dlen);
        dir[dlen ? dlen - 1 : 0] = '\0';
        if (strcmp(base, WH_OPAQUE) == 0) {
            err = ensure_parents(t, path);
            if (err)
                goto unsafe;
            struct tree_entry *d = tree_lookup(t, dir);
            if (d) /* always: ensure_parents made it a directory */
                remove_descendants(t, d, t->layer);
            return 0;
        }
        const char *victim = base + strlen(WH_PREFIX);
        if (strncmp(victim, WH_PREFIX, strlen(WH_PREFIX)) == 0 || !*victim ||
            strcmp(victim, ".") == 0 || strcmp(victim, "..") == 0)
            return 0; /* other AUFS metadata: nothing to apply */
        char gone[PATH_MAX];
        memcpy(gone, path, dlen);
        strcpy(gone + dlen, victim);
        remove_path(t, gone, t->layer);
        return 0;
    }

    mode_t type;
    switch (in->kind) {
    case TK_DIR: type = S_IFDIR; break;
    case TK_FILE:
    case TK_HARDLINK: type = S_IFREG; break;
    case TK_SYMLINK: type = S_IFLNK; break;
    default: t->skipped_devices++; return 0;
    }

    struct tree_content *linked = NULL;
    if (in->kind == TK_HARDLINK) {
        char tnorm[PATH_MAX], tpath[PATH_MAX];
        if (!in->target ||
            tree_normalize(in->target, tnorm, sizeof(tnorm)) != 0 ||
            resolve(t, tnorm, 0, tpath, sizeof(tpath)) != 0)
            goto unsafe;
        struct tree_entry *src = tree_lookup(t, tpath);
        /* Only links to regular files already in the tree: a link to a
         * directory, a symlink or a later entry has no safe meaning. */
        if (!src || !S_ISREG(src->mode) || !src->content)
            goto unsafe;
        if (src == tree_lookup(t, path))
            return 0; /* a link to itself changes nothing */
        linked = src->content;
        type = S_IFREG;
    }
    if (in->kind == TK_SYMLINK && !in->target)
        goto unsafe;

    err = ensure_parents(t, path);
    if (err == -ENOTDIR || err == -ENAMETOOLONG)
        goto unsafe;
    if (err)
        return err;

    /* No setuid or setgid bit reaches the guest: snippets run there as an
     * unprivileged user, and a setuid-root su, mount or passwd from the
     * image would be their way to root. On a directory the bits give no
     * privilege, but nothing needs them either: none stays anywhere. The
     * sticky bit stays (/tmp). */
    mode_t perm = in->perm & 07777;
    int setid = (perm & (S_ISUID | S_ISGID)) != 0;
    perm &= ~(mode_t)(S_ISUID | S_ISGID);
    struct tree_entry *e =
        entry_new(path, type | perm, in->uid, in->gid, t->layer);
    if (!e)
        return -ENOMEM;
    if (in->kind == TK_SYMLINK && !(e->symlink = strdup(in->target))) {
        entry_free(e);
        return -ENOMEM;
    }
    if (linked) {
        e->content = linked;
        linked->refs++;
    } else if (type == S_IFREG) {
        e->content = calloc(1, sizeof(*e->content));
        if (!e->content) {
            entry_free(e);
            return -ENOMEM;
        }
        e->content->refs = 1;
        err = spool_data(t, e->content, read, opaque);
        if (err) {
            entry_free(e);
            return err;
        }
    }
    err = place(t, e);
    if (err == -EPERM || err == -ENOTDIR)
        goto unsafe;
    if (!err && setid)
        t->cleared_setid++;
    return err;

unsafe:
    if (err == -ENOMEM || err == -EDQUOT)
        return err;
    t->skipped_unsafe++;
    return 0;
}

struct mem_reader {
    const char *data;
    size_t len, pos;
};

static ssize_t mem_read(void *opaque, void *buf, size_t len)
{
    struct mem_reader *m = opaque;
    size_t n = m->len - m->pos < len ? m->len - m->pos : len;
    memcpy(buf, m->data + m->pos, n);
    m->pos += n;
    return (ssize_t)n;
}

int tree_put_file(struct tree *t, const char *path, mode_t perm,
                  const void *data, size_t len)
{
    struct mem_reader m = {data, len, 0};
    struct tree_input in = {.name = path, .kind = TK_FILE, .perm = perm};
    unsigned long before = t->skipped_unsafe;
    int err = tree_apply(t, &in, mem_read, &m);
    if (err == 0 && t->skipped_unsafe != before) {
        t->skipped_unsafe = before;
        return -EINVAL;
    }
    return err;
}

unsigned long tree_drop_globs(struct tree *t, char *const *globs, size_t nglobs)
{
    unsigned long before = t->nlive;
    char full[PATH_MAX + 1];
    for (size_t i = 0; i < t->nslots; i++) {
        struct tree_entry *e = t->slots[i];
        if (!e || e == TOMBSTONE || !e->path[0])
            continue;
        snprintf(full, sizeof(full), "/%s", e->path);
        for (size_t g = 0; g < nglobs; g++) {
            if (fnmatch(globs[g], full, 0) != 0)
                continue;
            if (S_ISDIR(e->mode))
                remove_descendants(t, e, UINT_MAX);
            entry_remove(t, e);
            break;
        }
    }
    return before - t->nlive;
}

static int cmp_entry(const void *a, const void *b)
{
    const struct tree_entry *x = *(struct tree_entry *const *)a;
    const struct tree_entry *y = *(struct tree_entry *const *)b;
    return strcmp(x->path, y->path);
}

struct tree_entry **tree_sorted(const struct tree *t, size_t *count)
{
    struct tree_entry **v = malloc((t->nlive ? t->nlive : 1) * sizeof(*v));
    size_t n = 0;
    if (!v)
        return NULL;
    for (size_t i = 0; i < t->nslots; i++)
        if (t->slots[i] && t->slots[i] != TOMBSTONE)
            v[n++] = t->slots[i];
    qsort(v, n, sizeof(*v), cmp_entry);
    *count = n;
    return v;
}

int tree_read_content(const struct tree *t, const struct tree_content *c,
                      uint64_t offset, void *buf, size_t len)
{
    if (offset > c->size || len > c->size - offset)
        return -EINVAL;
    size_t done = 0;
    while (done < len) {
        ssize_t n = pread(t->spool_fd, (char *)buf + done, len - done,
                          (off_t)(c->offset + offset + done));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return n < 0 ? -errno : -EIO;
        done += (size_t)n;
    }
    return 0;
}
