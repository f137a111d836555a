/* initramfs-builder tree: hostile paths must stay inside the tree. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <string.h>
#include <sys/stat.h>

#include "initramfs-builder/tree.h"

struct mem {
    const char *data;
    size_t pos;
};

static ssize_t mem_read(void *opaque, void *buf, size_t len)
{
    struct mem *m = opaque;
    size_t left = strlen(m->data) - m->pos;
    size_t n = left < len ? left : len;
    memcpy(buf, m->data + m->pos, n);
    m->pos += n;
    return (ssize_t)n;
}

static void put(struct tree *t, enum tree_kind kind, const char *name,
                const char *target_or_data)
{
    struct mem m = {target_or_data ? target_or_data : "", 0};
    struct tree_input in = {
        .name = name,
        .kind = kind,
        .perm = kind == TK_DIR ? 0755 : 0644,
        .target = kind == TK_FILE ? NULL : target_or_data,
    };
    assert_int_equal(tree_apply(t, &in, kind == TK_FILE ? mem_read : NULL, &m),
                     0);
}

static int setup(void **state)
{
    static struct tree t;
    if (tree_init(&t, NULL) != 0)
        return -1;
    *state = &t;
    return 0;
}

static int teardown(void **state)
{
    tree_free(*state);
    return 0;
}

static void test_normalize_table(void **state)
{
    (void)state;
    static const struct {
        const char *in, *out;
        int err;
    } cases[] = {
        {"a/b", "a/b", 0},
        {"./a//b/", "a/b", 0},
        {"/abs/x", "abs/x", 0},
        {"a/../b", "b", 0},
        {"a/./b/..", "a", 0},
        {"./", "", 0},
        {"...", "...", 0},
        {"..a/b..", "..a/b..", 0},
        {"../../etc/passwd", NULL, -EPERM},
        {"a/../../x", NULL, -EPERM},
        {"/..", NULL, -EPERM},
        {"./../x", NULL, -EPERM},
    };
    char out[64];
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int err = tree_normalize(cases[i].in, out, sizeof(out));
        assert_int_equal(err, cases[i].err);
        if (!err)
            assert_string_equal(out, cases[i].out);
    }
    char tiny[4];
    assert_int_equal(tree_normalize("abcdef", tiny, sizeof(tiny)),
                     -ENAMETOOLONG);
}

static void test_dotdot_entries_skipped(void **state)
{
    struct tree *t = *state;
    put(t, TK_FILE, "../../etc/passwd", "root::0:0");
    put(t, TK_FILE, "a/../../../x", "x");
    assert_int_equal(t->skipped_unsafe, 2);
    assert_null(tree_lookup(t, "etc/passwd"));
    assert_null(tree_lookup(t, "x"));
    assert_int_equal(t->nlive, 1); /* the root only */
}

static void test_absolute_is_inside(void **state)
{
    struct tree *t = *state;
    put(t, TK_FILE, "/abs", "data");
    struct tree_entry *e = tree_lookup(t, "abs");
    assert_non_null(e);
    assert_true(S_ISREG(e->mode));
    assert_int_equal(e->content->size, 4);
}

static void test_symlink_parent_to_root(void **state)
{
    struct tree *t = *state;
    put(t, TK_SYMLINK, "a", "/");
    put(t, TK_FILE, "a/x", "escaped?");
    put(t, TK_SYMLINK, "up", "../../..");
    put(t, TK_FILE, "up/y", "y");
    /* Written through the links, but inside the tree: at its root. */
    assert_non_null(tree_lookup(t, "x"));
    assert_non_null(tree_lookup(t, "y"));
    assert_null(tree_lookup(t, "a/x"));
    assert_true(S_ISLNK(tree_lookup(t, "a")->mode));
    assert_string_equal(tree_lookup(t, "a")->symlink, "/");
    assert_int_equal(t->skipped_unsafe, 0);
}

static void test_symlink_parent_absolute_target(void **state)
{
    struct tree *t = *state;
    put(t, TK_DIR, "etc", NULL);
    put(t, TK_SYMLINK, "b", "/etc");
    put(t, TK_FILE, "b/passwd", "inside");
    struct tree_entry *e = tree_lookup(t, "etc/passwd");
    assert_non_null(e);
    assert_null(tree_lookup(t, "b/passwd"));
    /* A relative chain: c -> d/e, d -> etc, so c/f lands in etc/e/f. */
    put(t, TK_SYMLINK, "d", "etc");
    put(t, TK_SYMLINK, "c", "d/e");
    put(t, TK_FILE, "c/f", "f");
    assert_non_null(tree_lookup(t, "etc/e/f"));
    assert_true(S_ISDIR(tree_lookup(t, "etc/e")->mode));
}

