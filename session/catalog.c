#include "session/catalog.h"

#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "protocol/langconf.h"
#include "protocol/version.h"
#include "session/event.h"

/* In this order within a directory, as runvm always took them. */
static const char *const image_suffixes[] = {".cpio.gz", ".cpio.lz4", ".cpio"};
#define NSUFFIXES   (sizeof(image_suffixes) / sizeof(image_suffixes[0]))
#define CATALOG_MAX 256

const char *catalog_name(const struct catalog_entry *e, char *buf, size_t len)
{
    snprintf(buf, len, "%s%s%s", e->lang, e->version[0] ? "@" : "", e->version);
    return buf;
}

static bool is_file(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0;
}

/* The entry named lang@version (version "" for unversioned), or NULL. */
static struct catalog_entry *lookup(struct catalog *c, const char *lang,
                                    const char *version)
{
    for (size_t i = 0; i < c->n; i++)
        if (!strcmp(c->e[i].lang, lang) && !strcmp(c->e[i].version, version))
            return &c->e[i];
    return NULL;
}

static struct catalog_entry *add(struct catalog *c, const char *lang,
                                 size_t lang_len, const char *version)
{
    if (c->n == CATALOG_MAX)
        return NULL;
    struct catalog_entry *e = &c->e[c->n++];
    memset(e, 0, sizeof(*e));
    memcpy(e->lang, lang, lang_len);
    snprintf(e->version, sizeof(e->version), "%s", version);
    return e;
}

/* Splits a directory entry NAME[@VERSION]SUFFIX (a concrete VERSION);
 * false if it is not one. */
static bool split_stem(const char *d_name, const char *suffix,
                       struct lang_spec *spec)
{
    size_t n = strlen(d_name), sl = strlen(suffix);
    return n > sl && strcmp(d_name + n - sl, suffix) == 0 &&
           lang_spec_parse(d_name, n - sl, spec) &&
           strcmp(spec->version, "*") != 0;
}

/* A config NAME@VERSION.conf whose LANG and VERSION say the same. */
static void add_conf(struct catalog *c, const char *dir, const char *d_name)
{
    struct lang_spec spec;
    char path[PATH_MAX], err[256];
    if (!split_stem(d_name, ".conf", &spec) || !spec.version[0] ||
        lookup(c, spec.name, spec.version))
        return;
    const char *lang = spec.name, *version = spec.version;
    snprintf(path, sizeof(path), "%.3000s/%s", dir, d_name);
    struct langconf_kv kv;
    if (langconf_kv_load(&kv, path, err, sizeof(err)) < 0)
        return;
    const char *l = langconf_kv_get(&kv, "LANG");
    const char *v = langconf_kv_get(&kv, "VERSION");
    const char *aliases = langconf_kv_get(&kv, "ALIASES");
    const char *def = langconf_kv_get(&kv, "DEFAULT");
    struct catalog_entry *e;
    if (l && v && !strcmp(l, lang) && !strcmp(v, version) &&
        (e = add(c, lang, strlen(lang), version))) {
        snprintf(e->aliases, sizeof(e->aliases), "%s", aliases ? aliases : "");
        e->is_default = def && !strcmp(def, version);
        snprintf(e->conf, sizeof(e->conf), "%s", path);
    }
    langconf_kv_free(&kv);
}

/* An image with no config: NAME@VERSION (a config not installed) or NAME
 * (built by hand; only for a language with no versions). */
static void add_image(struct catalog *c, const char *d_name)
{
    struct lang_spec spec;
    for (size_t s = 0; s < NSUFFIXES; s++) {
        if (!split_stem(d_name, image_suffixes[s], &spec))
            continue;
        const char *lang = spec.name, *version = spec.version;
        if (lookup(c, lang, version))
            return;
        if (!version[0])
            for (size_t i = 0; i < c->n; i++)
                if (!strcmp(c->e[i].lang, lang))
                    return; /* versions win over a stray unversioned one */
        struct catalog_entry *e = add(c, lang, strlen(lang), version);
        if (e)
            e->is_default = !version[0];
        return;
    }
}

