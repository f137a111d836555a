/* initramfs-builder: OCI whiteouts and opaque directories across layers,
 * fed as real tar archives through libarchive; the cpio written from the
 * result is deterministic and holds no setuid or setgid entry. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "initramfs-builder/cpio.h"
#include "initramfs-builder/layer.h"
#include "initramfs-builder/progress.h"
#include "initramfs-builder/tree.h"

/* One tar member: type 'd', 'f', 'l' (symlink), 'h' (hard link), 'c'
 * (char device). */
struct member {
    char type;
    const char *name;
    const char *data; /* file data or link target */
};

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

static char tmpdir[] = "/tmp/test_whiteout.XXXXXX";
static int layer_no;

/* Writes a tar (gzip-compressed every other layer, to exercise filters)
 * and returns its path. Members are owned by `owner` (group too) and get
 * the permissions in `perm`, or each type's below when it is NULL. */
static char *make_layer_as(const struct member *m, size_t n, const mode_t *perm,
                           unsigned owner)
{
    static char path[256];
    snprintf(path, sizeof(path), "%s/layer%d.tar", tmpdir, ++layer_no);
    struct archive *a = archive_write_new();
    archive_write_set_format_pax_restricted(a);
    if (layer_no % 2 == 0)
        archive_write_add_filter_gzip(a);
    assert_int_equal(archive_write_open_filename(a, path), ARCHIVE_OK);
    for (size_t i = 0; i < n; i++) {
        struct archive_entry *e = archive_entry_new();
        archive_entry_set_pathname(e, m[i].name);
        archive_entry_set_uid(e, owner);
        archive_entry_set_gid(e, owner);
        switch (m[i].type) {
        case 'd':
            archive_entry_set_filetype(e, AE_IFDIR);
            archive_entry_set_perm(e, 0750);
            break;
        case 'f':
            archive_entry_set_filetype(e, AE_IFREG);
            archive_entry_set_perm(e, 04755);
            archive_entry_set_size(e, (la_int64_t)strlen(m[i].data));
            break;
        case 'l':
            archive_entry_set_filetype(e, AE_IFLNK);
            archive_entry_set_perm(e, 0777);
            archive_entry_set_symlink(e, m[i].data);
            break;
        case 'h':
            archive_entry_set_filetype(e, AE_IFREG);
            archive_entry_set_perm(e, 0644);
            archive_entry_set_hardlink(e, m[i].data);
            break;
        case 'c':
            archive_entry_set_filetype(e, AE_IFCHR);
            archive_entry_set_perm(e, 0666);
            archive_entry_set_rdev(e, makedev(1, 3));
            break;
        }
        if (perm)
            archive_entry_set_perm(e, perm[i]);
        assert_int_equal(archive_write_header(a, e), ARCHIVE_OK);
        if (m[i].type == 'f')
            archive_write_data(a, m[i].data, strlen(m[i].data));
        archive_entry_free(e);
    }
    archive_write_close(a);
    archive_write_free(a);
    return path;
}

static char *make_layer(const struct member *m, size_t n)
{
    return make_layer_as(m, n, NULL, 1000);
}

#define APPLY(t, ...)                                                          \
    do {                                                                       \
        static const struct member ms_[] = {__VA_ARGS__};                      \
        assert_int_equal(                                                      \
            layer_apply_file(t, make_layer(ms_, sizeof(ms_) / sizeof(ms_[0])), \
                             NULL),                                            \
            0);                                                                \
    } while (0)

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

static void test_whiteout_file(void **state)
{
    struct tree *t = *state;
    APPLY(t, {'d', "d/", NULL}, {'f', "d/f1", "one"}, {'f', "d/f2", "two"});
    APPLY(t, {'f', "d/.wh.f1", ""});
    assert_null(tree_lookup(t, "d/f1"));
    assert_null(tree_lookup(t, "d/.wh.f1"));
    struct tree_entry *f2 = tree_lookup(t, "d/f2");
    assert_non_null(f2);
    assert_int_equal(f2->mode, S_IFREG | 0755); /* 04755 in the layer */
    assert_int_equal(f2->uid, 1000);
    assert_int_equal(t->whiteouts, 1);
}

