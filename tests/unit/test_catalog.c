/* session/catalog.c: which image a --lang spec picks, from configs and
 * images in directories made for each test. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "session/catalog.h"

struct t {
    char dir[64], dir2[64];
    struct catalog c;
};

static void put(const char *dir, const char *name, const char *text)
{
    char path[256];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

/* A language version's installed config, as `make lang-confs` writes it. */
static void conf(const char *dir, const char *lang, const char *version,
                 const char *def, const char *aliases)
{
    char name[96], text[512];
    snprintf(name, sizeof(name), "%s@%s.conf", lang, version);
    snprintf(text, sizeof(text),
             "LANG=%s\nDEFAULT=%s\nALIASES=%s\nSOURCE=main\nRUN=./main\n"
             "VERSION=%s\nSUITE=bookworm\nPACKAGES=x\n",
             lang, def, aliases, version);
    put(dir, name, text);
}

static int setup(void **state)
{
    struct t *t = calloc(1, sizeof(*t));
    assert_non_null(t);
    strcpy(t->dir, "/tmp/test_catalog.XXXXXX");
    strcpy(t->dir2, "/tmp/test_catalog2.XXXXXX");
    assert_non_null(mkdtemp(t->dir));
    assert_non_null(mkdtemp(t->dir2));
    *state = t;
    return 0;
}

static int teardown(void **state)
{
    struct t *t = *state;
    char cmd[200];
    catalog_free(&t->c);
    snprintf(cmd, sizeof(cmd), "rm -rf %s %s", t->dir, t->dir2);
    assert_int_equal(system(cmd), 0);
    free(t);
    return 0;
}

static void load(struct t *t)
{
    const char *dirs[] = {t->dir, t->dir2};
    catalog_free(&t->c);
    assert_int_equal(catalog_load(&t->c, dirs, 2), 0);
}

/* The version spec picks, or NULL with why. */
static const char *pick(struct t *t, const char *spec, char *why)
{
    const struct catalog_entry *e = catalog_find(&t->c, spec, why, 1024);
    static char name[80];
    return e ? catalog_name(e, name, sizeof(name)) : NULL;
}

/* go 1.19 (default), 1.22 and 1.24 configured; 1.19 and 1.22 built. */
static void go_three(struct t *t)
{
    conf(t->dir, "go", "1.19", "1.19", "golang");
    conf(t->dir, "go", "1.22", "1.19", "golang");
    conf(t->dir, "go", "1.24", "1.19", "golang");
    put(t->dir, "go@1.19.cpio.lz4", "x");
    put(t->dir, "go@1.22.cpio.gz", "x");
    load(t);
}

static void default_and_prefixes(void **state)
{
    struct t *t = *state;
    char why[1024];
    go_three(t);
    assert_int_equal(t->c.n, 3);
    assert_string_equal(pick(t, "go", why), "go@1.19");
    assert_string_equal(pick(t, "golang", why), "go@1.19");
    assert_string_equal(pick(t, "go@1.22", why), "go@1.22");
    assert_string_equal(pick(t, "golang@1.22", why), "go@1.22");
    /* The highest built that matches: 1.24 is not built. */
    assert_string_equal(pick(t, "go@1", why), "go@1.22");
    assert_string_equal(pick(t, "go@*", why), "go@1.22");
    /* 1.2 is not 1.22 nor 1.24. */
    assert_null(pick(t, "go@1.2", why));
    assert_non_null(strstr(why, "go has no version 1.2; it has:"));
    assert_non_null(strstr(why, "go@1.19 (default)"));
    assert_non_null(strstr(why, "go@1.24 (not built)"));
    /* Known, not built: the command that builds it. */
    assert_null(pick(t, "go@1.24", why));
    assert_non_null(strstr(why, "make images IMAGE_LANGS=go@1.24"));
    assert_null(pick(t, "go@2", why));
    assert_null(pick(t, "cobol", why));
    assert_non_null(strstr(why, "no language \"cobol\"; there are: go"));
    assert_null(pick(t, "Go", why));
    assert_non_null(strstr(why, "not a language"));
    assert_null(pick(t, "go@1.x", why));
}

