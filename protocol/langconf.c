#include "protocol/langconf.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- words --------------------------------------------------------------- */

static bool is_blank(char c)
{
    return c == ' ' || c == '\t';
}

/* Copies the next word of *sp into out (room for strlen(*sp) + 1 bytes) and
 * moves *sp past it. Returns 1 for a word, 0 at the end, -EINVAL for an
 * unclosed quote. The rules are docs/lang-conf.md's "Commands". */
static int next_word(const char **sp, char *out)
{
    const char *s = *sp;
    char *o = out;

    while (is_blank(*s))
        s++;
    if (!*s) {
        *sp = s;
        return 0;
    }
    while (*s && !is_blank(*s)) {
        if (*s == '\'') {
            const char *end = strchr(s + 1, '\'');
            if (!end)
                return -EINVAL;
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
            if (*s != '"')
                return -EINVAL;
            s++;
        } else if (*s == '\\' && s[1]) {
            *o++ = s[1];
            s += 2;
        } else {
            /* Includes a backslash that ends the value: kept literally. */
            *o++ = *s++;
        }
    }
    *o = '\0';
    *sp = s;
    return 1;
}

static void free_argv(char **argv)
{
    for (int i = 0; argv[i]; i++) {
        free(argv[i]);
        argv[i] = NULL;
    }
}

int langconf_split(const char *s, char **argv, int max)
{
    /* One scratch word as long as the whole value, copied out per word, so
     * many words cost their own length, not the value's each. */
    char *word = malloc(strlen(s) + 1);
    int n = 0, r;

    argv[0] = NULL;
    if (!word)
        return -ENOMEM;
    while ((r = next_word(&s, word)) > 0) {
        if (n == max) {
            r = -E2BIG;
            break;
        }
        argv[n] = strdup(word);
        if (!argv[n]) {
            r = -ENOMEM;
            break;
        }
        argv[++n] = NULL;
    }
    free(word);
    if (r < 0) {
        free_argv(argv);
        return r;
    }
    return n;
}

/* ---- key/value layer ----------------------------------------------------- */

static bool valid_key(const char *k, size_t len)
{
    if (!len)
        return false;
    for (size_t i = 0; i < len; i++)
        if (!((k[i] >= 'A' && k[i] <= 'Z') || (k[i] >= '0' && k[i] <= '9') ||
              k[i] == '_'))
            return false;
    return true;
}

static int kv_add(struct langconf_kv *kv, const char *key, size_t klen,
                  const char *value, size_t vlen, unsigned line)
{
    if (kv->n == kv->cap) {
        size_t cap = kv->cap ? 2 * kv->cap : 16;
        struct langconf_entry *e = reallocarray(kv->entries, cap, sizeof(*e));
        if (!e)
            return -ENOMEM;
        kv->entries = e;
        kv->cap = cap;
    }
    struct langconf_entry *e = &kv->entries[kv->n];
    e->key = strndup(key, klen);
    e->value = strndup(value, vlen);
    e->line = line;
    if (!e->key || !e->value) {
        free(e->key);
        free(e->value);
        return -ENOMEM;
    }
    kv->n++;
    return 0;
}

int langconf_kv_parse(struct langconf_kv *kv, const char *text, size_t len,
                      char *err, size_t errlen)
{
    memset(kv, 0, sizeof(*kv));
    if (len > LANGCONF_MAX_SIZE) {
        snprintf(err, errlen, "larger than %d bytes", LANGCONF_MAX_SIZE);
        return -EINVAL;
    }
    /* A NUL would end every C string made of the value early: reject the
     * file rather than read part of a line. */
    if (memchr(text, '\0', len)) {
        snprintf(err, errlen, "contains a NUL byte");
        return -EINVAL;
    }
    const char *p = text, *end = text + len;
    unsigned lineno = 0;
    while (p < end) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        if (!eol)
            eol = end;
        const char *s = p;
        p = eol < end ? eol + 1 : end;
        lineno++;
        /* Leading blanks before the key go; so do trailing blanks and the
         * CR of a CRLF, which an editor leaves without anyone seeing. */
        while (s < eol && is_blank(*s))
            s++;
        while (eol > s && (is_blank(eol[-1]) || eol[-1] == '\r'))
            eol--;
        if (s == eol || *s == '#')
            continue;
        const char *eq = memchr(s, '=', (size_t)(eol - s));
        const char *why = NULL;
        int r;
        if (!eq) {
            r = -EINVAL;
            why = "expected KEY=VALUE";
        } else if (!valid_key(s, (size_t)(eq - s))) {
            r = -EINVAL;
            why = "bad key (A-Z, 0-9, _)";
        } else {
            r = kv_add(kv, s, (size_t)(eq - s), eq + 1, (size_t)(eol - eq - 1),
                       lineno);
        }
        if (r < 0) {
            snprintf(err, errlen, "line %u: %s", lineno,
                     why ? why : strerror(-r));
            langconf_kv_free(kv);
            return r;
        }
    }
    return 0;
}