static void test_whiteout_missing_is_noop(void **state)
{
    struct tree *t = *state;
    APPLY(t, {'f', "keep", "k"});
    APPLY(t, {'f', ".wh.nothing", ""}, {'f', "no/such/dir/.wh.x", ""},
          {'f', ".wh.", ""}, {'f', ".wh..", ""});
    assert_non_null(tree_lookup(t, "keep"));
    assert_int_equal(t->skipped_unsafe, 0);
}

static void test_whiteout_directory(void **state)
{
    struct tree *t = *state;
    APPLY(t, {'d', "d/", NULL}, {'d', "d/sub/", NULL}, {'f', "d/sub/deep", "x"},
          {'f', "dd", "prefix sibling"});
    APPLY(t, {'f', ".wh.d", ""});
    assert_null(tree_lookup(t, "d"));
    assert_null(tree_lookup(t, "d/sub"));
    assert_null(tree_lookup(t, "d/sub/deep"));
    assert_non_null(tree_lookup(t, "dd"));
}

static void test_opaque_directory(void **state)
{
    struct tree *t = *state;
    APPLY(t, {'d', "d/", NULL}, {'f', "d/a", "a"}, {'d', "d/s/", NULL},
          {'f', "d/s/b", "b"}, {'f', "other", "o"});
    /* c comes before the marker in the same layer and must survive. */
    APPLY(t, {'d', "d/", NULL}, {'f', "d/c", "c"}, {'f', "d/.wh..wh..opq", ""},
          {'f', "d/e", "e"});
    assert_null(tree_lookup(t, "d/a"));
    assert_null(tree_lookup(t, "d/s"));
    assert_null(tree_lookup(t, "d/s/b"));
    assert_non_null(tree_lookup(t, "d/c"));
    assert_non_null(tree_lookup(t, "d/e"));
    assert_non_null(tree_lookup(t, "d"));
    assert_non_null(tree_lookup(t, "other"));
    assert_null(tree_lookup(t, "d/.wh..wh..opq"));
}

static void test_whiteout_same_layer_does_not_hide(void **state)
{
    struct tree *t = *state;
    APPLY(t, {'f', "x", "new"}, {'f', ".wh.x", ""});
    assert_non_null(tree_lookup(t, "x"));
}

static void test_type_changes_across_layers(void **state)
{
    struct tree *t = *state;
    APPLY(t, {'d', "p/", NULL}, {'f', "p/q", "q"}, {'f', "r", "r"});
    APPLY(t, {'f', "p", "now a file"}, {'d', "r/", NULL}, {'f', "r/s", "s"});
    assert_true(S_ISREG(tree_lookup(t, "p")->mode));
    assert_null(tree_lookup(t, "p/q"));
    assert_true(S_ISDIR(tree_lookup(t, "r")->mode));
    assert_non_null(tree_lookup(t, "r/s"));
}

static void test_hostile_layer(void **state)
{
    struct tree *t = *state;
    APPLY(t, {'f', "../../etc/passwd", "evil"}, {'f', "/abs", "abs"},
          {'l', "a", "/"}, {'f', "a/x", "via link"},
          {'h', "hl", "../../etc/shadow"}, {'h', "hl2", "notyet"},
          {'f', "notyet", "n"}, {'c', "dev/null", NULL},
          {'f', "../.wh.abs", ""}, {'l', "s", "d"}, {'d', "d/", NULL},
          {'f', "d/f", "f"});
    APPLY(t, {'f', "s/.wh.f", ""});
    assert_null(tree_lookup(t, "etc/passwd"));
    assert_non_null(tree_lookup(t, "abs"));
    assert_non_null(tree_lookup(t, "x"));
    assert_null(tree_lookup(t, "hl"));
    assert_null(tree_lookup(t, "hl2"));
    assert_null(tree_lookup(t, "dev/null"));
    assert_null(tree_lookup(t, "d/f")); /* whiteout through s -> d */
    assert_int_equal(t->skipped_devices, 1);
    assert_int_equal(t->skipped_unsafe, 4);
}

