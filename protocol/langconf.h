/* lang.conf, the language configuration of an image (format in
 * docs/lang-conf.md). One grammar for all of its readers: the image
 * builder's language configs (initramfs-builder/langs/LANG/VERSION.conf),
 * which it reads, extends with --set and renders into the image; runvm's
 * catalogue of the versions installed beside the images
 * (session/catalog.c); and the image's /etc/runvm/lang.conf, which the
 * agent reads at boot.
 *
 * Two layers over one line scanner and one word splitter:
 *   langconf_kv_*  every KEY=VALUE line in file order, values unchecked
 *                  (the builder's view: build keys, DROP globs, rendering);
 *   langconf_*     the agent's typed view built on it: LANG, TOOLCHAIN,
 *                  SOURCE, the BUILD and RUN argv, ENV, values checked.
 * Errors come back as text ("line N: why"); nothing here prints. */
#ifndef RUNVM_LANGCONF_H
#define RUNVM_LANGCONF_H

#include <stdbool.h>
#include <stddef.h>

#define LANGCONF_MAX_ARGS 64
#define LANGCONF_MAX_ENV  64
#define LANGCONF_MAX_SIZE 65536

/* Splits s into words the way a shell would without expansions: blanks
 * separate words, '...' quotes literally, "..." quotes with \" and \\ escapes,
 * a backslash outside quotes escapes the next character. Fills argv[0..n-1]
 * with heap strings and argv[n] = NULL. Returns n, -EINVAL for an unclosed
 * quote, -E2BIG for more than max words, -ENOMEM. */
int langconf_split(const char *s, char **argv, int max);

/* ---- key/value layer ----------------------------------------------------- */

struct langconf_entry {
    char *key;
    char *value;   /* trailing blanks and CR trimmed */
    unsigned line; /* 1-based line of the text; 0: added by langconf_kv_set */
};

struct langconf_kv {
    size_t n, cap;
    struct langconf_entry *entries; /* in file order, repeats kept */
};

/* Parses the text of a lang.conf into kv (zeroed first): every KEY=VALUE
 * line, unknown keys included. On error returns -EINVAL or -ENOMEM, leaves
 * kv empty and writes "line N: why" into err. */
int langconf_kv_parse(struct langconf_kv *kv, const char *text, size_t len,
                      char *err, size_t errlen)
    __attribute__((warn_unused_result));

/* Reads and parses path (at most LANGCONF_MAX_SIZE bytes), each INCLUDE=FILE
 * line replaced by the entries of FILE, a file beside path (no '/'; nested
 * at most 4 deep, 16 files in all). Returns 0 or -errno with "path: why" in err
 * (-ENOENT when it does not exist). */
int langconf_kv_load(struct langconf_kv *kv, const char *path, char *err,
                     size_t errlen) __attribute__((warn_unused_result));

/* Appends the line "KEY=VALUE" as if it ended the file (a later line wins
 * for single-valued keys). Returns 0, -EINVAL when the key is not A-Z, 0-9,
 * _ or the assignment spans lines, -ENOMEM. */
int langconf_kv_set(struct langconf_kv *kv, const char *assignment)
    __attribute__((warn_unused_result));

/* The value of the last KEY= line, or NULL. */
const char *langconf_kv_get(const struct langconf_kv *kv, const char *key);

/* Splits every KEY= line with langconf_split's rules (no word limit) and
 * collects the words, in file order, into *words (NULL-terminated, malloc'd,
 * freed with langconf_free_words) and their number into *count. Returns 0,
 * -EINVAL with "line N: KEY: unclosed quote" in err, or -ENOMEM. */
int langconf_kv_words(const struct langconf_kv *kv, const char *key,
                      char ***words, size_t *count, char *err, size_t errlen)
    __attribute__((warn_unused_result));
void langconf_free_words(char **words);

/* True for keys only the image build and runvm's catalogue read (IMAGE,
 * PACKAGES, DROP, VERSION_CMD, WRITABLE, INCLUDE, VERSION, SUITE, ALIASES,
 * DEFAULT): they are not copied into the image. */
bool langconf_is_build_key(const char *key);

/* Renders every entry that is not a build key, in order, as the text of
 * the image's /etc/runvm/lang.conf; malloc'd, NUL-terminated, NULL when
 * out of memory. */
char *langconf_kv_render_runtime(const struct langconf_kv *kv);

void langconf_kv_free(struct langconf_kv *kv);

/* ---- the agent's typed view ---------------------------------------------- */

struct langconf {
    char *lang;      /* NULL when absent */
    char *toolchain; /* NULL when absent */
    char *source;    /* NULL when absent */
    bool has_build;
    char *build_argv[LANGCONF_MAX_ARGS + 1]; /* NULL-terminated */
    bool has_run;
    char *run_argv[LANGCONF_MAX_ARGS + 1];
    int nenv;
    char *env[LANGCONF_MAX_ENV + 1]; /* KEY=VALUE, NULL-terminated */
};

/* Builds the typed view of kv into lc (zeroed first): the last LANG,
 * TOOLCHAIN, SOURCE, BUILD, RUN win, ENV lines accumulate, unknown keys are
 * ignored. On error returns -EINVAL, -E2BIG or -ENOMEM, leaves lc empty and
 * writes "line N: why" into err. */
int langconf_from_kv(struct langconf *lc, const struct langconf_kv *kv,
                     char *err, size_t errlen)
    __attribute__((warn_unused_result));

/* Parses the text of a lang.conf into lc: langconf_kv_parse, then
 * langconf_from_kv. */
int langconf_parse(const char *text, size_t len, struct langconf *lc, char *err,
                   size_t errlen) __attribute__((warn_unused_result));

/* Reads and parses path. -ENOENT when it does not exist, as parse
 * otherwise; err is "path: why". */
int langconf_load(const char *path, struct langconf *lc, char *err,
                  size_t errlen) __attribute__((warn_unused_result));

void langconf_free(struct langconf *lc);

#endif