/* Reads up to LANGCONF_MAX_SIZE + 1 bytes of path into a malloc'd *buf, so
 * that parsing sees an over-long file as one. */
static int read_text(const char *path, char **buf, size_t *len, char *err,
                     size_t errlen)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int e = -errno;
        snprintf(err, errlen, "%s: %s", path, strerror(-e));
        return e;
    }
    char *b = malloc(LANGCONF_MAX_SIZE + 1);
    if (!b) {
        close(fd);
        snprintf(err, errlen, "%s: %s", path, strerror(ENOMEM));
        return -ENOMEM;
    }
    size_t n = 0;
    while (n <= LANGCONF_MAX_SIZE) {
        ssize_t got = read(fd, b + n, LANGCONF_MAX_SIZE + 1 - n);
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0) {
            int e = -errno;
            snprintf(err, errlen, "%s: %s", path, strerror(-e));
            free(b);
            close(fd);
            return e;
        }
        if (got == 0)
            break;
        n += (size_t)got;
    }
    close(fd);
    *buf = b;
    *len = n;
    return 0;
}

#define LANGCONF_MAX_INCLUDE  4  /* deep */
#define LANGCONF_MAX_INCLUDES 16 /* files included in all */

/* Loads path into kv (appending), its INCLUDE= lines replaced by the
 * entries of the file they name, beside it; *files counts the includes. */
static int kv_load(struct langconf_kv *kv, const char *path, int depth,
                   int *files, char *err, size_t errlen)
{
    char *text, sub[200];
    size_t len;
    struct langconf_kv file;

    int r = read_text(path, &text, &len, err, errlen);
    if (r < 0)
        return r;
    r = langconf_kv_parse(&file, text, len, sub, sizeof(sub));
    free(text);
    if (r < 0) {
        snprintf(err, errlen, "%s: %s", path, sub);
        return r;
    }
    for (size_t i = 0; i < file.n && r == 0; i++) {
        const struct langconf_entry *e = &file.entries[i];
        if (strcmp(e->key, "INCLUDE") != 0) {
            r = kv_add(kv, e->key, strlen(e->key), e->value, strlen(e->value),
                       e->line);
            continue;
        }
        const char *v = e->value;
        if (!*v || strchr(v, '/') || !strcmp(v, ".") || !strcmp(v, "..")) {
            snprintf(err, errlen,
                     "%s: line %u: INCLUDE names a file beside it, "
                     "without /",
                     path, e->line);
            r = -EINVAL;
        } else if (depth == LANGCONF_MAX_INCLUDE ||
                   ++*files > LANGCONF_MAX_INCLUDES) {
            snprintf(err, errlen,
                     "%s: line %u: INCLUDE nested too deep or too often "
                     "(%d deep, %d files at most)",
                     path, e->line, LANGCONF_MAX_INCLUDE,
                     LANGCONF_MAX_INCLUDES);
            r = -ELOOP;
        } else {
            const char *slash = strrchr(path, '/');
            int dir = slash ? (int)(slash - path + 1) : 0;
            char *inc = malloc((size_t)dir + strlen(v) + 1);
            if (!inc) {
                r = -ENOMEM;
                break;
            }
            sprintf(inc, "%.*s%s", dir, path, v);
            r = kv_load(kv, inc, depth + 1, files, err, errlen);
            free(inc);
        }
    }
    langconf_kv_free(&file);
    return r;
}

int langconf_kv_load(struct langconf_kv *kv, const char *path, char *err,
                     size_t errlen)
{
    memset(kv, 0, sizeof(*kv));
    int files = 0;
    int r = kv_load(kv, path, 0, &files, err, errlen);
    if (r == -ENOMEM)
        snprintf(err, errlen, "%s: %s", path, strerror(ENOMEM));
    if (r < 0)
        langconf_kv_free(kv);
    return r;
}

int langconf_kv_set(struct langconf_kv *kv, const char *assignment)
{
    const char *eq = strchr(assignment, '=');
    if (!eq || strchr(assignment, '\n') ||
        !valid_key(assignment, (size_t)(eq - assignment)))
        return -EINVAL;
    return kv_add(kv, assignment, (size_t)(eq - assignment), eq + 1,
                  strlen(eq + 1), 0);
}

const char *langconf_kv_get(const struct langconf_kv *kv, const char *key)
{
    const char *v = NULL;
    for (size_t i = 0; i < kv->n; i++)
        if (strcmp(kv->entries[i].key, key) == 0)
            v = kv->entries[i].value;
    return v;
}

void langconf_free_words(char **words)
{
    if (!words)
        return;
    for (char **p = words; *p; p++)
        free(*p);
    free(words);
}

