/* The language configuration the image builder writes into each image
 * (/etc/runvm/lang.conf, format in docs/lang-conf.md): which language and
 * toolchain the image holds, the source file name, and the build and run
 * argv. */
#ifndef RUNVM_LANGCONF_H
#define RUNVM_LANGCONF_H

#include <stdbool.h>
#include <stddef.h>

#define LANGCONF_MAX_ARGS 64
#define LANGCONF_MAX_ENV 64
#define LANGCONF_MAX_SIZE 65536

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

/* Parses the text of a lang.conf into lc (zeroed first). On error returns
 * -EINVAL or -ENOMEM and writes "line N: what" into err. */
int langconf_parse(const char *text, size_t len, struct langconf *lc,
                   char *err, size_t errlen) __attribute__((warn_unused_result));

/* Reads and parses path. -ENOENT when it does not exist, as parse
 * otherwise. */
int langconf_load(const char *path, struct langconf *lc, char *err,
                  size_t errlen) __attribute__((warn_unused_result));

void langconf_free(struct langconf *lc);

/* Splits s into words the way a shell would without expansions: blanks
 * separate words, '...' quotes literally, "..." quotes with \" and \\ escapes,
 * a backslash outside quotes escapes the next character. Fills argv[0..n-1]
 * with heap strings and argv[n] = NULL. Returns n, -EINVAL for an unclosed
 * quote, -E2BIG for more than max words, -ENOMEM. */
int langconf_split(const char *s, char **argv, int max);

#endif
