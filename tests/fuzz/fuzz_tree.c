/* libFuzzer target for the layer tree: every input is a sequence of layer
 * entries (the part of a hostile image the builder interprets itself;
 * libarchive parses the tar). Each line is "K NAME[\tTARGET]" with K one of
 * d f l h o (dir, file, symlink, hard link, other; upper case: with every
 * permission bit, setuid and setgid included) or '-' (next layer).
 * Afterwards every entry must be a normalized path whose parents are live
 * directories and none setuid or setgid, and the cpio writer must accept
 * the tree. */
#include <ctype.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "initramfs-builder/cpio.h"
#include "initramfs-builder/progress.h"
#include "initramfs-builder/tree.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static ssize_t data_read(void *opaque, void *buf, size_t len)
{
    const char **p = opaque;
    size_t n = strlen(*p) < len ? strlen(*p) : len;
    memcpy(buf, *p, n);
    *p += n;
    return (ssize_t)n;
}

/* The children list of `dir` is consistent, and the removal walk's two
 * premises hold: a parent is never of an older layer than its child, and
 * nothing below a directory cleared of lower layers is from one. */
static void check_links(const struct tree_entry *dir, size_t *linked)
{
    const struct tree_entry *prev = NULL;
    for (const struct tree_entry *c = dir->children; c; c = c->next) {
        if (c->parent != dir || c->prev != prev)
            abort();
        if (dir->parent && dir->layer < c->layer)
            abort();
        for (const struct tree_entry *a = dir; a; a = a->parent)
            if (c->layer < a->cleared_below)
                abort();
        prev = c;
        (*linked)++;
    }
}

static void check_tree(struct tree *t)
{
    size_t n, linked = 0;
    struct tree_entry **v = tree_sorted(t, &n);
    char norm[4096];
    if (!v)
        return;
    for (size_t i = 0; i < n; i++) {
        const char *p = v[i]->path;
        if (tree_normalize(p, norm, sizeof(norm)) != 0 || strcmp(norm, p))
            abort(); /* an entry that is not a clean in-tree path */
        if (v[i]->mode & (S_ISUID | S_ISGID))
            abort(); /* a way to root in the guest */
        char parent[4096];
        snprintf(parent, sizeof(parent), "%s", p);
        char *slash = strrchr(parent, '/');
        if (p[0] && !slash)
            parent[0] = '\0';
        else if (slash)
            *slash = '\0';
        if (p[0]) {
            struct tree_entry *e = tree_lookup(t, parent);
            if (!e || !S_ISDIR(e->mode))
                abort(); /* an orphan: its parent is gone or not a dir */
            if (v[i]->parent != e)
                abort(); /* linked under another directory */
        } else if (v[i]->parent) {
            abort();
        }
        check_links(v[i], &linked);
    }
    if (linked != n - 1)
        abort(); /* the children lists miss or repeat entries */
    free(v);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int quiet;
    if (!quiet) {
        progress_set_quiet(1);
        quiet = 1;
    }
    char *text = malloc(size + 1);
    struct tree t;
    if (!text)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    if (tree_init(&t, NULL) != 0) {
        free(text);
        return 0;
    }
    for (char *line = text, *next; line && *line; line = next) {
        next = strchr(line, '\n');
        if (next)
            *next++ = '\0';
        if (line[0] == '-') {
            tree_next_layer(&t);
            continue;
        }
        if (strlen(line) < 3)
            continue;
        char *name = line + 2, *target = strchr(name, '\t');
        if (target)
            *target++ = '\0';
        mode_t perm = isupper((unsigned char)line[0]) ? 07777 : 0755;
        struct tree_input in = {.name = name, .perm = perm, .target = target};
        switch (tolower((unsigned char)line[0])) {
        case 'd': in.kind = TK_DIR; break;
        case 'f': in.kind = TK_FILE; break;
        case 'l': in.kind = TK_SYMLINK; break;
        case 'h': in.kind = TK_HARDLINK; break;
        default: in.kind = TK_OTHER; break;
        }
        const char *payload = target ? target : "";
        if (tree_apply(&t, &in, data_read, &payload) != 0)
            break;
    }
    check_tree(&t);
    struct cpio_stats st;
    char out[64];
    snprintf(out, sizeof(out), "/tmp/fuzz_tree.%d.cpio", (int)getpid());
    if (cpio_write_tree(&t, out, CPIO_NONE, &st) == 0)
        unlink(out);
    tree_free(&t);
    free(text);
    return 0;
}