/* Applies one entry without data straight to the tree (no tar). */
static void put(struct tree *t, enum tree_kind kind, const char *fmt, ...)
{
    char name[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name, sizeof(name), fmt, ap);
    va_end(ap);
    struct tree_input in = {.name = name, .kind = kind, .perm = 0755};
    assert_int_equal(tree_apply(t, &in, NULL, NULL), 0);
}

static void test_whiteout_dir_in_its_own_layer(void **state)
{
    struct tree *t = *state;
    /* A whiteout hides only lower layers: d/b, written in the whiteout's
     * own layer, stays and keeps d; d/a from below goes. */
    APPLY(t, {'d', "d/", NULL}, {'f', "d/a", "a"}, {'d', "d/s/", NULL},
          {'f', "d/s/old", "o"});
    APPLY(t, {'f', "d/b", "b"}, {'f', "d/s/new", "n"}, {'f', ".wh.d", ""},
          {'f', ".wh.d", ""});
    assert_null(tree_lookup(t, "d/a"));
    assert_null(tree_lookup(t, "d/s/old"));
    assert_non_null(tree_lookup(t, "d/s/new"));
    assert_non_null(tree_lookup(t, "d/b"));
    assert_true(S_ISDIR(tree_lookup(t, "d")->mode));
    /* A later layer's whiteout takes everything. */
    APPLY(t, {'f', ".wh.d", ""});
    assert_null(tree_lookup(t, "d"));
    assert_null(tree_lookup(t, "d/b"));
    assert_null(tree_lookup(t, "d/s/new"));
    assert_int_equal(t->nlive, 1);
}

/* Removing what whiteouts hide costs in proportion to what goes (and to
 * the marker count), never to the size of the tree: issue #17 measured
 * 20 000 directory whiteouts at 7.6 s, four times as long for twice as
 * many, each one scanning every entry. */
#define MANY               3000
#define LINEAR_BOUND(work) (4ul * (work))

static void test_whiteouts_linear(void **state)
{
    struct tree *t = *state;
    for (int i = 0; i < MANY; i++) {
        put(t, TK_DIR, "d%d", i);
        put(t, TK_FILE, "d%d/f", i);
        put(t, TK_FILE, "keep%d", i);
    }
    tree_next_layer(t);
    for (int i = 0; i < MANY; i++)
        put(t, TK_FILE, ".wh.d%d", i);
    assert_int_equal(t->nlive, 1 + MANY);
    /* 2 * MANY entries removed by MANY markers. */
    assert_in_range(t->removal_steps, 0, LINEAR_BOUND(3 * MANY));
}

static void test_opaque_dirs_linear(void **state)
{
    struct tree *t = *state;
    for (int i = 0; i < MANY; i++) {
        put(t, TK_DIR, "d%d", i);
        put(t, TK_FILE, "d%d/f", i);
        put(t, TK_FILE, "keep%d", i);
    }
    tree_next_layer(t);
    for (int i = 0; i < MANY; i++)
        put(t, TK_FILE, "d%d/.wh..wh..opq", i);
    assert_int_equal(t->nlive, 1 + 2 * MANY);
    assert_null(tree_lookup(t, "d7/f"));
    assert_in_range(t->removal_steps, 0, LINEAR_BOUND(2 * MANY));
}

