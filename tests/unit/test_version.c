/* protocol/version.c: dotted versions, matched on dot boundaries. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "protocol/version.h"

static void compare(void **state)
{
    (void)state;
    assert_true(version_cmp("0.10.1", "0.9") > 0);
    assert_true(version_cmp("1.24", "1.19") > 0);
    assert_true(version_cmp("1.2", "1.19") < 0);
    assert_int_equal(version_cmp("1.0", "1"), 0);
    assert_int_equal(version_cmp("", ""), 0);
    assert_true(version_cmp("3.13", "3.11.9") > 0);
    assert_true(version_cmp("99999999999999999999999", "1") > 0);
}

static void match_on_dot_boundaries(void **state)
{
    (void)state;
    /* Equal, or a prefix that ends at a dot. */
    assert_true(version_match("1.24", "1.24"));
    assert_true(version_match("1.24", "1.24.3"));
    assert_true(version_match("1", "1.24"));
    assert_true(version_match("3", "3.13"));
    assert_true(version_match("12", "12.2.0"));
    /* Never inside a part. */
    assert_false(version_match("1.2", "1.24"));
    assert_false(version_match("1.24", "1.240"));
    assert_false(version_match("1.24", "1.2"));
    assert_false(version_match("1.24.3", "1.24"));
    assert_false(version_match("2", "12"));
    assert_false(version_match("1", "10.1"));
    /* "*" is any well-formed version. */
    assert_true(version_match("*", "1.19"));
    assert_false(version_match("*", ""));
    /* Malformed wants match nothing. */
    static const char *const bad[] = {"",   ".",     "1.",    ".1",  "1..2",
                                      "1x", "1.2-3", " 1.24", "1.*", "v1"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_false(version_match(bad[i], "1.24"));
}

static void valid(void **state)
{
    (void)state;
    assert_true(version_valid("1", 31));
    assert_true(version_valid("1.24.3", 31));
    assert_false(version_valid("", 31));
    assert_false(version_valid("1.", 31));
    assert_false(version_valid("1..2", 31));
    assert_false(version_valid("1.2a", 31));
    assert_false(version_valid("1234", 3));
    assert_true(version_valid("123", 3));
}

static void from_toolchain_lines(void **state)
{
    (void)state;
    static const struct {
        const char *line, *want;
    } cases[] = {
        {"go version go1.19.8 linux/amd64", "1.19.8"},
        {"go version go1.24.4 linux/arm64", "1.24.4"},
        {"Python 3.11.2", "3.11.2"},
        {"rustc 1.63.0", "1.63.0"},
        {"rustc 1.85.0 (4d91de4e4 2025-02-17) (built from a source tarball)",
         "1.85.0"},
        {"gcc (Debian 12.2.0-14) 12.2.0", "12.2.0"},
        {"x86_64 tool 2 then 4.5", "4.5"}, /* x86_64: one part, not it */
        {"v2.0", "2.0"},
    };
    char out[32];
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        assert_true(version_of_toolchain(cases[i].line, out, sizeof(out)));
        assert_string_equal(out, cases[i].want);
    }
    assert_false(version_of_toolchain("", out, sizeof(out)));
    assert_string_equal(out, "");
    assert_false(version_of_toolchain("no numbers here 7", out, sizeof(out)));
    assert_false(version_of_toolchain("1.2.3.4.5.6", out, 5)); /* too long */
    assert_string_equal(out, "");
}

/* NAME[@VERSION], the one parser of the syntax: good ones split, bad ones
 * refused with out left empty, never read or written past len. */
static void lang_specs(void **state)
{
    (void)state;
    static const struct {
        const char *spec, *name, *version;
    } good[] = {
        {"go", "go", ""},
        {"c++", "c++", ""},
        {"python3_12-x", "python3_12-x", ""},
        {"go@1", "go", "1"},
        {"go@1.24", "go", "1.24"},
        {"go@*", "go", "*"},
        {"a@1.2.3", "a", "1.2.3"},
        {"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa@1111111111111111111111111111111",
         "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "1111111111111111111111111111111"},
    };
    struct lang_spec ls;
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        assert_true(lang_spec_parse(good[i].spec, strlen(good[i].spec), &ls));
        assert_string_equal(ls.name, good[i].name);
        assert_string_equal(ls.version, good[i].version);
    }
    static const char *const bad[] = {"",
                                      "a/b",
                                      "Go",
                                      "go.1",
                                      "go@",
                                      "@1",
                                      "go@1.",
                                      "go@.1",
                                      "go@1..2",
                                      "go@v1",
                                      "go@1@2",
                                      "go@**",
                                      "go@1.2x",
                                      "go@latest",
                                      "go@*1",
                                      "go @1",
                                      "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
                                      "go@11111111111111111111111111111111"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_false(lang_spec_parse(bad[i], strlen(bad[i]), &ls));
        assert_string_equal(ls.name, "");
        assert_string_equal(ls.version, "");
    }
    /* Only len bytes count: a prefix of a longer string (a file name
     * without its suffix), and no NUL inside. */
    assert_true(lang_spec_parse("go@1.24.cpio.gz", 7, &ls));
    assert_string_equal(ls.version, "1.24");
    assert_false(lang_spec_parse("go\0x", 4, &ls));
    assert_false(lang_spec_parse("go@1\0", 5, &ls));
}

int main(void)
{
    const struct CMUnitTest t[] = {
        cmocka_unit_test(compare),    cmocka_unit_test(match_on_dot_boundaries),
        cmocka_unit_test(valid),      cmocka_unit_test(from_toolchain_lines),
        cmocka_unit_test(lang_specs),
    };
    return cmocka_run_group_tests(t, NULL, NULL);
}
