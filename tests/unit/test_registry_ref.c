/* initramfs-builder: image references, loopback detection, digests. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <string.h>

#include "initramfs-builder/digest.h"
#include "initramfs-builder/registry.h"

static void test_refs(void **state)
{
    (void)state;
    static const struct {
        const char *in, *host, *api, *repo, *ref;
        int http;
    } cases[] = {
        {"golang:1.23-bookworm", "docker.io", "registry-1.docker.io",
         "library/golang", "1.23-bookworm", 0},
        {"golang", "docker.io", "registry-1.docker.io", "library/golang",
         "latest", 0},
        {"user/img:tag", "docker.io", "registry-1.docker.io", "user/img", "tag",
         0},
        {"ghcr.io/o/r/x:v1", "ghcr.io", "ghcr.io", "o/r/x", "v1", 0},
        {"127.0.0.1:5000/t/img:x", "127.0.0.1:5000", "127.0.0.1:5000", "t/img",
         "x", 1},
        {"localhost/img", "localhost", "localhost", "img", "latest", 1},
        {"[::1]:5000/img:t", "[::1]:5000", "[::1]:5000", "img", "t", 1},
        {"registry.example:443/img@sha256:"
         "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
         "registry.example:443", "registry.example:443", "img",
         "sha256:"
         "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
         0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct registry_ref r;
        assert_int_equal(registry_parse_ref(cases[i].in, &r), 0);
        assert_string_equal(r.host, cases[i].host);
        assert_string_equal(r.api_host, cases[i].api);
        assert_string_equal(r.repo, cases[i].repo);
        assert_string_equal(r.ref, cases[i].ref);
        assert_int_equal(r.plain_http, cases[i].http);
    }
}

static void test_bad_refs(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "",
        ":tag",
        "img:",
        "Upper/case",
        "img@sha256:short",
        "img@md5:d41d8cd98f00b204e9800998ecf8427e",
        "a b",
        "img?x=1",
        "host.io/img:t/../x",
        "img#frag",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct registry_ref r;
        assert_int_equal(registry_parse_ref(bad[i], &r), -EINVAL);
    }
}

static void test_loopback(void **state)
{
    (void)state;
    assert_true(registry_host_is_loopback("127.0.0.1:5000"));
    assert_true(registry_host_is_loopback("127.255.1.2"));
    assert_true(registry_host_is_loopback("localhost:80"));
    assert_true(registry_host_is_loopback("[::1]:5000"));
    assert_false(registry_host_is_loopback("128.0.0.1"));
    assert_false(registry_host_is_loopback("127.0.0.1.evil.com"));
    assert_false(registry_host_is_loopback("localhost.evil.com"));
    assert_false(registry_host_is_loopback("docker.io"));
    assert_false(registry_host_is_loopback("127.0.0.256"));
}

static void test_digests(void **state)
{
    (void)state;
    char d[DIGEST_STR_LEN + 1];
    digest_buffer("", 0, d);
    assert_string_equal(d, "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e46"
                           "49b934ca495991b7852b855");
    assert_true(digest_valid(d));
    assert_int_equal(digest_check_buffer("", 0, d, "empty"), 0);
    assert_int_equal(digest_check_buffer("x", 1, d, "x"), -EBADMSG);
    d[10] = 'A';
    assert_false(digest_valid(d));
    assert_false(digest_valid("sha256:abc"));
    assert_false(digest_valid("sha512:e3b0c44298fc1c149afbf4c8996fb92427ae41"
                              "e4649b934ca495991b7852b855"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_refs),
        cmocka_unit_test(test_bad_refs),
        cmocka_unit_test(test_loopback),
        cmocka_unit_test(test_digests),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
