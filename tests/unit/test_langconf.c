#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <string.h>

#include "protocol/langconf.h"

static int parse(const char *text, struct langconf *lc, char *err)
{
    return langconf_parse(text, strlen(text), lc, err, 128);
}

static void full_config(void **state)
{
    (void)state;
    struct langconf lc;
    char err[128];
    assert_int_equal(
        parse("# Go image\r\n"
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
    assert_string_equal(lc.env[1], "CGO_ENABLED=0");
    langconf_free(&lc);
}

static void errors_name_the_line(void **state)
{
    (void)state;
    struct langconf lc;
    char err[128];
    static const struct {
        const char *text;
        const char *msg;
    } bad[] = {
        {"LANG=go\nno equals sign\n", "line 2: expected KEY=VALUE"},
        {"RUN=echo 'unclosed\n", "line 1: unclosed quote"},
        {"RUN=\n", "line 1: RUN needs a command"},
        {"SOURCE=../x.go\n", "line 1: SOURCE must be a plain file name"},
        {"ENV=novalue\n", "line 1: ENV wants NAME=VALUE"},
        {"lang=go\n", "line 1: bad key (A-Z, 0-9, _)"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(parse(bad[i].text, &lc, err), -EINVAL);
        assert_string_equal(err, bad[i].msg);
    }
    assert_int_equal(langconf_parse("A=\0", 3, &lc, err, sizeof(err)),
                     -EINVAL);
}

static void empty_build_means_none(void **state)
{
    (void)state;
    struct langconf lc;
    char err[128];
    assert_int_equal(parse("BUILD=\nRUN=python3 main.py\n", &lc, err), 0);
    assert_false(lc.has_build);
    assert_true(lc.has_run);
    langconf_free(&lc);
    assert_int_equal(
        langconf_load("/nonexistent/lang.conf", &lc, err, sizeof(err)),
        -ENOENT);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(full_config),
        cmocka_unit_test(errors_name_the_line),
        cmocka_unit_test(empty_build_means_none),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
