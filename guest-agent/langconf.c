#include "guest-agent/langconf.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void free_argv(char **argv)
{
    for (int i = 0; argv[i]; i++) {
        free(argv[i]);
        argv[i] = NULL;
    }
}

int langconf_split(const char *s, char **argv, int max)
{
    size_t cap = strlen(s) + 1;
    int n = 0;
    int err = 0;

    argv[0] = NULL;
    for (;;) {
        while (*s == ' ' || *s == '\t')
            s++;
        if (!*s)
            break;
        if (n == max) {
            err = -E2BIG;
            goto fail;
        }
        char *w = malloc(cap), *o = w;
        if (!w) {
            err = -ENOMEM;
            goto fail;
        }
        argv[n++] = w;
        argv[n] = NULL;
        while (*s && *s != ' ' && *s != '\t') {
            if (*s == '\'') {
                const char *end = strchr(s + 1, '\'');
                if (!end) {
                    err = -EINVAL;
                    goto fail;
                }
                memcpy(o, s + 1, (size_t)(end - s - 1));
                o += end - s - 1;
                s = end + 1;
            } else if (*s == '"') {
                s++;
                while (*s && *s != '"') {
                    if (*s == '\\' && (s[1] == '"' || s[1] == '\\'))
                        s++;
                    *o++ = *s++;
                }
                if (*s != '"') {
                    err = -EINVAL;
                    goto fail;
                }
                s++;
            } else if (*s == '\\' && s[1]) {
                *o++ = s[1];
                s += 2;
            } else {
                *o++ = *s++;
            }
        }
        *o = '\0';
    }
    return n;
fail:
    free_argv(argv);
    return err;
}

static int set_string(char **dst, const char *v)
{
    char *s = strdup(v);
    if (!s)
        return -ENOMEM;
    free(*dst);
    *dst = s;
    return 0;
}

static int valid_key(const char *k)
{
    if (!*k)
        return 0;
    for (; *k; k++)
        if (!((*k >= 'A' && *k <= 'Z') || (*k >= '0' && *k <= '9') ||
              *k == '_'))
            return 0;
    return 1;
}

/* Applies one KEY=VALUE line. */
static int apply(struct langconf *lc, const char *key, const char *value,
                 const char **why)
{
    int r;

    if (!strcmp(key, "LANG"))
        return set_string(&lc->lang, value);
    if (!strcmp(key, "TOOLCHAIN"))
        return set_string(&lc->toolchain, value);
    if (!strcmp(key, "SOURCE")) {
        if (!*value || strchr(value, '/') || !strcmp(value, ".") ||
            !strcmp(value, "..")) {
            *why = "SOURCE must be a plain file name";
            return -EINVAL;
        }
        return set_string(&lc->source, value);
    }
    if (!strcmp(key, "BUILD") || !strcmp(key, "RUN")) {
        char **argv = key[0] == 'B' ? lc->build_argv : lc->run_argv;
        free_argv(argv);
        r = langconf_split(value, argv, LANGCONF_MAX_ARGS);
        if (r == -EINVAL)
            *why = "unclosed quote";
        else if (r == -E2BIG)
            *why = "too many words";
        if (r < 0)
            return r;
        if (key[0] == 'B') {
            lc->has_build = r > 0;
        } else {
            if (r == 0) {
                *why = "RUN needs a command";
                return -EINVAL;
            }
            lc->has_run = true;
        }
        return 0;
    }
    if (!strcmp(key, "ENV")) {
        const char *eq = strchr(value, '=');
        if (!eq || eq == value) {
            *why = "ENV wants NAME=VALUE";
            return -EINVAL;
        }
        if (lc->nenv == LANGCONF_MAX_ENV) {
            *why = "too many ENV lines";
            return -E2BIG;
        }
        char *s = strdup(value);
        if (!s)
            return -ENOMEM;
        lc->env[lc->nenv++] = s;
        lc->env[lc->nenv] = NULL;
        return 0;
    }
    /* Unknown keys are ignored so a newer image builder can add keys that
     * an older agent does not know. */
    return 0;
}

int langconf_parse(const char *text, size_t len, struct langconf *lc,
                   char *err, size_t errlen)
{
    memset(lc, 0, sizeof(*lc));
    if (len > LANGCONF_MAX_SIZE) {
        snprintf(err, errlen, "larger than %d bytes", LANGCONF_MAX_SIZE);
        return -EINVAL;
    }
    if (memchr(text, '\0', len)) {
        snprintf(err, errlen, "contains a NUL byte");
        return -EINVAL;
    }
    char *copy = malloc(len + 1);
    if (!copy)
        return -ENOMEM;
    memcpy(copy, text, len);
    copy[len] = '\0';

    int lineno = 0, r = 0;
    char *save = NULL;
    for (char *line = copy; line; line = save) {
        save = strchr(line, '\n');
        if (save)
            *save++ = '\0';
        lineno++;
        size_t l = strlen(line);
        if (l && line[l - 1] == '\r')
            line[--l] = '\0';
        while (*line == ' ' || *line == '\t')
            line++;
        if (!*line || *line == '#')
            continue;
        char *eq = strchr(line, '=');
        const char *why = NULL;
        if (!eq) {
            r = -EINVAL;
            why = "expected KEY=VALUE";
        } else {
            *eq = '\0';
            if (!valid_key(line)) {
                r = -EINVAL;
                why = "bad key (A-Z, 0-9, _)";
            } else {
                r = apply(lc, line, eq + 1, &why);
            }
        }
        if (r < 0) {
            snprintf(err, errlen, "line %d: %s", lineno,
                     why ? why : strerror(-r));
            break;
        }
    }
    free(copy);
    if (r < 0)
        langconf_free(lc);
    return r;
}

int langconf_load(const char *path, struct langconf *lc, char *err,
                  size_t errlen)
{
    memset(lc, 0, sizeof(*lc));
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return -errno;
    }
    char *buf = malloc(LANGCONF_MAX_SIZE + 1);
    if (!buf) {
        close(fd);
        return -ENOMEM;
    }
    size_t len = 0;
    for (;;) {
        ssize_t n = read(fd, buf + len, LANGCONF_MAX_SIZE + 1 - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            int e = -errno;
            snprintf(err, errlen, "%s: %s", path, strerror(errno));
            free(buf);
            close(fd);
            return e;
        }
        if (n == 0 || (len += (size_t)n) > LANGCONF_MAX_SIZE)
            break;
    }
    close(fd);
    char sub[200];
    int r = langconf_parse(buf, len, lc, sub, sizeof(sub));
    if (r < 0)
        snprintf(err, errlen, "%s: %s", path, sub);
    free(buf);
    return r;
}

void langconf_free(struct langconf *lc)
{
    free(lc->lang);
    free(lc->toolchain);
    free(lc->source);
    free_argv(lc->build_argv);
    free_argv(lc->run_argv);
    free_argv(lc->env);
    memset(lc, 0, sizeof(*lc));
}