static void test_repeated_markers_linear(void **state)
{
    struct tree *t = *state;
    /* One big directory, its lower half gone, then marker after marker
     * for it (and for everything in it) in the layer that refilled it:
     * only the first has anything to do. */
    put(t, TK_DIR, "big");
    for (int i = 0; i < MANY; i++)
        put(t, TK_FILE, "big/old%d", i);
    tree_next_layer(t);
    for (int i = 0; i < MANY; i++) {
        put(t, TK_DIR, "big/new%d", i);
        put(t, TK_FILE, "big/new%d/f", i);
    }
    for (int i = 0; i < MANY; i++) {
        put(t, TK_FILE, "big/.wh..wh..opq");
        put(t, TK_FILE, ".wh.big");
        put(t, TK_FILE, "big/new%d/.wh..wh..opq", i);
    }
    assert_int_equal(t->nlive, 2 + 2 * MANY);
    assert_null(tree_lookup(t, "big/old0"));
    assert_non_null(tree_lookup(t, "big/new0/f"));
    assert_in_range(t->removal_steps, 0, LINEAR_BOUND(6 * MANY));
}

static void read_file(const char *path, char **buf, size_t *len)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    *len = (size_t)ftell(f);
    rewind(f);
    *buf = malloc(*len + 1);
    assert_int_equal(fread(*buf, 1, *len, f), *len);
    fclose(f);
}

static void test_cpio_deterministic(void **state)
{
    struct tree *t = *state;
    APPLY(t, {'d', "z/", NULL}, {'f', "z/b", "bee"}, {'f', "a", "alpha"},
          {'h', "z/link", "a"}, {'l', "sym", "z/b"}, {'d', "z/y/", NULL});
    char p1[300], p2[300];
    struct cpio_stats st1, st2;
    for (int c = CPIO_NONE; c <= CPIO_GZIP; c++) {
        snprintf(p1, sizeof(p1), "%s/one.cpio", tmpdir);
        snprintf(p2, sizeof(p2), "%s/two.cpio", tmpdir);
        assert_int_equal(cpio_write_tree(t, p1, c, &st1), 0);
        assert_int_equal(cpio_write_tree(t, p2, c, &st2), 0);
        char *b1, *b2;
        size_t l1, l2;
        read_file(p1, &b1, &l1);
        read_file(p2, &b2, &l2);
        assert_int_equal(l1, l2);
        assert_memory_equal(b1, b2, l1);
        assert_int_equal(st1.compressed_bytes, l1);
        free(b1);
        free(b2);
    }
    /* Read it back: sorted names, parents first, mtime 0, the hard-link
     * pair sharing an inode with the data on the later name. */
    static const char *const want[] = {"a", "sym", "z", "z/b", "z/link", "z/y"};
    struct archive *a = archive_read_new();
    archive_read_support_filter_all(a);
    archive_read_support_format_cpio(a);
    assert_int_equal(archive_read_open_filename(a, p1, 4096), ARCHIVE_OK);
    struct archive_entry *e;
    size_t i = 0;
    la_int64_t ino_a = -1;
    while (archive_read_next_header(a, &e) == ARCHIVE_OK) {
        assert_true(i < 6);
        assert_string_equal(archive_entry_pathname(e), want[i]);
        assert_int_equal(archive_entry_mtime(e), 0);
        if (i == 0) {
            ino_a = archive_entry_ino64(e);
            assert_int_equal(archive_entry_nlink(e), 2);
            assert_int_equal(archive_entry_size(e), 0);
        }
        if (i == 4) {
            assert_int_equal(archive_entry_ino64(e), ino_a);
            char buf[16] = "";
            assert_int_equal(archive_read_data(a, buf, sizeof(buf)), 5);
            assert_string_equal(buf, "alpha");
        }
        if (i == 1)
            assert_string_equal(archive_entry_symlink(e), "z/b");
        i++;
    }
    assert_int_equal(i, 6);
    archive_read_free(a);
}

/* No entry keeps a setuid or setgid bit, whatever kind it is and however
 * it came (file, hard link, a directory over a directory): the guest runs
 * snippets as an unprivileged user, and a setuid-root su from the image
 * would make them root (issue #17). The sticky bit stays. */