/* Adds the configs (confs) or the images of every readable dir. */
static void scan(struct catalog *c, const char *const *dirs, size_t ndirs,
                 bool confs)
{
    for (size_t d = 0; d < ndirs; d++) {
        DIR *dir = opendir(dirs[d]);
        if (!dir)
            continue;
        struct dirent *de;
        while ((de = readdir(dir)))
            if (confs)
                add_conf(c, dirs[d], de->d_name);
            else
                add_image(c, de->d_name);
        closedir(dir);
    }
}

static int cmp_entry(const void *a, const void *b)
{
    const struct catalog_entry *x = a, *y = b;
    int r = strcmp(x->lang, y->lang);
    return r ? r : version_cmp(x->version, y->version);
}

int catalog_load(struct catalog *c, const char *const *dirs, size_t ndirs)
{
    memset(c, 0, sizeof(*c));
    c->e = calloc(CATALOG_MAX, sizeof(*c->e));
    if (!c->e)
        return -ENOMEM;
    scan(c, dirs, ndirs, true);
    /* Unversioned images only after every config: a language with
     * versions ignores a stray NAME.cpio.gz. */
    scan(c, dirs, ndirs, false);
    char name[CATALOG_NAME_MAX + CATALOG_VERSION_MAX + 2];
    for (size_t i = 0; i < c->n; i++) {
        struct catalog_entry *e = &c->e[i];
        catalog_name(e, name, sizeof(name));
        for (size_t d = 0; d < ndirs && !e->image[0]; d++)
            for (size_t s = 0; s < NSUFFIXES && !e->image[0]; s++) {
                snprintf(e->image, sizeof(e->image), "%.3000s/%s%s", dirs[d],
                         name, image_suffixes[s]);
                if (!is_file(e->image))
                    e->image[0] = '\0';
            }
    }
    qsort(c->e, c->n, sizeof(*c->e), cmp_entry);
    return 0;
}

void catalog_free(struct catalog *c)
{
    free(c->e);
    memset(c, 0, sizeof(*c));
}

static bool has_word(const char *words, const char *w);

bool catalog_has_alias(const struct catalog_entry *e, const char *name)
{
    return has_word(e->aliases, name);
}

static bool has_word(const char *words, const char *w)
{
    size_t n = strlen(w);
    if (n == 0)
        return false; /* strstr would find "" everywhere, forever */
    for (const char *p = words; (p = strstr(p, w)); p += n)
        if ((p == words || p[-1] == ' ') && (p[n] == '\0' || p[n] == ' '))
            return true;
    return false;
}

/* Appends a "  go@1.19 (default)" line for each version of lang to why. */
static void list_versions(const struct catalog *c, const char *lang, char *why,
                          size_t len)
{
    for (size_t i = 0; i < c->n; i++) {
        const struct catalog_entry *e = &c->e[i];
        size_t at = strlen(why);
        if (strcmp(e->lang, lang) != 0 || at + 1 >= len)
            continue;
        const char *tag =
            e->is_default
                ? (e->image[0] ? " (default)" : " (default, not built)")
                : (e->image[0] ? "" : " (not built)");
        snprintf(why + at, len - at, "\n  %s@%s%s", lang,
                 e->version[0] ? e->version : "(unversioned)", tag);
    }
}