int langconf_kv_words(const struct langconf_kv *kv, const char *key,
                      char ***words, size_t *count, char *err, size_t errlen)
{
    size_t n = 0, cap = 1;
    char **w = calloc(cap, sizeof(*w));
    char *word = NULL;
    int r = 0;

    *words = NULL;
    *count = 0;
    if (!w)
        goto nomem;
    for (size_t i = 0; i < kv->n; i++) {
        const struct langconf_entry *e = &kv->entries[i];
        if (strcmp(e->key, key) != 0)
            continue;
        const char *s = e->value;
        word = malloc(strlen(s) + 1);
        if (!word)
            goto nomem;
        while ((r = next_word(&s, word)) > 0) {
            if (n + 2 > cap) {
                char **nw = reallocarray(w, 2 * cap, sizeof(*w));
                if (!nw)
                    goto nomem;
                w = nw;
                cap *= 2;
            }
            w[n] = strdup(word);
            if (!w[n])
                goto nomem;
            w[++n] = NULL;
        }
        free(word);
        word = NULL;
        if (r < 0) {
            if (e->line)
                snprintf(err, errlen, "line %u: %s: unclosed quote", e->line,
                         e->key);
            else
                snprintf(err, errlen, "%s=%s: unclosed quote", e->key,
                         e->value);
            langconf_free_words(w);
            return r;
        }
    }
    *words = w;
    *count = n;
    return 0;
nomem:
    free(word);
    langconf_free_words(w);
    snprintf(err, errlen, "%s", strerror(ENOMEM));
    return -ENOMEM;
}

/* Read by the image build only; everything else is for the agent. */
static const char *const build_keys[] = {
    "IMAGE",   "PACKAGES", "DROP",  "VERSION_CMD", "WRITABLE",
    "INCLUDE", "VERSION",  "SUITE", "ALIASES",     "DEFAULT"};

bool langconf_is_build_key(const char *key)
{
    for (size_t i = 0; i < sizeof(build_keys) / sizeof(build_keys[0]); i++)
        if (strcmp(key, build_keys[i]) == 0)
            return true;
    return false;
}

char *langconf_kv_render_runtime(const struct langconf_kv *kv)
{
    size_t len = 0;
    for (size_t i = 0; i < kv->n; i++)
        if (!langconf_is_build_key(kv->entries[i].key))
            len +=
                strlen(kv->entries[i].key) + strlen(kv->entries[i].value) + 2;
    char *out = malloc(len + 1), *p = out;
    if (!out)
        return NULL;
    for (size_t i = 0; i < kv->n; i++)
        if (!langconf_is_build_key(kv->entries[i].key))
            p +=
                sprintf(p, "%s=%s\n", kv->entries[i].key, kv->entries[i].value);
    *p = '\0';
    return out;
}

void langconf_kv_free(struct langconf_kv *kv)
{
    for (size_t i = 0; i < kv->n; i++) {
        free(kv->entries[i].key);
        free(kv->entries[i].value);
    }
    free(kv->entries);
    memset(kv, 0, sizeof(*kv));
}

/* ---- the agent's typed view ---------------------------------------------- */

static int set_string(char **dst, const char *v)
{
    char *s = strdup(v);
    if (!s)
        return -ENOMEM;
    free(*dst);
    *dst = s;
    return 0;
}

/* Applies one entry; on a bad value sets *why. */
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
        bool build = key[0] == 'B';
        char **argv = build ? lc->build_argv : lc->run_argv;
        free_argv(argv);
        r = langconf_split(value, argv, LANGCONF_MAX_ARGS);
        if (r == -EINVAL)
            *why = "unclosed quote";
        else if (r == -E2BIG)
            *why = "too many words";
        if (r < 0)
            return r;
        if (build) {
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

int langconf_from_kv(struct langconf *lc, const struct langconf_kv *kv,
                     char *err, size_t errlen)
{
    memset(lc, 0, sizeof(*lc));
    for (size_t i = 0; i < kv->n; i++) {
        const struct langconf_entry *e = &kv->entries[i];
        const char *why = NULL;
        int r = apply(lc, e->key, e->value, &why);
        if (r < 0) {
            if (!why)
                why = strerror(-r);
            if (e->line)
                snprintf(err, errlen, "line %u: %s", e->line, why);
            else
                snprintf(err, errlen, "%s: %s", e->key, why);
            langconf_free(lc);
            return r;
        }
    }
    return 0;
}

int langconf_parse(const char *text, size_t len, struct langconf *lc, char *err,
                   size_t errlen)
{
    struct langconf_kv kv;

    memset(lc, 0, sizeof(*lc));
    int r = langconf_kv_parse(&kv, text, len, err, errlen);
    if (r < 0)
        return r;
    r = langconf_from_kv(lc, &kv, err, errlen);
    langconf_kv_free(&kv);
    return r;
}

int langconf_load(const char *path, struct langconf *lc, char *err,
                  size_t errlen)
{
    char *text, sub[200];
    size_t len;

    memset(lc, 0, sizeof(*lc));
    int r = read_text(path, &text, &len, err, errlen);
    if (r < 0)
        return r;
    r = langconf_parse(text, len, lc, sub, sizeof(sub));
    if (r < 0)
        snprintf(err, errlen, "%s: %s", path, sub);
    free(text);
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