static void test_setid_cleared(void **state)
{
    struct tree *t = *state;
    static const struct member lower[] = {
        {'d', "usr/", NULL},        {'d', "usr/bin/", NULL},
        {'f', "usr/bin/su", "su"},  {'f', "usr/bin/wall", "wall"},
        {'f', "usr/bin/both", "b"}, {'h', "usr/bin/su-link", "usr/bin/su"},
        {'d', "tmp/", NULL},        {'d', "var/", NULL},
        {'d', "var/mail/", NULL},   {'f', "plain", "p"},
    };
    static const mode_t lower_perm[] = {
        0755, 0755, 04755, 02755, 06711, 04755, 01777, 0755, 02775, 0644,
    };
    /* A directory over a directory takes the upper one's mode. */
    static const struct member upper[] = {{'d', "tmp/", NULL}};
    static const mode_t upper_perm[] = {05777};
    _Static_assert(ARRAY_LEN(lower) == ARRAY_LEN(lower_perm), "lower");
    _Static_assert(ARRAY_LEN(upper) == ARRAY_LEN(upper_perm), "upper");
    char *layer = make_layer_as(lower, ARRAY_LEN(lower), lower_perm, 0);
    assert_int_equal(layer_apply_file(t, layer, NULL), 0);
    layer = make_layer_as(upper, ARRAY_LEN(upper), upper_perm, 0);
    assert_int_equal(layer_apply_file(t, layer, NULL), 0);
    static const struct {
        const char *path;
        mode_t mode;
    } want[] = {
        {"plain", S_IFREG | 0644},
        {"tmp", S_IFDIR | 01777},
        {"usr", S_IFDIR | 0755},
        {"usr/bin", S_IFDIR | 0755},
        {"usr/bin/both", S_IFREG | 0711},
        {"usr/bin/su", S_IFREG | 0755},
        {"usr/bin/su-link", S_IFREG | 0755},
        {"usr/bin/wall", S_IFREG | 0755},
        {"var", S_IFDIR | 0755},
        {"var/mail", S_IFDIR | 0775},
    };
    const size_t nwant = ARRAY_LEN(want);
    for (size_t i = 0; i < nwant; i++) {
        struct tree_entry *e = tree_lookup(t, want[i].path);
        assert_non_null(e);
        assert_int_equal(e->mode, want[i].mode);
        assert_int_equal(e->uid, 0);
    }
    /* su, wall, both, su-link, var/mail; then tmp again. */
    assert_int_equal(t->cleared_setid, 6);

    /* What the guest unpacks: the same modes in the cpio. */
    char path[300];
    struct cpio_stats st;
    snprintf(path, sizeof(path), "%s/setid.cpio", tmpdir);
    assert_int_equal(cpio_write_tree(t, path, CPIO_NONE, &st), 0);
    struct archive *a = archive_read_new();
    archive_read_support_format_cpio(a);
    assert_int_equal(archive_read_open_filename(a, path, 4096), ARCHIVE_OK);
    struct archive_entry *e;
    size_t i = 0;
    while (archive_read_next_header(a, &e) == ARCHIVE_OK) {
        assert_true(i < nwant);
        assert_string_equal(archive_entry_pathname(e), want[i].path);
        assert_int_equal(archive_entry_mode(e), want[i].mode);
        assert_int_equal(archive_entry_uid(e), 0);
        i++;
    }
    assert_int_equal(i, nwant);
    archive_read_free(a);
}

static int group_setup(void **state)
{
    (void)state;
    progress_set_quiet(1);
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int group_teardown(void **state)
{
    (void)state;
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_whiteout_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_whiteout_missing_is_noop, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_whiteout_directory, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_opaque_directory, setup, teardown),
        cmocka_unit_test_setup_teardown(test_whiteout_same_layer_does_not_hide,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_type_changes_across_layers, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_hostile_layer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_whiteout_dir_in_its_own_layer,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_whiteouts_linear, setup, teardown),
        cmocka_unit_test_setup_teardown(test_opaque_dirs_linear, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_repeated_markers_linear, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_cpio_deterministic, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_setid_cleared, setup, teardown),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