const struct catalog_entry *
catalog_find(const struct catalog *c, const char *spec, char *why, size_t len)
{
    struct lang_spec ls;
    if (!lang_spec_parse(spec, strlen(spec), &ls)) {
        snprintf(why, len,
                 "\"%.60s\" is not a language: NAME or NAME@VERSION "
                 "(go, go@1.24, python@3, rust@*)",
                 spec);
        return NULL;
    }
    const char *name = ls.name, *want = ls.version[0] ? ls.version : NULL;
    /* The language: its name or one of its aliases. */
    const char *lang = NULL;
    for (size_t i = 0; i < c->n && !lang; i++)
        if (!strcmp(c->e[i].lang, name) || has_word(c->e[i].aliases, name))
            lang = c->e[i].lang;
    if (!lang) {
        snprintf(why, len, "no language \"%s\"; there are:", name);
        for (size_t i = 0; i < c->n; i++) {
            size_t l = strlen(why);
            if (i == 0 || strcmp(c->e[i - 1].lang, c->e[i].lang))
                snprintf(why + l, len - l, " %s", c->e[i].lang);
        }
        if (c->n == 0)
            snprintf(why + strlen(why), len - strlen(why),
                     " none (no images or configs installed)");
        return NULL;
    }
    const struct catalog_entry *pick = NULL, *unbuilt = NULL;
    for (size_t i = 0; i < c->n; i++) {
        const struct catalog_entry *e = &c->e[i];
        if (strcmp(e->lang, lang) != 0)
            continue;
        bool match = want ? version_match(want, e->version) : e->is_default;
        if (!match)
            continue;
        /* Sorted by version: the last match is the highest. */
        if (e->image[0])
            pick = e;
        else
            unbuilt = e;
    }
    if (pick)
        return pick;
    if (unbuilt) {
        snprintf(why, len,
                 "%s@%s is not built: build it with `make images "
                 "IMAGE_LANGS=%s@%s` in the source tree; %s has:",
                 lang, unbuilt->version, lang, unbuilt->version, lang);
    } else if (want) {
        snprintf(why, len, "%s has no version %s; it has:", lang, want);
    } else {
        snprintf(why, len, "%s has no default version; it has:", lang);
    }
    list_versions(c, lang, why, len);
    return NULL;
}

size_t catalog_print(const struct catalog *c, FILE *f)
{
    fprintf(f, "%-12s %-9s %-8s %-16s %s\n", "LANG", "VERSION", "DEFAULT",
            "ALIASES", "IMAGE");
    for (size_t i = 0; i < c->n; i++) {
        const struct catalog_entry *e = &c->e[i];
        char build[CATALOG_NAME_MAX + CATALOG_VERSION_MAX + 40];
        if (!e->image[0])
            snprintf(build, sizeof(build),
                     "not built (make images IMAGE_LANGS=%s@%s)", e->lang,
                     e->version);
        fprintf(f, "%-12s %-9s %-8s %-16s %s\n", e->lang,
                e->version[0] ? e->version : "-", e->is_default ? "yes" : "",
                e->aliases[0] ? e->aliases : "-",
                e->image[0] ? e->image : build);
    }
    return c->n;
}

void catalog_json(const struct catalog *c, struct msg_buf *b)
{
    msg_buf_append(b, "[", 1);
    for (size_t i = 0; i < c->n; i++) {
        const struct catalog_entry *e = &c->e[i];
        if (i)
            msg_buf_append(b, ",", 1);
        msg_buf_append(b, "{\"lang\":", 8);
        event_json_string(b, e->lang, strlen(e->lang));
        msg_buf_append(b, ",\"version\":", 11);
        event_json_string(b, e->version, strlen(e->version));
        msg_buf_append(b, ",\"aliases\":[", 12);
        const char *p = e->aliases;
        for (bool first = true; *p;) {
            size_t w = strcspn(p, " ");
            if (w) {
                if (!first)
                    msg_buf_append(b, ",", 1);
                event_json_string(b, p, w);
                first = false;
            }
            p += w + (p[w] == ' ');
        }
        const char *tail = e->is_default ? "],\"default\":true,\"built\":"
                                         : "],\"default\":false,\"built\":";
        msg_buf_append(b, tail, strlen(tail));
        msg_buf_append(b, e->image[0] ? "true}" : "false}",
                       e->image[0] ? 5 : 6);
    }
    msg_buf_append(b, "]", 1);
}