static void default_not_built(void **state)
{
    struct t *t = *state;
    char why[1024];
    conf(t->dir, "python", "3.11", "3.11", "py python3");
    conf(t->dir, "python", "3.13", "3.11", "py python3");
    put(t->dir, "python@3.13.cpio", "x");
    load(t);
    /* The default is the default: not another version in its place. */
    assert_null(pick(t, "python", why));
    assert_non_null(strstr(why, "python@3.11 is not built"));
    assert_string_equal(pick(t, "py@3", why), "python@3.13");
    assert_string_equal(pick(t, "python3@3.13", why), "python@3.13");
    /* An alias is a whole word of ALIASES. */
    assert_null(pick(t, "pyth", why));
    assert_null(pick(t, "python31", why));
}

static void images_and_directories(void **state)
{
    struct t *t = *state;
    char why[1024];
    conf(t->dir, "go", "1.19", "1.19", "");
    /* An image in the second directory, a config in the first. */
    put(t->dir2, "go@1.19.cpio.gz", "x");
    /* An empty image file is not built. */
    put(t->dir, "go@1.19.cpio.lz4", "");
    /* A hand-built image with no version or config. */
    put(t->dir2, "sh.cpio.gz", "x");
    /* A stray unversioned image of a language with versions is ignored. */
    put(t->dir2, "go.cpio", "x");
    /* Names that are not images or configs. */
    put(t->dir, "go@1.19.cpio.lz4.inputs", "x");
    put(t->dir, "Go@1.19.conf", "LANG=Go\nVERSION=1.19\n");
    put(t->dir, "go@1.2x.conf", "LANG=go\nVERSION=1.2x\n");
    put(t->dir, "go@1.30.conf", "LANG=go\nVERSION=1.31\n"); /* lies */
    put(t->dir, "java@21.conf", "not a config\n");
    put(t->dir, ".confs", "");
    load(t);
    assert_int_equal(t->c.n, 2);
    const struct catalog_entry *e = catalog_find(&t->c, "go", why, 1024);
    assert_non_null(e);
    assert_non_null(strstr(e->image, t->dir2));
    assert_non_null(strstr(e->conf, t->dir));
    e = catalog_find(&t->c, "sh", why, 1024);
    assert_non_null(e);
    assert_string_equal(e->version, "");
    assert_true(e->is_default);
    assert_null(pick(t, "sh@1", why));

    /* An image whose config is not installed is still a version. */
    put(t->dir, "rust@1.85.cpio.lz4", "x");
    load(t);
    assert_string_equal(pick(t, "rust@1", why), "rust@1.85");
    assert_null(pick(t, "rust", why));
    assert_non_null(strstr(why, "rust has no default version"));
}

static void nothing_installed(void **state)
{
    struct t *t = *state;
    char why[1024];
    load(t);
    assert_int_equal(t->c.n, 0);
    assert_null(pick(t, "go", why));
    assert_non_null(strstr(why, "none (no images or configs installed)"));
    const char *dirs[] = {"/nonexistent/dir"};
    catalog_free(&t->c);
    assert_int_equal(catalog_load(&t->c, dirs, 1), 0);
    assert_int_equal(t->c.n, 0);
}

static void listing(void **state)
{
    struct t *t = *state;
    go_three(t);
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    assert_int_equal(catalog_print(&t->c, f), 3);
    fclose(f);
    assert_non_null(strstr(buf, "LANG"));
    assert_non_null(strstr(buf, "go           1.19      yes      golang"));
    assert_non_null(strstr(buf, "not built (make images IMAGE_LANGS=go@1.24)"));
    /* Sorted by version, not by text: 1.19 before 1.22 before 1.24. */
    assert_true(strstr(buf, "1.19") < strstr(buf, "1.22"));
    free(buf);

    struct msg_buf b;
    msg_buf_init(&b);
    catalog_json(&t->c, &b);
    msg_buf_append(&b, "", 1);
    assert_non_null(strstr((const char *)b.data,
                           "{\"lang\":\"go\",\"version\":\"1.19\",\"aliases\":"
                           "[\"golang\"],\"default\":true,\"built\":true}"));
    assert_non_null(strstr((const char *)b.data,
                           "\"version\":\"1.24\",\"aliases\":[\"golang\"],"
                           "\"default\":false,\"built\":false}]"));
    msg_buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest t[] = {
        cmocka_unit_test_setup_teardown(default_and_prefixes, setup, teardown),
        cmocka_unit_test_setup_teardown(default_not_built, setup, teardown),
        cmocka_unit_test_setup_teardown(images_and_directories, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(nothing_installed, setup, teardown),
        cmocka_unit_test_setup_teardown(listing, setup, teardown),
    };
    return cmocka_run_group_tests(t, NULL, NULL);
}