static void test_symlink_loop_skipped(void **state)
{
    struct tree *t = *state;
    put(t, TK_SYMLINK, "l1", "l2");
    put(t, TK_SYMLINK, "l2", "l1");
    put(t, TK_FILE, "l1/x", "x");
    assert_int_equal(t->skipped_unsafe, 1);
    put(t, TK_SYMLINK, "self", "self/self");
    put(t, TK_FILE, "self/x", "x");
    assert_int_equal(t->skipped_unsafe, 2);
}

static void test_parent_is_file(void **state)
{
    struct tree *t = *state;
    put(t, TK_FILE, "f", "file");
    put(t, TK_FILE, "f/x", "x");
    assert_int_equal(t->skipped_unsafe, 1);
    assert_true(S_ISREG(tree_lookup(t, "f")->mode));
}

static void test_hardlinks(void **state)
{
    struct tree *t = *state;
    put(t, TK_FILE, "bin/a", "payload");
    put(t, TK_HARDLINK, "bin/b", "bin/a");
    struct tree_entry *a = tree_lookup(t, "bin/a"),
                      *b = tree_lookup(t, "bin/b");
    assert_non_null(b);
    assert_ptr_equal(a->content, b->content);
    assert_int_equal(a->content->refs, 2);
    /* Outside the root, missing, not yet present, a directory: skipped. */
    put(t, TK_HARDLINK, "bin/c", "../../etc/shadow");
    put(t, TK_HARDLINK, "bin/d", "bin/missing");
    put(t, TK_HARDLINK, "bin/e", "bin/f");
    put(t, TK_FILE, "bin/f", "later");
    put(t, TK_HARDLINK, "bin/g", "bin");
    assert_int_equal(t->skipped_unsafe, 4);
    assert_null(tree_lookup(t, "bin/c"));
    assert_null(tree_lookup(t, "bin/e"));
    assert_null(tree_lookup(t, "bin/g"));
    /* Replacing one name breaks the link, as unlink + create would. */
    put(t, TK_FILE, "bin/a", "new");
    a = tree_lookup(t, "bin/a");
    b = tree_lookup(t, "bin/b");
    assert_ptr_not_equal(a->content, b->content);
    assert_int_equal(b->content->refs, 1);
    char buf[8] = "";
    assert_int_equal(tree_read_content(t, b->content, 0, buf, 7), 0);
    assert_string_equal(buf, "payload");
}

static void test_devices_skipped(void **state)
{
    struct tree *t = *state;
    put(t, TK_OTHER, "dev/null", NULL);
    put(t, TK_OTHER, "dev/sda", NULL);
    assert_int_equal(t->skipped_devices, 2);
    assert_null(tree_lookup(t, "dev/null"));
}

static void test_root_not_replaceable(void **state)
{
    struct tree *t = *state;
    put(t, TK_FILE, "./", "x");
    put(t, TK_SYMLINK, "/", "/etc");
    struct tree_entry *root = tree_lookup(t, "");
    assert_non_null(root);
    assert_true(S_ISDIR(root->mode));
}

static void test_put_file_and_drop(void **state)
{
    struct tree *t = *state;
    assert_int_equal(
        tree_put_file(t, "etc/runvm/lang.conf", 0644, "LANG=go\n", 8), 0);
    assert_true(S_ISDIR(tree_lookup(t, "etc/runvm")->mode));
    put(t, TK_FILE, "usr/share/doc/go/README", "r");
    put(t, TK_FILE, "usr/share/man/man1/go.1", "m");
    put(t, TK_FILE, "usr/share/go/src/fmt/print_test.go", "t");
    put(t, TK_FILE, "usr/share/go/src/fmt/print.go", "p");
    char *globs[] = {(char *)(uintptr_t) "/usr/share/doc/*",
                     (char *)(uintptr_t) "/usr/share/man",
                     (char *)(uintptr_t) "/usr/share/go/src/*_test.go"};
    unsigned long n = tree_drop_globs(t, globs, 3);
    assert_int_equal(n, 6); /* doc/go, its README, man, man1, go.1, test */
    assert_non_null(tree_lookup(t, "usr/share/doc"));
    assert_null(tree_lookup(t, "usr/share/man"));
    assert_non_null(tree_lookup(t, "usr/share/go/src/fmt/print.go"));
    assert_int_equal(
        tree_put_file(t, "usr/share/go/src/fmt/print.go/x", 0644, "", 0),
        -EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_normalize_table),
        cmocka_unit_test_setup_teardown(test_dotdot_entries_skipped, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_absolute_is_inside, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_symlink_parent_to_root, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_symlink_parent_absolute_target,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_symlink_loop_skipped, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_parent_is_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hardlinks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_devices_skipped, setup, teardown),
        cmocka_unit_test_setup_teardown(test_root_not_replaceable, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_put_file_and_drop, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
