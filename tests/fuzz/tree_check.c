#include "tests/fuzz/tree_check.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "tests/fuzz/check.h"

/* The children list of dir is consistent, and the removal walk's two
 * premises hold for each child. */
static void check_links(const struct tree_entry *dir, size_t *linked)
{
    const struct tree_entry *prev = NULL;
    for (const struct tree_entry *c = dir->children; c; c = c->next) {
        check_that(c->parent == dir && c->prev == prev,
                   "a children list is inconsistent");
        check_that(!dir->parent || dir->layer >= c->layer,
                   "a parent of an older layer than its child");
        for (const struct tree_entry *a = dir; a; a = a->parent)
            check_that(c->layer >= a->cleared_below,
                       "an entry of a layer its ancestor cleared");
        prev = c;
        (*linked)++;
    }
}

void tree_check(struct tree *t)
{
    size_t n, linked = 0;
    struct tree_entry **v = tree_sorted(t, &n);
    char norm[4096], parent[4096];
    if (!v)
        return;
    for (size_t i = 0; i < n; i++) {
        const char *p = v[i]->path;
        check_that(tree_normalize(p, norm, sizeof(norm)) == 0 &&
                       !strcmp(norm, p),
                   "an entry that is not a clean in-tree path");
        snprintf(parent, sizeof(parent), "%s", p);
        char *slash = strrchr(parent, '/');
        if (slash)
            *slash = '\0';
        else
            parent[0] = '\0';
        if (p[0]) {
            struct tree_entry *e = tree_lookup(t, parent);
            check_that(e && S_ISDIR(e->mode),
                       "an orphan: its parent is gone or not a directory");
            check_that(v[i]->parent == e, "linked under another directory");
        } else {
            check_that(!v[i]->parent, "the root has a parent");
        }
        check_that(!(v[i]->mode & (S_ISUID | S_ISGID)),
                   "a setuid or setgid entry: a way to root in the guest");
        check_links(v[i], &linked);
    }
    check_that(linked == n - 1, "the children lists miss or repeat entries");
    free(v);
}
