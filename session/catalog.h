/* The languages and versions runvm can run: what `make images` installed
 * in the image directories (docs/lang-conf.md). Each version is a config,
 * NAME@VERSION.conf, installed whether or not its image was built, and
 * perhaps an image beside it, NAME@VERSION.cpio.lz4 (or .cpio.gz, .cpio).
 * An image with neither a version in its name nor a config (NAME.cpio.gz,
 * built by hand) is a language of one unversioned image.
 *
 * A spec names one of them: NAME or an alias picks the language's default
 * version; NAME@VERSION picks the highest built version that VERSION
 * matches on dot boundaries (go@1.24 is 1.24.x, python@3 the highest 3.x;
 * go@1.2 is not 1.24), and "*" the highest built. Knows nothing of KVM. */
#ifndef RUNVM_CATALOG_H
#define RUNVM_CATALOG_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "protocol/msg.h"
#include "protocol/version.h"

#define CATALOG_NAME_MAX    LANG_NAME_MAX /* protocol/version.h */
#define CATALOG_VERSION_MAX LANG_VERSION_MAX
#define CATALOG_ALIASES_MAX 128

struct catalog_entry {
    char lang[CATALOG_NAME_MAX + 1];
    char version[CATALOG_VERSION_MAX + 1]; /* "" for an unversioned image */
    char aliases[CATALOG_ALIASES_MAX + 1]; /* space-separated names */
    bool is_default;                       /* the language's DEFAULT */
    char conf[PATH_MAX];                   /* the installed config, or "" */
    char image[PATH_MAX];                  /* the image, "" when not built */
};

struct catalog {
    size_t n;
    struct catalog_entry *e; /* sorted by language, then version */
};

/* Reads the configs and images in dirs (in order: the first dir holding a
 * version's config or image wins). Unreadable dirs and malformed configs
 * are skipped. 0 or -ENOMEM. */
int catalog_load(struct catalog *c, const char *const *dirs, size_t ndirs)
    __attribute__((warn_unused_result));
void catalog_free(struct catalog *c);

/* The entry spec picks, built. NULL when there is none, with why in why:
 * an unknown language or version (listing the versions there are) or one
 * whose image is not built (with the `make images` line that builds it). */
const struct catalog_entry *catalog_find(const struct catalog *c,
                                         const char *spec, char *why,
                                         size_t why_len);

/* Whether name is a whole word of e's ALIASES. */
bool catalog_has_alias(const struct catalog_entry *e, const char *name);

/* "go@1.24", or "go" for an unversioned image. */
const char *catalog_name(const struct catalog_entry *e, char *buf, size_t len);

/* The table `runvm --list-langs` prints: a header and one line per version.
 * Returns the number of versions. */
size_t catalog_print(const struct catalog *c, FILE *f);

/* The same facts as a JSON array of objects {"lang","version","aliases",
 * "default","built"} appended to b. */
void catalog_json(const struct catalog *c, struct msg_buf *b);

#endif
