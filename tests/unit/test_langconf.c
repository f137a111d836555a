#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "protocol/langconf.h"

/* ---- helpers ------------------------------------------------------------- */

static int parse(const char *text, struct langconf *lc, char *err)
{
    return langconf_parse(text, strlen(text), lc, err, 128);
}

static int kv_parse(const char *text, struct langconf_kv *kv, char *err)
{
    return langconf_kv_parse(kv, text, strlen(text), err, 128);
}

/* Writes len bytes of text to a fresh temporary file; its path into path. */
static void write_temp(char *path, const char *text, size_t len)
{
    strcpy(path, "/tmp/test_langconf.XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, len), (ssize_t)len);
    close(fd);
}

/* A malloc'd string of n copies of c. */
static char *repeat(char c, size_t n)
{
    char *s = malloc(n + 1);
    assert_non_null(s);
    memset(s, c, n);
    s[n] = '\0';
    return s;
}

/* ---- the agent's typed view ---------------------------------------------- */

static void full_config(void **state)
{
    (void)state;
    struct langconf lc;
    char err[128];
    assert_int_equal(parse("# Go image\r\n"
                           "LANG=go\n"
                           "  TOOLCHAIN=go1.19.8 linux/amd64\n"
                           "SOURCE=main.go\n"
                           "\n"
                           "BUILD=go build -o main \"main.go\"\n"
                           "RUN=./main 'a b' c\\ d \"q\\\"x\"\n"
                           "ENV=GOCACHE=/var/cache/go\n"
                           "ENV=CGO_ENABLED=0\n"
                           "FUTURE_KEY=ignored\n",
                           &lc, err),
                     0);
    assert_string_equal(lc.lang, "go");
    assert_string_equal(lc.toolchain, "go1.19.8 linux/amd64");
    assert_string_equal(lc.source, "main.go");
    assert_true(lc.has_build);
    assert_string_equal(lc.build_argv[0], "go");
    assert_string_equal(lc.build_argv[3], "main");
    assert_string_equal(lc.build_argv[4], "main.go");
    assert_null(lc.build_argv[5]);
    assert_true(lc.has_run);
    assert_string_equal(lc.run_argv[0], "./main");
    assert_string_equal(lc.run_argv[1], "a b");
    assert_string_equal(lc.run_argv[2], "c d");
    assert_string_equal(lc.run_argv[3], "q\"x");
    assert_null(lc.run_argv[4]);
    assert_int_equal(lc.nenv, 2);
    assert_string_equal(lc.env[0], "GOCACHE=/var/cache/go");
    assert_string_equal(lc.env[1], "CGO_ENABLED=0");
    assert_null(lc.env[2]);
    langconf_free(&lc);
}

static void errors_name_the_line(void **state)
{
    (void)state;
    struct langconf lc;
    char err[128];
    static const struct {
        const char *text;
        int ret;
        const char *msg;
    } bad[] = {
        {"LANG=go\nno equals sign\n", -EINVAL, "line 2: expected KEY=VALUE"},
        {"RUN=echo 'unclosed\n", -EINVAL, "line 1: unclosed quote"},
        {"RUN=echo \"unclosed\n", -EINVAL, "line 1: unclosed quote"},
        {"RUN=echo \"a\\\"\n", -EINVAL, "line 1: unclosed quote"},
        {"BUILD=cc 'x\nRUN=./x\n", -EINVAL, "line 1: unclosed quote"},
        {"RUN=\n", -EINVAL, "line 1: RUN needs a command"},
        {"RUN=  \t \n", -EINVAL, "line 1: RUN needs a command"},
        {"SOURCE=../x.go\n", -EINVAL,
         "line 1: SOURCE must be a plain file name"},
        {"SOURCE=a/b.go\n", -EINVAL,
         "line 1: SOURCE must be a plain file name"},
        {"SOURCE=.\n", -EINVAL, "line 1: SOURCE must be a plain file name"},
        {"SOURCE=..\n", -EINVAL, "line 1: SOURCE must be a plain file name"},
        {"SOURCE=\n", -EINVAL, "line 1: SOURCE must be a plain file name"},
        {"ENV=novalue\n", -EINVAL, "line 1: ENV wants NAME=VALUE"},
        {"ENV==value\n", -EINVAL, "line 1: ENV wants NAME=VALUE"},
        {"lang=go\n", -EINVAL, "line 1: bad key (A-Z, 0-9, _)"},
        {"=go\n", -EINVAL, "line 1: bad key (A-Z, 0-9, _)"},
        {"LANG =go\n", -EINVAL, "line 1: bad key (A-Z, 0-9, _)"},
        {"MY-KEY=1\n", -EINVAL, "line 1: bad key (A-Z, 0-9, _)"},
        {"\n\n# c\n  \nLANG\n", -EINVAL, "line 5: expected KEY=VALUE"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        memset(&lc, 0x5a, sizeof(lc)); /* parse zeroes it, even on error */
        assert_int_equal(parse(bad[i].text, &lc, err), bad[i].ret);
        assert_string_equal(err, bad[i].msg);
        assert_null(lc.lang);
        assert_null(lc.run_argv[0]);
        langconf_free(&lc); /* harmless after a failed parse */
    }
}

static void empty_build_means_none(void **state)
{
    (void)state;
    struct langconf lc;
    char err[128];
    assert_int_equal(parse("BUILD=\nRUN=python3 main.py\n", &lc, err), 0);
    assert_false(lc.has_build);
    assert_null(lc.build_argv[0]);
    assert_true(lc.has_run);
    langconf_free(&lc);
    /* No keys at all is a valid (empty) config: the agent then needs the
     * commands in each request. */
    assert_int_equal(parse("", &lc, err), 0);
    assert_null(lc.lang);
    assert_false(lc.has_run);
    assert_int_equal(lc.nenv, 0);
    langconf_free(&lc);
}

static void duplicate_keys(void **state)
{
    (void)state;
    struct langconf lc;
    char err[128];
    assert_int_equal(parse("LANG=c\nLANG=go\n"
                           "SOURCE=a.c\nSOURCE=main.go\n"
                           "BUILD=make\nBUILD=\n"
                           "RUN=./a one two three\nRUN=./main\n"
                           "ENV=A=1\nENV=A=2\n",
                           &lc, err),
                     0);
    assert_string_equal(lc.lang, "go");
    assert_string_equal(lc.source, "main.go");
    assert_false(lc.has_build); /* the later empty BUILD= wins */
    assert_null(lc.build_argv[0]);
    assert_string_equal(lc.run_argv[0], "./main");
    assert_null(lc.run_argv[1]);
    /* ENV accumulates: the step's environment takes the later one. */
    assert_int_equal(lc.nenv, 2);
    assert_string_equal(lc.env[0], "A=1");
    assert_string_equal(lc.env[1], "A=2");
    langconf_free(&lc);
}

static void line_endings_and_blanks(void **state)
{
    (void)state;
    struct langconf lc;
    char err[128];
    /* CRLF everywhere, blank CRLF lines, blank-only lines, an indented
     * comment, trailing blanks, no newline at the end. */
    assert_int_equal(parse("\r\n \t\r\n\t# comment\r\n"
                           "LANG=go \t\r\n"
                           "TOOLCHAIN=go 1.19\r\r\n"
                           "RUN=./main\t",
                           &lc, err),
                     0);
    assert_string_equal(lc.lang, "go");
    assert_string_equal(lc.toolchain, "go 1.19");
    assert_string_equal(lc.run_argv[0], "./main");
    assert_null(lc.run_argv[1]);
    langconf_free(&lc);
    /* Only the first '=' splits: the value keeps the rest, and a CR inside
     * a line is part of it. */
    assert_int_equal(parse("ENV=A=b=c\nTOOLCHAIN=x\ry\n", &lc, err), 0);
    assert_string_equal(lc.env[0], "A=b=c");
    assert_string_equal(lc.toolchain, "x\ry");
    langconf_free(&lc);
}

static void hostile_inputs(void **state)
{
    (void)state;
    struct langconf lc;
    char err[128];

    /* NUL bytes anywhere: rejected whole, not read up to the NUL. */
    assert_int_equal(langconf_parse("A=\0", 3, &lc, err, sizeof(err)), -EINVAL);
    assert_string_equal(err, "contains a NUL byte");
    assert_int_equal(
        langconf_parse("LANG=go\nRUN=./a\0b\n", 17, &lc, err, sizeof(err)),
        -EINVAL);
    assert_string_equal(err, "contains a NUL byte");

    /* Too large: one byte over the limit fails, the limit itself parses. */
    char *big = repeat('#', LANGCONF_MAX_SIZE + 1);
    assert_int_equal(
        langconf_parse(big, LANGCONF_MAX_SIZE + 1, &lc, err, sizeof(err)),
        -EINVAL);
    assert_string_equal(err, "larger than 65536 bytes");
    assert_int_equal(
        langconf_parse(big, LANGCONF_MAX_SIZE, &lc, err, sizeof(err)), 0);
    langconf_free(&lc);

    /* One over-long line (a single 65000-byte word) is still one line. */
    memcpy(big, "RUN=", 4);
    memset(big + 4, 'x', 65000);
    assert_int_equal(langconf_parse(big, 65004, &lc, err, sizeof(err)), 0);
    assert_int_equal(strlen(lc.run_argv[0]), 65000);
    assert_null(lc.run_argv[1]);
    langconf_free(&lc);

    /* Words: exactly LANGCONF_MAX_ARGS pass, one more fails. */
    char line[4 + 2 * (LANGCONF_MAX_ARGS + 1) + 1] = "RUN=";
    for (int i = 0; i < LANGCONF_MAX_ARGS; i++)
        strcat(line, "a ");
    assert_int_equal(parse(line, &lc, err), 0);
    assert_string_equal(lc.run_argv[LANGCONF_MAX_ARGS - 1], "a");
    assert_null(lc.run_argv[LANGCONF_MAX_ARGS]);
    langconf_free(&lc);
    strcat(line, "a");
    assert_int_equal(parse(line, &lc, err), -E2BIG);
    assert_string_equal(err, "line 1: too many words");

    /* ENV lines: LANGCONF_MAX_ENV pass, one more fails. */
    char *env = malloc(8 * (LANGCONF_MAX_ENV + 1) + 1);
    assert_non_null(env);
    env[0] = '\0';
    for (int i = 0; i < LANGCONF_MAX_ENV; i++)
        strcat(env, "ENV=A=1\n");
    assert_int_equal(parse(env, &lc, err), 0);
    assert_int_equal(lc.nenv, LANGCONF_MAX_ENV);
    assert_null(lc.env[LANGCONF_MAX_ENV]);
    langconf_free(&lc);
    strcat(env, "ENV=A=1\n");
    assert_int_equal(parse(env, &lc, err), -E2BIG);
    assert_string_equal(err, "line 65: too many ENV lines");
    free(env);

    /* The most lines a file can hold: every one is an entry. */
    for (size_t i = 0; i + 3 <= LANGCONF_MAX_SIZE; i += 3)
        memcpy(big + i, "A=\n", 3);
    struct langconf_kv kv;
    size_t len = LANGCONF_MAX_SIZE / 3 * 3;
    assert_int_equal(langconf_kv_parse(&kv, big, len, err, sizeof(err)), 0);
    assert_int_equal(kv.n, LANGCONF_MAX_SIZE / 3);
    assert_int_equal(kv.entries[kv.n - 1].line, kv.n);
    langconf_kv_free(&kv);
    free(big);
}

static void split_words(void **state)
{
    (void)state;
    char *argv[5];
    static const struct {
        const char *in;
        int n;
        const char *words[4];
    } cases[] = {
        {"", 0, {NULL}},
        {" \t ", 0, {NULL}},
        {"a", 1, {"a"}},
        {"  a\tb  ", 2, {"a", "b"}},
        {"'a  b'c", 1, {"a  bc"}},
        {"''", 1, {""}},
        {"\"\"x", 1, {"x"}},
        {"'a\\b' \"a\\b\"", 2, {"a\\b", "a\\b"}},
        {"\"\\\\ \\\"\"", 1, {"\\ \""}},
        {"a\\ b c\\'d", 2, {"a b", "c'd"}},
        {"x\\", 1, {"x\\"}},
        {"$HOME *.go", 2, {"$HOME", "*.go"}},
        {"a b c d", 4, {"a", "b", "c", "d"}},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int n = langconf_split(cases[i].in, argv, 4);
        assert_int_equal(n, cases[i].n);
        for (int w = 0; w < n; w++)
            assert_string_equal(argv[w], cases[i].words[w]);
        assert_null(argv[n]);
        for (int w = 0; w < n; w++)
            free(argv[w]);
    }
    assert_int_equal(langconf_split("a b c d e", argv, 4), -E2BIG);
    assert_null(argv[0]); /* freed and cleared */
    assert_int_equal(langconf_split("a 'b", argv, 4), -EINVAL);
    assert_null(argv[0]);
    assert_int_equal(langconf_split("a \"b\\\"", argv, 4), -EINVAL);
    assert_null(argv[0]);
}

static void load_files(void **state)
{
    (void)state;
    struct langconf lc;
    char err[256], path[64], want[256];

    assert_int_equal(
        langconf_load("/nonexistent/lang.conf", &lc, err, sizeof(err)),
        -ENOENT);
    assert_string_equal(err,
                        "/nonexistent/lang.conf: No such file or directory");

    static const char good[] = "LANG=python\nSOURCE=main.py\n"
                               "RUN=python3 main.py\n";
    write_temp(path, good, strlen(good));
    assert_int_equal(langconf_load(path, &lc, err, sizeof(err)), 0);
    assert_string_equal(lc.lang, "python");
    assert_string_equal(lc.run_argv[1], "main.py");
    langconf_free(&lc);
    unlink(path);

    write_temp(path, "LANG=go\nRUN=\n", 13);
    assert_int_equal(langconf_load(path, &lc, err, sizeof(err)), -EINVAL);
    snprintf(want, sizeof(want), "%s: line 2: RUN needs a command", path);
    assert_string_equal(err, want);
    unlink(path);

    /* A file longer than the limit is refused, not cut to it. */
    char *big = repeat('#', LANGCONF_MAX_SIZE + 100);
    write_temp(path, big, LANGCONF_MAX_SIZE + 100);
    assert_int_equal(langconf_load(path, &lc, err, sizeof(err)), -EINVAL);
    snprintf(want, sizeof(want), "%s: larger than 65536 bytes", path);
    assert_string_equal(err, want);
    unlink(path);
    free(big);
}

/* ---- the key/value layer (the image builder's) --------------------------- */

static void kv_keeps_every_line(void **state)
{
    (void)state;
    struct langconf_kv kv;
    char err[128];
    assert_int_equal(kv_parse("# c\n"
                              "LANG=go\n"
                              "IMAGE=golang:1.23 \t\r\n"
                              "\n"
                              "  DROP=/a /b\n"
                              "LANG=go2\n"
                              "K_2=x=y\n",
                              &kv, err),
                     0);
    assert_int_equal(kv.n, 5);
    static const struct {
        const char *key, *value;
        unsigned line;
    } want[] = {
        {"LANG", "go", 2},  {"IMAGE", "golang:1.23", 3}, {"DROP", "/a /b", 5},
        {"LANG", "go2", 6}, {"K_2", "x=y", 7},
    };
    for (size_t i = 0; i < kv.n; i++) {
        assert_string_equal(kv.entries[i].key, want[i].key);
        assert_string_equal(kv.entries[i].value, want[i].value);
        assert_int_equal(kv.entries[i].line, want[i].line);
    }
    /* The last line of a key wins. */
    assert_string_equal(langconf_kv_get(&kv, "LANG"), "go2");
    assert_string_equal(langconf_kv_get(&kv, "IMAGE"), "golang:1.23");
    assert_null(langconf_kv_get(&kv, "RUN"));
    langconf_kv_free(&kv);
    assert_int_equal(kv.n, 0);
    assert_null(kv.entries);

    /* The same grammar errors as the typed view; values are not checked. */
    assert_int_equal(kv_parse("RUN=\nSOURCE=../x\nENV=x\n", &kv, err), 0);
    assert_int_equal(kv.n, 3);
    langconf_kv_free(&kv);
    assert_int_equal(kv_parse("LANG=go\nbad line\n", &kv, err), -EINVAL);
    assert_string_equal(err, "line 2: expected KEY=VALUE");
    assert_int_equal(kv.n, 0);
    assert_int_equal(kv_parse("Lang=go\n", &kv, err), -EINVAL);
    assert_string_equal(err, "line 1: bad key (A-Z, 0-9, _)");
    assert_int_equal(langconf_kv_parse(&kv, "A=1\n\0", 5, err, sizeof(err)),
                     -EINVAL);
    assert_string_equal(err, "contains a NUL byte");
}

static void kv_set_appends(void **state)
{
    (void)state;
    struct langconf_kv kv;
    char err[128];
    assert_int_equal(kv_parse("LANG=go\nTOOLCHAIN=old\n", &kv, err), 0);
    assert_int_equal(langconf_kv_set(&kv, "TOOLCHAIN=go version go1.19.8"), 0);
    assert_int_equal(langconf_kv_set(&kv, "EMPTY="), 0);
    assert_int_equal(kv.n, 4);
    assert_string_equal(langconf_kv_get(&kv, "TOOLCHAIN"),
                        "go version go1.19.8");
    assert_int_equal(kv.entries[2].line, 0);
    assert_string_equal(langconf_kv_get(&kv, "EMPTY"), "");
    static const char *const bad[] = {
        "", "TOOLCHAIN", "=x", "lower=x", "A B=x", " A=x", "A=x\nB=y",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(langconf_kv_set(&kv, bad[i]), -EINVAL);
    assert_int_equal(kv.n, 4);
    langconf_kv_free(&kv);
}

static void kv_words_split_like_commands(void **state)
{
    (void)state;
    struct langconf_kv kv;
    char err[128], **w;
    size_t n;
    assert_int_equal(kv_parse("DROP=/usr/share/doc/* /var/log/*\n"
                              "RUN=./main\n"
                              "DROP=\n"
                              "DROP=  /a\t'/with space/*'  \n",
                              &kv, err),
                     0);
    assert_int_equal(langconf_kv_set(&kv, "DROP=/set"), 0);
    assert_int_equal(langconf_kv_words(&kv, "DROP", &w, &n, err, sizeof(err)),
                     0);
    assert_int_equal(n, 5);
    assert_string_equal(w[0], "/usr/share/doc/*");
    assert_string_equal(w[1], "/var/log/*");
    assert_string_equal(w[2], "/a");
    assert_string_equal(w[3], "/with space/*");
    assert_string_equal(w[4], "/set");
    assert_null(w[5]);
    langconf_free_words(w);

    /* A key with no lines: an empty vector, not NULL. */
    assert_int_equal(
        langconf_kv_words(&kv, "PACKAGES", &w, &n, err, sizeof(err)), 0);
    assert_int_equal(n, 0);
    assert_non_null(w);
    assert_null(w[0]);
    langconf_free_words(w);
    langconf_free_words(NULL);

    /* An unclosed quote names its line (or the --set assignment). */
    assert_int_equal(langconf_kv_set(&kv, "DROP='/x"), 0);
    assert_int_equal(langconf_kv_words(&kv, "DROP", &w, &n, err, sizeof(err)),
                     -EINVAL);
    assert_null(w);
    assert_string_equal(err, "DROP='/x: unclosed quote");
    langconf_kv_free(&kv);
    assert_int_equal(kv_parse("DROP=/a\nDROP=\"/b\n", &kv, err), 0);
    assert_int_equal(langconf_kv_words(&kv, "DROP", &w, &n, err, sizeof(err)),
                     -EINVAL);
    assert_string_equal(err, "line 2: DROP: unclosed quote");
    langconf_kv_free(&kv);

    /* No word limit here: a whole file of one-letter globs. */
    char *many = malloc(LANGCONF_MAX_SIZE + 1);
    assert_non_null(many);
    memcpy(many, "DROP=", 5);
    size_t len = 5;
    while (len + 2 <= LANGCONF_MAX_SIZE) {
        memcpy(many + len, "x ", 2);
        len += 2;
    }
    assert_int_equal(langconf_kv_parse(&kv, many, len, err, sizeof(err)), 0);
    assert_int_equal(langconf_kv_words(&kv, "DROP", &w, &n, err, sizeof(err)),
                     0);
    assert_int_equal(n, (len - 5) / 2);
    assert_string_equal(w[n - 1], "x");
    langconf_free_words(w);
    langconf_kv_free(&kv);
    free(many);
}

static void build_keys_stay_out_of_the_image(void **state)
{
    (void)state;
    static const char *const build[] = {
        "IMAGE",   "PACKAGES", "DROP",  "VERSION_CMD", "WRITABLE",
        "INCLUDE", "VERSION",  "SUITE", "ALIASES",     "DEFAULT"};
    for (size_t i = 0; i < sizeof(build) / sizeof(build[0]); i++)
        assert_true(langconf_is_build_key(build[i]));
    static const char *const runtime[] = {
        "LANG", "TOOLCHAIN", "SOURCE", "BUILD", "RUN",
        "ENV",  "FUTURE",    "",       "image", "DROPS"};
    for (size_t i = 0; i < sizeof(runtime) / sizeof(runtime[0]); i++)
        assert_false(langconf_is_build_key(runtime[i]));

    struct langconf_kv kv;
    char err[128];
    assert_int_equal(kv_parse("LANG=test\nIMAGE=unused\nSOURCE=main.t\n"
                              "DROP=/x\nRUN=./main\nENV=A=b\nPACKAGES=p q\n"
                              "VERSION_CMD=t --version\nWRITABLE=/var\n"
                              "FUTURE=kept\n",
                              &kv, err),
                     0);
    assert_int_equal(langconf_kv_set(&kv, "TOOLCHAIN=t 1.0"), 0);
    assert_int_equal(langconf_kv_set(&kv, "DROP=/y"), 0);
    char *text = langconf_kv_render_runtime(&kv);
    assert_non_null(text);
    assert_string_equal(text, "LANG=test\nSOURCE=main.t\nRUN=./main\n"
                              "ENV=A=b\nFUTURE=kept\nTOOLCHAIN=t 1.0\n");
    free(text);
    langconf_kv_free(&kv);

    assert_int_equal(kv_parse("IMAGE=x\n", &kv, err), 0);
    text = langconf_kv_render_runtime(&kv);
    assert_non_null(text);
    assert_string_equal(text, "");
    free(text);
    langconf_kv_free(&kv);
}

/* A directory of its own, with files name=text, for INCLUDE. */
static void write_in(const char *dir, const char *name, const char *text)
{
    char path[256];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void include_splices_a_file_beside_it(void **state)
{
    (void)state;
    char dir[] = "/tmp/test_langconf_inc.XXXXXX", path[256], err[256];
    assert_non_null(mkdtemp(dir));
    write_in(dir, "lang.conf", "LANG=go\nDEFAULT=1.19\nRUN=./main\n");
    write_in(dir, "1.24.conf", "INCLUDE=lang.conf\nVERSION=1.24\nRUN=./b\n");
    snprintf(path, sizeof(path), "%s/1.24.conf", dir);
    struct langconf_kv kv;
    assert_int_equal(langconf_kv_load(&kv, path, err, sizeof(err)), 0);
    /* In place of the INCLUDE line, in order; a later line still wins. */
    assert_int_equal(kv.n, 5);
    assert_string_equal(kv.entries[0].key, "LANG");
    assert_string_equal(kv.entries[3].key, "VERSION");
    assert_string_equal(langconf_kv_get(&kv, "RUN"), "./b");
    assert_string_equal(langconf_kv_get(&kv, "DEFAULT"), "1.19");
    assert_null(langconf_kv_get(&kv, "INCLUDE"));
    langconf_kv_free(&kv);

    /* Only a file beside it: no paths, no climbing out. */
    static const char *const bad[] = {"INCLUDE=/etc/passwd\n",
                                      "INCLUDE=../x.conf\n", "INCLUDE=..\n",
                                      "INCLUDE=\n", "INCLUDE=.\n"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        write_in(dir, "bad.conf", bad[i]);
        snprintf(path, sizeof(path), "%s/bad.conf", dir);
        assert_int_equal(langconf_kv_load(&kv, path, err, sizeof(err)),
                         -EINVAL);
        assert_non_null(strstr(err, "line 1: INCLUDE names a file beside"));
        assert_int_equal(kv.n, 0);
    }
    /* A missing file names itself; a loop ends. */
    write_in(dir, "bad.conf", "LANG=x\nINCLUDE=nothere.conf\n");
    assert_int_equal(langconf_kv_load(&kv, path, err, sizeof(err)), -ENOENT);
    assert_non_null(strstr(err, "nothere.conf: No such file"));
    write_in(dir, "bad.conf", "LANG=x\nINCLUDE=bad.conf\n");
    assert_int_equal(langconf_kv_load(&kv, path, err, sizeof(err)), -ELOOP);
    assert_non_null(strstr(err, "nested too deep"));
    assert_int_equal(kv.n, 0);
    /* Fan-out is bounded too: 17 includes of a small file. */
    write_in(dir, "small.conf", "A=1\n");
    char many[400] = "";
    for (int i = 0; i < 17; i++)
        strcat(many, "INCLUDE=small.conf\n");
    write_in(dir, "bad.conf", many);
    assert_int_equal(langconf_kv_load(&kv, path, err, sizeof(err)), -ELOOP);
    assert_non_null(strstr(err, "16 files at most"));
    many[strlen(many) - strlen("INCLUDE=small.conf\n")] = '\0';
    write_in(dir, "bad.conf", many);
    assert_int_equal(langconf_kv_load(&kv, path, err, sizeof(err)), 0);
    assert_int_equal(kv.n, 16);
    langconf_kv_free(&kv);
    /* A bad line in the included file names that file and line. */
    write_in(dir, "lang.conf", "LANG=go\nnot a line\n");
    snprintf(path, sizeof(path), "%s/1.24.conf", dir);
    assert_int_equal(langconf_kv_load(&kv, path, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "lang.conf: line 2"));

    char cmd[300];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
}

/* What `make images` does end to end: the builder reads its config, adds
 * TOOLCHAIN, renders the image's lang.conf; the agent parses that. */
static void builder_output_parses_in_the_agent(void **state)
{
    (void)state;
    static const char conf[] = "# Go. Keys: docs/lang-conf.md.\n"
                               "LANG=go\n"
                               "IMAGE=golang:1.23-bookworm\n"
                               "PACKAGES=golang-go\n"
                               "VERSION_CMD=go version\n"
                               "SOURCE=main.go\n"
                               "BUILD=go build -o main main.go\n"
                               "RUN=./main\n"
                               "ENV=GOCACHE=/var/cache/runvm/go-build\n"
                               "ENV=CGO_ENABLED=0\n"
                               "WRITABLE=/var/cache/runvm\n"
                               "DROP=/usr/share/doc/* /usr/share/man/*\n";
    char path[64], err[256];
    struct langconf_kv kv;
    struct langconf lc;

    write_temp(path, conf, strlen(conf));
    assert_int_equal(langconf_kv_load(&kv, path, err, sizeof(err)), 0);
    unlink(path);
    assert_int_equal(langconf_kv_set(&kv, "TOOLCHAIN=go1.19.8"), 0);
    char *text = langconf_kv_render_runtime(&kv);
    assert_non_null(text);
    assert_int_equal(parse(text, &lc, err), 0);
    assert_string_equal(lc.lang, "go");
    assert_string_equal(lc.toolchain, "go1.19.8");
    assert_string_equal(lc.source, "main.go");
    assert_string_equal(lc.build_argv[1], "build");
    assert_string_equal(lc.run_argv[0], "./main");
    assert_int_equal(lc.nenv, 2);
    langconf_free(&lc);
    free(text);

    /* The typed view straight from the builder's entries, --set included:
     * an entry without a line is named by its key. */
    assert_int_equal(langconf_from_kv(&lc, &kv, err, sizeof(err)), 0);
    assert_string_equal(lc.toolchain, "go1.19.8");
    langconf_free(&lc);
    assert_int_equal(langconf_kv_set(&kv, "SOURCE=../x"), 0);
    assert_int_equal(langconf_from_kv(&lc, &kv, err, sizeof(err)), -EINVAL);
    assert_string_equal(err, "SOURCE: SOURCE must be a plain file name");
    langconf_kv_free(&kv);

    assert_int_equal(
        langconf_kv_load(&kv, "/nonexistent/go.conf", err, sizeof(err)),
        -ENOENT);
    assert_string_equal(err, "/nonexistent/go.conf: No such file or directory");
    write_temp(path, "LANG=go\nlang=go\n", 16);
    assert_int_equal(langconf_kv_load(&kv, path, err, sizeof(err)), -EINVAL);
    char want[256];
    snprintf(want, sizeof(want), "%s: line 2: bad key (A-Z, 0-9, _)", path);
    assert_string_equal(err, want);
    unlink(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(full_config),
        cmocka_unit_test(errors_name_the_line),
        cmocka_unit_test(empty_build_means_none),
        cmocka_unit_test(duplicate_keys),
        cmocka_unit_test(line_endings_and_blanks),
        cmocka_unit_test(hostile_inputs),
        cmocka_unit_test(split_words),
        cmocka_unit_test(load_files),
        cmocka_unit_test(kv_keeps_every_line),
        cmocka_unit_test(kv_set_appends),
        cmocka_unit_test(kv_words_split_like_commands),
        cmocka_unit_test(build_keys_stay_out_of_the_image),
        cmocka_unit_test(builder_output_parses_in_the_agent),
        cmocka_unit_test(include_splices_a_file_beside_it),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
