#include "initramfs-builder/langconf.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "initramfs-builder/progress.h"

/* Read by the image build only; everything else is for the agent. */
static const char *const build_keys[] = {"IMAGE", "PACKAGES", "DROP",
                                         "VERSION_CMD", "WRITABLE"};

int langconf_is_build_key(const char *key)
{
    for (size_t i = 0; i < sizeof(build_keys) / sizeof(build_keys[0]); i++)
        if (strcmp(key, build_keys[i]) == 0)
            return 1;
    return 0;
}

static int add(struct langconf *lc, const char *k, size_t klen, const char *v,
               size_t vlen)
{
    char **keys = realloc(lc->keys, (lc->n + 1) * sizeof(*keys));
    if (!keys)
        return -ENOMEM;
    lc->keys = keys;
    char **values = realloc(lc->values, (lc->n + 1) * sizeof(*values));
    if (!values)
        return -ENOMEM;
    lc->values = values;
    keys[lc->n] = strndup(k, klen);
    values[lc->n] = strndup(v, vlen);
    if (!keys[lc->n] || !values[lc->n]) {
        free(keys[lc->n]);
        free(values[lc->n]);
        return -ENOMEM;
    }
    lc->n++;
    return 0;
}

int langconf_parse(struct langconf *lc, const char *text, const char *what)
{
    memset(lc, 0, sizeof(*lc));
    unsigned line = 0;
    for (const char *p = text; *p;) {
        const char *end = strchrnul(p, '\n');
        line++;
        const char *s = p;
        while (s < end && (*s == ' ' || *s == '\t'))
            s++;
        if (s < end && *s != '#') {
            const char *k = s;
            while (s < end && (isupper((unsigned char)*s) ||
                               isdigit((unsigned char)*s) || *s == '_'))
                s++;
            if (s == k || s == end || *s != '=') {
                progress_error("%s:%u: expected KEY=VALUE (KEY in A-Z, "
                               "0-9, _)",
                               what, line);
                langconf_free(lc);
                return -EINVAL;
            }
            const char *v = s + 1, *vend = end;
            while (vend > v && (vend[-1] == ' ' || vend[-1] == '\t' ||
                                vend[-1] == '\r'))
                vend--;
            int err = add(lc, k, (size_t)(s - k), v, (size_t)(vend - v));
            if (err) {
                langconf_free(lc);
                return err;
            }
        }
        p = *end ? end + 1 : end;
    }
    return 0;
}

int langconf_set(struct langconf *lc, const char *assignment)
{
    const char *eq = strchr(assignment, '=');
    if (!eq || eq == assignment || strchr(assignment, '\n'))
        return -EINVAL;
    for (const char *k = assignment; k < eq; k++)
        if (!isupper((unsigned char)*k) && !isdigit((unsigned char)*k) &&
            *k != '_')
            return -EINVAL;
    return add(lc, assignment, (size_t)(eq - assignment), eq + 1,
               strlen(eq + 1));
}

int langconf_load(struct langconf *lc, const char *path)
{
    FILE *f = fopen(path, "re");
    if (!f) {
        int err = -errno;
        progress_error("%s: %s", path, strerror(errno));
        return err;
    }
    char *text = NULL;
    size_t cap = 0;
    ssize_t n = getdelim(&text, &cap, '\0', f);
    fclose(f);
    if (n < 0) {
        free(text);
        text = strdup("");
        if (!text)
            return -ENOMEM;
    }
    int err = langconf_parse(lc, text, path);
    free(text);
    return err;
}

void langconf_free(struct langconf *lc)
{
    for (size_t i = 0; i < lc->n; i++) {
        free(lc->keys[i]);
        free(lc->values[i]);
    }
    free(lc->keys);
    free(lc->values);
    memset(lc, 0, sizeof(*lc));
}

const char *langconf_get(const struct langconf *lc, const char *key)
{
    const char *v = NULL;
    for (size_t i = 0; i < lc->n; i++)
        if (strcmp(lc->keys[i], key) == 0)
            v = lc->values[i];
    return v;
}

char **langconf_words(const struct langconf *lc, const char *key,
                      size_t *count)
{
    size_t n = 0;
    char **w = calloc(1, sizeof(*w));
    if (!w)
        return NULL;
    for (size_t i = 0; i < lc->n; i++) {
        if (strcmp(lc->keys[i], key) != 0)
            continue;
        for (const char *p = lc->values[i]; *p;) {
            while (*p == ' ' || *p == '\t')
                p++;
            if (!*p)
                break;
            size_t len = strcspn(p, " \t");
            char **nw = realloc(w, (n + 2) * sizeof(*w));
            if (!nw || !(nw[n] = strndup(p, len))) {
                w = nw ? nw : w;
                w[n] = NULL;
                langconf_free_words(w);
                return NULL;
            }
            w = nw;
            w[++n] = NULL;
            p += len;
        }
    }
    if (count)
        *count = n;
    return w;
}

void langconf_free_words(char **words)
{
    if (!words)
        return;
    for (char **p = words; *p; p++)
        free(*p);
    free(words);
}

char *langconf_render_runtime(const struct langconf *lc)
{
    size_t len = 0;
    for (size_t i = 0; i < lc->n; i++)
        if (!langconf_is_build_key(lc->keys[i]))
            len += strlen(lc->keys[i]) + strlen(lc->values[i]) + 2;
    char *out = malloc(len + 1), *p = out;
    if (!out)
        return NULL;
    for (size_t i = 0; i < lc->n; i++)
        if (!langconf_is_build_key(lc->keys[i]))
            p += sprintf(p, "%s=%s\n", lc->keys[i], lc->values[i]);
    *p = '\0';
    return out;
}
