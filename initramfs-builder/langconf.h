/* Language configuration files (initramfs-builder/langs/LANG.conf): one
 * KEY=VALUE per line, '#' comments; format in docs/lang-conf.md. */
#ifndef RUNVM_BUILDER_LANGCONF_H
#define RUNVM_BUILDER_LANGCONF_H

#include <stddef.h>

struct langconf {
    size_t n;
    char **keys;
    char **values;
};

/* Parses `path`; on a malformed line prints "path:LINE: ..." and returns
 * -EINVAL. Returns 0 or -errno. */
int langconf_load(struct langconf *lc, const char *path)
    __attribute__((warn_unused_result));

/* Parses the text of a config (same rules as langconf_load). */
int langconf_parse(struct langconf *lc, const char *text, const char *what)
    __attribute__((warn_unused_result));

/* Appends "KEY=VALUE" (a later line wins for single-valued keys). Returns
 * 0, -EINVAL for a malformed assignment, -ENOMEM. */
int langconf_set(struct langconf *lc, const char *assignment)
    __attribute__((warn_unused_result));

void langconf_free(struct langconf *lc);

/* The value of the last KEY= line, or NULL. */
const char *langconf_get(const struct langconf *lc, const char *key);

/* Collects the whitespace-separated words of every KEY= line into a
 * NULL-terminated, malloc'd vector (free with langconf_free_words). */
char **langconf_words(const struct langconf *lc, const char *key,
                      size_t *count);
void langconf_free_words(char **words);

/* True for keys only the image build uses (not copied into the image). */
int langconf_is_build_key(const char *key);

/* Renders the runtime part (every key that is not a build key, in file
 * order) as the text of /etc/runvm/lang.conf; malloc'd, NUL-terminated. */
char *langconf_render_runtime(const struct langconf *lc);

#endif
