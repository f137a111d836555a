/* initramfs-builder: what a hostile image cannot make the builder do. It
 * cannot pull a blob past the size its manifest declares or past the cap,
 * nor unpack more bytes or entries than the caps allow; each refusal names
 * the cap. Nor can a layer start a decompressor program. Blobs come from a
 * registry served on loopback by a thread of this test. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <archive.h>
#include <archive_entry.h>
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "initramfs-builder/digest.h"
#include "initramfs-builder/image.h"
#include "initramfs-builder/layer.h"
#include "initramfs-builder/limits.h"
#include "initramfs-builder/progress.h"
#include "initramfs-builder/registry.h"
#include "initramfs-builder/tree.h"

static char tmpdir[] = "/tmp/test_hostile_image.XXXXXX";

/* ---- stderr capture: the messages are part of the contract ------------ */

static int saved_stderr = -1;
static char captured[8192];

static void capture_begin(void)
{
    char path[256];
    snprintf(path, sizeof(path), "%s/stderr", tmpdir);
    fflush(stderr);
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    assert_true(fd >= 0);
    saved_stderr = dup(2);
    assert_true(saved_stderr >= 0);
    assert_int_equal(dup2(fd, 2), 2);
    close(fd);
}

/* Ends the capture; returns what was written to stderr. */
static const char *capture_end(void)
{
    fflush(stderr);
    ssize_t n = pread(2, captured, sizeof(captured) - 1, 0);
    captured[n > 0 ? n : 0] = '\0';
    dup2(saved_stderr, 2);
    close(saved_stderr);
    saved_stderr = -1;
    return captured;
}

#define assert_mentions(text, needle)                                          \
    do {                                                                       \
        if (!strstr((text), (needle)))                                         \
            fail_msg("\"%s\" not in: %s", (needle), (text));                   \
    } while (0)

/* ---- a layer ------------------------------------------------------------ */

/* A tar holding `files` regular files of `size` bytes each, in memory. */
static size_t make_tar(char *buf, size_t cap, int files, size_t size)
{
    struct archive *a = archive_write_new();
    size_t used = 0;
    char *data = malloc(size ? size : 1);
    assert_non_null(data);
    memset(data, 'x', size);
    archive_write_set_format_pax_restricted(a);
    assert_int_equal(archive_write_open_memory(a, buf, cap, &used), ARCHIVE_OK);
    for (int i = 0; i < files; i++) {
        struct archive_entry *e = archive_entry_new();
        char name[32];
        snprintf(name, sizeof(name), "file%d", i);
        archive_entry_set_pathname(e, name);
        archive_entry_set_filetype(e, AE_IFREG);
        archive_entry_set_perm(e, 0644);
        archive_entry_set_size(e, (la_int64_t)size);
        assert_int_equal(archive_write_header(a, e), ARCHIVE_OK);
        assert_int_equal(archive_write_data(a, data, size), (la_ssize_t)size);
        archive_entry_free(e);
    }
    assert_int_equal(archive_write_close(a), ARCHIVE_OK);
    archive_write_free(a);
    free(data);
    return used;
}

static const char *write_file(const char *name, const void *data, size_t len)
{
    static char path[512];
    snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
    return path;
}

/* ---- caps of the tree ---------------------------------------------------*/

static ssize_t read_bytes(void *opaque, void *buf, size_t len)
{
    size_t *left = opaque, n = *left < len ? *left : len;
    memset(buf, 'y', n);
    *left -= n;
    return (ssize_t)n;
}

static int put_file(struct tree *t, const char *name, size_t size)
{
    struct tree_input in = {.name = name, .kind = TK_FILE, .perm = 0644};
    return tree_apply(t, &in, read_bytes, &size);
}

static void test_tree_byte_cap(void **state)
{
    (void)state;
    struct tree t;
    char why[256];
    assert_int_equal(tree_init(&t, NULL), 0);
    t.max_bytes = 100000;
    assert_int_equal(put_file(&t, "a", 60000), 0);
    assert_int_equal(put_file(&t, "b", 40000), 0);
    /* One byte past it, a file split over several reads, fails. */
    assert_int_equal(put_file(&t, "c", 1), -EDQUOT);
    assert_int_equal(t.cap_hit, TREE_CAP_BYTES);
    assert_null(tree_lookup(&t, "c"));
    /* What was spooled counts, though a later layer replaces it. */
    tree_next_layer(&t);
    assert_int_equal(put_file(&t, "a", 1), -EDQUOT);
    limits_tree_cap_text(&t, why, sizeof(why));
    assert_mentions(why, "more than 97.7 KiB of file contents");
    assert_mentions(why, "--max-unpacked-size");
    assert_mentions(why, "RUNVM_BUILDER_MAX_UNPACKED_SIZE");
    tree_free(&t);
}

static void test_tree_entry_cap(void **state)
{
    (void)state;
    struct tree t;
    char why[256];
    assert_int_equal(tree_init(&t, NULL), 0);
    t.max_entries = 4; /* the root and three more */
    assert_int_equal(put_file(&t, "a", 0), 0);
    assert_int_equal(put_file(&t, "b", 0), 0);
    assert_int_equal(put_file(&t, "c", 0), 0);
    assert_int_equal(put_file(&t, "d", 0), -EDQUOT);
    assert_int_equal(t.cap_hit, TREE_CAP_ENTRIES);
    /* Parents count too, and the cap is not mistaken for an unsafe
     * entry to skip. */
    assert_int_equal(put_file(&t, "x/y/z", 0), -EDQUOT);
    assert_int_equal(t.skipped_unsafe, 0);
    /* Live entries count: a whiteout makes room. */
    tree_next_layer(&t);
    struct tree_input wh = {.name = ".wh.a", .kind = TK_FILE};
    assert_int_equal(tree_apply(&t, &wh, NULL, NULL), 0);
    assert_int_equal(put_file(&t, "d", 0), 0);
    limits_tree_cap_text(&t, why, sizeof(why));
    assert_mentions(why, "more than 4 entries");
    assert_mentions(why, "--max-entries");
    tree_free(&t);
}

static void test_layer_cap_message(void **state)
{
    (void)state;
    static char tar[64 << 10];
    struct tree t;
    size_t len = make_tar(tar, sizeof(tar), 3, 1000);
    const char *path = write_file("three.tar", tar, len);
    assert_int_equal(tree_init(&t, NULL), 0);
    t.max_bytes = 2500;
    capture_begin();
    int err = layer_apply_file(&t, path, "layer 1/1");
    const char *msg = capture_end();
    assert_int_equal(err, -EDQUOT);
    assert_mentions(msg, "layer 1/1: file2: the image unpacks to more than "
                         "2.4 KiB of file contents");
    assert_mentions(msg, "--max-unpacked-size");
    tree_free(&t);

    assert_int_equal(tree_init(&t, NULL), 0);
    t.max_entries = 3;
    capture_begin();
    err = layer_apply_file(&t, path, "layer 1/1");
    msg = capture_end();
    assert_int_equal(err, -EDQUOT);
    assert_mentions(msg, "file2: the image has more than 3 entries");
    tree_free(&t);
}

/* ---- sizes and the environment -------------------------------------------*/

static void test_parse_sizes(void **state)
{
    (void)state;
    static const struct {
        const char *in;
        uint64_t want;
    } good[] = {
        {"1", 1},
        {"4096", 4096},
        {"10K", 10240},
        {"10k", 10240},
        {"1KiB", 1024},
        {"512M", 512ull << 20},
        {"4G", 4ull << 30},
        {"2TiB", 2ull << 40},
        {"16777215T", 16777215ull << 40},
    };
    static const char *const bad[] = {
        "",
        "0",
        "0G",
        "-1",
        "G",
        "10X",
        "10KB",
        "1.5G",
        "10 K",
        " 10",
        "18446744073709551616",
        "16777216T",
        "4Gi",
    };
    uint64_t v;
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        assert_int_equal(limits_parse_size(good[i].in, &v), 0);
        assert_int_equal(v, good[i].want);
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (limits_parse_size(bad[i], &v) != -EINVAL)
            fail_msg("size \"%s\" accepted", bad[i]);
    assert_int_equal(limits_parse_count("1000000", &v), 0);
    assert_int_equal(v, 1000000);
    assert_int_equal(limits_parse_count("0", &v), -EINVAL);
    assert_int_equal(limits_parse_count("1K", &v), -EINVAL);
    assert_int_equal(limits_parse_count("", &v), -EINVAL);

    char buf[32];
    limits_format_size(4ull << 30, buf, sizeof(buf));
    assert_string_equal(buf, "4 GiB");
    limits_format_size(1536ull << 10, buf, sizeof(buf));
    assert_string_equal(buf, "1.5 MiB");
    limits_format_size(1000, buf, sizeof(buf));
    assert_string_equal(buf, "1000 bytes");
}

static void test_limits_from_env(void **state)
{
    (void)state;
    struct builder_limits l;
    char why[256];
    limits_default(&l);
    assert_int_equal(l.max_blob, 4ull << 30);
    assert_int_equal(l.max_unpacked, 8ull << 30);
    assert_int_equal(l.max_entries, 1000000);
    setenv("RUNVM_BUILDER_MAX_BLOB_SIZE", "1M", 1);
    setenv("RUNVM_BUILDER_MAX_UNPACKED_SIZE", "", 1); /* empty: unset */
    setenv("RUNVM_BUILDER_MAX_ENTRIES", "12", 1);
    assert_int_equal(limits_from_env(&l, why, sizeof(why)), 0);
    assert_int_equal(l.max_blob, 1 << 20);
    assert_int_equal(l.max_unpacked, 8ull << 30);
    assert_int_equal(l.max_entries, 12);
    setenv("RUNVM_BUILDER_MAX_UNPACKED_SIZE", "lots", 1);
    assert_int_equal(limits_from_env(&l, why, sizeof(why)), -EINVAL);
    assert_mentions(why, "RUNVM_BUILDER_MAX_UNPACKED_SIZE=lots");
    unsetenv("RUNVM_BUILDER_MAX_BLOB_SIZE");
    unsetenv("RUNVM_BUILDER_MAX_UNPACKED_SIZE");
    unsetenv("RUNVM_BUILDER_MAX_ENTRIES");
}

/* ---- a registry on loopback ---------------------------------------------*/

/* What the registry serves: one image, whose manifest tags declare the
 * layer's size in different ways. Set before each pull; the server only
 * reads it while the pull waits for its answers. */
static struct {
    pthread_mutex_t lock;
    int listen_fd;
    int port;
    char *blob;
    size_t blob_len;
    char digest[DIGEST_STR_LEN + 1];
    int send_length;   /* Content-Length on the blob */
    int blob_requests; /* GETs of the blob so far */
} reg = {.lock = PTHREAD_MUTEX_INITIALIZER, .listen_fd = -1};

static void send_all(int fd, const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);
        if (n <= 0)
            return; /* the client gave up: that is what refusing is */
        buf += n;
        len -= (size_t)n;
    }
}

static void serve_manifest(int fd, const char *tag)
{
    char size[64] = "", body[1024], head[256];
    if (strcmp(tag, "exact") == 0)
        snprintf(size, sizeof(size), ",\"size\":%zu", reg.blob_len);
    else if (strcmp(tag, "short") == 0)
        snprintf(size, sizeof(size), ",\"size\":%zu", reg.blob_len - 1);
    else if (strcmp(tag, "huge") == 0)
        snprintf(size, sizeof(size), ",\"size\":%llu", 1ull << 40);
    int n = snprintf(body, sizeof(body),
                     "{\"schemaVersion\":2,\"mediaType\":\"application/"
                     "vnd.oci.image.manifest.v1+json\",\"config\":{"
                     "\"mediaType\":\"application/"
                     "vnd.oci.image.config.v1+json\",\"digest\":\"%s\","
                     "\"size\":2},\"layers\":[{\"mediaType\":\"application/"
                     "vnd.oci.image.layer.v1.tar\",\"digest\":\"%s\"%s}]}",
                     reg.digest, reg.digest, size);
    int h = snprintf(head, sizeof(head),
                     "HTTP/1.1 200 OK\r\nContent-Type: application/"
                     "vnd.oci.image.manifest.v1+json\r\nContent-Length: "
                     "%d\r\nConnection: close\r\n\r\n",
                     n);
    send_all(fd, head, (size_t)h);
    send_all(fd, body, (size_t)n);
}

static void serve_blob(int fd)
{
    char head[256];
    int h = snprintf(head, sizeof(head),
                     "HTTP/1.1 200 OK\r\nContent-Type: "
                     "application/octet-stream\r\nConnection: close\r\n");
    if (reg.send_length)
        h += snprintf(head + h, sizeof(head) - (size_t)h,
                      "Content-Length: %zu\r\n", reg.blob_len);
    h += snprintf(head + h, sizeof(head) - (size_t)h, "\r\n");
    reg.blob_requests++;
    send_all(fd, head, (size_t)h);
    send_all(fd, reg.blob, reg.blob_len);
}

static void *serve(void *arg)
{
    (void)arg;
    for (;;) {
        int fd = accept(reg.listen_fd, NULL, NULL);
        if (fd < 0)
            return NULL; /* closed by the group teardown */
        char req[4096];
        size_t len = 0;
        while (len < sizeof(req) - 1 && !memmem(req, len, "\r\n\r\n", 4)) {
            ssize_t n = recv(fd, req + len, sizeof(req) - 1 - len, 0);
            if (n <= 0)
                break;
            len += (size_t)n;
        }
        req[len] = '\0';
        char path[1024] = "";
        sscanf(req, "GET %1023s", path);
        pthread_mutex_lock(&reg.lock);
        if (strncmp(path, "/v2/t/img/manifests/", 20) == 0) {
            serve_manifest(fd, path + 20);
        } else if (strncmp(path, "/v2/t/img/blobs/", 16) == 0 &&
                   strcmp(path + 16, reg.digest) == 0) {
            serve_blob(fd);
        } else {
            static const char nf[] = "HTTP/1.1 404 Not Found\r\n"
                                     "Content-Length: 0\r\n"
                                     "Connection: close\r\n\r\n";
            send_all(fd, nf, sizeof(nf) - 1);
        }
        pthread_mutex_unlock(&reg.lock);
        close(fd);
    }
}

static char last_cache[300];

/* Pulls tag `tag` into a fresh tree, with a fresh blob cache and the cap
 * `max_blob`; returns the error and leaves the messages in *msg. */
static int pull(const char *tag, uint64_t max_blob, int send_length,
                const char **msg, struct tree *t)
{
    static int pulls;
    char ref[128], auth[300];
    snprintf(last_cache, sizeof(last_cache), "%s/cache%d", tmpdir, ++pulls);
    setenv("RUNVM_CACHE", last_cache, 1);
    snprintf(auth, sizeof(auth), "%s", write_file("auth.json", "{}", 2));
    snprintf(ref, sizeof(ref), "127.0.0.1:%d/t/img:%s", reg.port, tag);
    pthread_mutex_lock(&reg.lock);
    reg.send_length = send_length;
    reg.blob_requests = 0;
    pthread_mutex_unlock(&reg.lock);
    struct image_opts o = {.platform = "linux/amd64", .max_blob = max_blob};
    assert_int_equal(tree_init(t, NULL), 0);
    capture_begin();
    int err = registry_apply(t, ref, &o, auth);
    *msg = capture_end();
    return err;
}

static int blob_requests(void)
{
    pthread_mutex_lock(&reg.lock);
    int n = reg.blob_requests;
    pthread_mutex_unlock(&reg.lock);
    return n;
}

/* Nothing of a refused blob stays in the last pull's cache. */
static void assert_cache_empty(void)
{
    char dir[400];
    snprintf(dir, sizeof(dir), "%s/blobs/sha256", last_cache);
    DIR *d = opendir(dir);
    assert_non_null(d);
    for (struct dirent *e; (e = readdir(d));)
        if (e->d_name[0] != '.')
            fail_msg("left in the cache: %s", e->d_name);
    closedir(d);
}

static void test_pull_within_caps(void **state)
{
    (void)state;
    struct tree t;
    const char *msg;
    /* The declared size exactly, with or without Content-Length; a cap
     * of exactly the blob's size is enough, declared or not. */
    assert_int_equal(pull("exact", 0, 1, &msg, &t), 0);
    assert_non_null(tree_lookup(&t, "file0"));
    tree_free(&t);
    assert_int_equal(pull("exact", reg.blob_len, 0, &msg, &t), 0);
    assert_non_null(tree_lookup(&t, "file0"));
    tree_free(&t);
    assert_int_equal(pull("nosize", reg.blob_len, 0, &msg, &t), 0);
    assert_non_null(tree_lookup(&t, "file0"));
    tree_free(&t);
}

static void test_pull_more_than_declared(void **state)
{
    (void)state;
    struct tree t;
    const char *msg;
    char want[256];
    snprintf(want, sizeof(want),
             "blob %s: the registry sent more than the %zu bytes its "
             "descriptor declares — refused",
             reg.digest, reg.blob_len - 1);
    /* Streamed without a length: stopped at the declared size. */
    assert_int_equal(pull("short", 0, 0, &msg, &t), -EFBIG);
    assert_mentions(msg, want);
    assert_cache_empty();
    assert_null(tree_lookup(&t, "file0"));
    tree_free(&t);
    /* With a Content-Length past it: refused before the body. */
    assert_int_equal(pull("short", 0, 1, &msg, &t), -EFBIG);
    assert_mentions(msg, want);
    assert_cache_empty();
    tree_free(&t);
}

static void test_pull_past_cap(void **state)
{
    (void)state;
    struct tree t;
    const char *msg;
    /* No size declared: the cap alone stops the download. */
    assert_int_equal(pull("nosize", 50000, 0, &msg, &t), -EFBIG);
    assert_mentions(msg, "more than 48.8 KiB, the cap per blob (raise it "
                         "with --max-blob-size or "
                         "RUNVM_BUILDER_MAX_BLOB_SIZE)");
    assert_cache_empty();
    tree_free(&t);
    /* A declared size past the cap: refused before any download. */
    assert_int_equal(pull("huge", 4ull << 30, 1, &msg, &t), -EFBIG);
    assert_mentions(msg, "layer 1: 1 TiB, over the cap of 4 GiB per blob "
                         "(raise it with --max-blob-size");
    assert_int_equal(blob_requests(), 0);
    tree_free(&t);
    /* A declared size within the cap, a blob past the cap. */
    assert_int_equal(pull("exact", reg.blob_len - 1, 0, &msg, &t), -EFBIG);
    assert_mentions(msg, "over the cap");
    assert_int_equal(blob_requests(), 0);
    tree_free(&t);
}

/* ---- an OCI layout -------------------------------------------------------*/

/* Writes an OCI layout holding the test blob with a manifest declaring
 * `declared` bytes for it; returns its directory. */
static const char *make_layout(const char *name, size_t declared)
{
    static char dir[300];
    char path[500], body[1024], mdigest[DIGEST_STR_LEN + 1];
    snprintf(dir, sizeof(dir), "%s/%s", tmpdir, name);
    snprintf(path, sizeof(path), "%s/blobs/sha256", dir);
    char cmd[600];
    snprintf(cmd, sizeof(cmd), "mkdir -p '%s'", path);
    assert_int_equal(system(cmd), 0);
    int n = snprintf(body, sizeof(body),
                     "{\"schemaVersion\":2,\"mediaType\":\"application/"
                     "vnd.oci.image.manifest.v1+json\",\"config\":{"
                     "\"mediaType\":\"application/"
                     "vnd.oci.image.config.v1+json\",\"digest\":\"%s\","
                     "\"size\":2},\"layers\":[{\"mediaType\":\"application/"
                     "vnd.oci.image.layer.v1.tar\",\"digest\":\"%s\","
                     "\"size\":%zu}]}",
                     reg.digest, reg.digest, declared);
    digest_buffer(body, (size_t)n, mdigest);
    char rel[400];
    snprintf(rel, sizeof(rel), "%s/blobs/sha256/%s", name, reg.digest + 7);
    write_file(rel, reg.blob, reg.blob_len);
    snprintf(rel, sizeof(rel), "%s/blobs/sha256/%s", name, mdigest + 7);
    write_file(rel, body, (size_t)n);
    n = snprintf(body, sizeof(body),
                 "{\"schemaVersion\":2,\"manifests\":[{\"mediaType\":"
                 "\"application/vnd.oci.image.manifest.v1+json\","
                 "\"digest\":\"%s\",\"size\":%d}]}",
                 mdigest, n);
    snprintf(rel, sizeof(rel), "%s/index.json", name);
    write_file(rel, body, (size_t)n);
    return dir;
}

static void test_layout_sizes(void **state)
{
    (void)state;
    struct tree t;
    struct image_opts o = {.platform = "linux/amd64"};
    assert_int_equal(tree_init(&t, NULL), 0);
    assert_int_equal(
        image_apply_oci_layout(&t, make_layout("good", reg.blob_len), &o), 0);
    assert_non_null(tree_lookup(&t, "file0"));
    tree_free(&t);
    /* A blob of another size than declared, though its digest is right. */
    assert_int_equal(tree_init(&t, NULL), 0);
    capture_begin();
    int err =
        image_apply_oci_layout(&t, make_layout("short", reg.blob_len - 1), &o);
    const char *msg = capture_end();
    assert_int_equal(err, -EBADMSG);
    assert_mentions(msg, "its descriptor declares");
    tree_free(&t);
    /* Past the cap. */
    o.max_blob = 1024;
    assert_int_equal(tree_init(&t, NULL), 0);
    capture_begin();
    err = image_apply_oci_layout(&t, make_layout("capped", reg.blob_len), &o);
    msg = capture_end();
    assert_int_equal(err, -EFBIG);
    assert_mentions(msg, "over the cap of 1 KiB per blob");
    tree_free(&t);
}

/* ---- decompressors ------------------------------------------------------*/

/* A layer of tar.EXT written through libarchive's own filter. */
static void make_compressed(const char *name, int (*filter)(struct archive *))
{
    static char tar[64 << 10];
    size_t len = make_tar(tar, sizeof(tar), 1, 100);
    struct archive *a = archive_write_new();
    char path[400];
    snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
    archive_write_set_format_raw(a);
    assert_int_equal(filter(a), ARCHIVE_OK);
    assert_int_equal(archive_write_open_filename(a, path), ARCHIVE_OK);
    struct archive_entry *e = archive_entry_new();
    archive_entry_set_filetype(e, AE_IFREG);
    assert_int_equal(archive_write_header(a, e), ARCHIVE_OK);
    assert_int_equal(archive_write_data(a, tar, len), (la_ssize_t)len);
    archive_entry_free(e);
    assert_int_equal(archive_write_close(a), ARCHIVE_OK);
    archive_write_free(a);
}

static void test_decompressor_programs_refused(void **state)
{
    (void)state;
    /* The compressions a layer may have, each decompressed in-process. */
    static const struct {
        const char *file;
        int (*filter)(struct archive *);
    } builtin[] = {
        {"l.tar.gz", archive_write_add_filter_gzip},
        {"l.tar.zst", archive_write_add_filter_zstd},
        {"l.tar.xz", archive_write_add_filter_xz},
        {"l.tar.lzma", archive_write_add_filter_lzma},
        {"l.tar.bz2", archive_write_add_filter_bzip2},
    };
    /* Headers of compressions libarchive only knows how to hand to a
     * program ("lrzip -d -q", "lzop -d", "grzip -d"). */
    static const struct {
        const char *file, *magic;
        size_t len;
        const char *name;
    } program[] = {
        {"l.tar.lrz", "LRZI\x00\x06", 6, "lrzip"},
        {"l.tar.lzo", "\x89LZO\x00\r\n\x1a\n\x10\x30", 11, "lzop"},
        {"l.tar.grz", "GRZipII\x00\x02\x04:)", 12, "grzip"},
    };
    for (size_t i = 0; i < sizeof(builtin) / sizeof(builtin[0]); i++)
        make_compressed(builtin[i].file, builtin[i].filter);
    for (size_t i = 0; i < sizeof(program) / sizeof(program[0]); i++) {
        char head[512] = "";
        memcpy(head, program[i].magic, program[i].len);
        write_file(program[i].file, head, sizeof(head));
    }
    /* Every decompressor program there is, first on PATH, leaves a mark
     * when it runs. */
    static const char *const names[] = {"lrzip", "lzop",  "grzip",   "lz4",
                                        "lzip",  "gzip",  "zstd",    "xz",
                                        "lzma",  "bzip2", "compress"};
    char bin[300], ran[300], script[700], *path = getenv("PATH");
    char *saved_path = strdup(path ? path : "/usr/bin:/bin");
    snprintf(bin, sizeof(bin), "%s/bin", tmpdir);
    snprintf(ran, sizeof(ran), "%s/ran", tmpdir);
    assert_int_equal(mkdir(bin, 0755), 0);
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        char rel[64];
        snprintf(script, sizeof(script),
                 "#!/bin/sh\necho \"$0 $*\" >>'%s'\ncat >/dev/null\nexit 1\n",
                 ran);
        snprintf(rel, sizeof(rel), "bin/%s", names[i]);
        assert_int_equal(chmod(write_file(rel, script, strlen(script)), 0755),
                         0);
    }
    /* Nothing asserted until PATH is back: a failure must not leave the
     * rest of the run without one. */
    int builtin_err[sizeof(builtin) / sizeof(builtin[0])];
    int program_err[sizeof(program) / sizeof(program[0])];
    char program_msg[sizeof(program) / sizeof(program[0])][1024];
    setenv("PATH", bin, 1);
    for (size_t i = 0; i < sizeof(builtin) / sizeof(builtin[0]); i++) {
        struct tree t;
        char p[400];
        snprintf(p, sizeof(p), "%s/%s", tmpdir, builtin[i].file);
        builtin_err[i] = tree_init(&t, NULL);
        if (!builtin_err[i])
            builtin_err[i] = layer_apply_file(&t, p, builtin[i].file);
        if (!builtin_err[i] && !tree_lookup(&t, "file0"))
            builtin_err[i] = -ENOENT;
        tree_free(&t);
    }
    for (size_t i = 0; i < sizeof(program) / sizeof(program[0]); i++) {
        struct tree t;
        char p[400];
        snprintf(p, sizeof(p), "%s/%s", tmpdir, program[i].file);
        program_err[i] = tree_init(&t, NULL);
        capture_begin();
        if (!program_err[i])
            program_err[i] = layer_apply_file(&t, p, "layer 1/1");
        snprintf(program_msg[i], sizeof(program_msg[i]), "%s", capture_end());
        tree_free(&t);
    }
    setenv("PATH", saved_path, 1);
    free(saved_path);

    FILE *f = fopen(ran, "r");
    if (f) {
        char log[512];
        size_t n = fread(log, 1, sizeof(log) - 1, f);
        log[n] = '\0';
        fclose(f);
        fail_msg("a decompressor program ran: %s", log);
    }
    for (size_t i = 0; i < sizeof(builtin) / sizeof(builtin[0]); i++)
        if (builtin_err[i])
            fail_msg("%s: %s", builtin[i].file, strerror(-builtin_err[i]));
    for (size_t i = 0; i < sizeof(program) / sizeof(program[0]); i++) {
        char want[128];
        assert_int_equal(program_err[i], -ENOTSUP);
        snprintf(want, sizeof(want),
                 "layer 1/1: compressed with %s, whose decompressor is an "
                 "external program: refused",
                 program[i].name);
        assert_mentions(program_msg[i], want);
    }
}

static pthread_t server;

static int group_setup(void **state)
{
    (void)state;
    progress_set_quiet(1);
    if (!mkdtemp(tmpdir))
        return -1;
    /* The registry is on loopback: no proxy may stand in between. */
    static const char *const proxies[] = {"http_proxy",  "HTTP_PROXY",
                                          "https_proxy", "HTTPS_PROXY",
                                          "all_proxy",   "ALL_PROXY"};
    for (size_t i = 0; i < sizeof(proxies) / sizeof(proxies[0]); i++)
        unsetenv(proxies[i]);
    static char blob[256 << 10];
    reg.blob_len = make_tar(blob, sizeof(blob), 2, 64 << 10);
    reg.blob = blob;
    digest_buffer(blob, reg.blob_len, reg.digest);
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t salen = sizeof(sa);
    reg.listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (reg.listen_fd < 0 ||
        bind(reg.listen_fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
        listen(reg.listen_fd, 8) < 0 ||
        getsockname(reg.listen_fd, (struct sockaddr *)&sa, &salen) < 0)
        return -1;
    reg.port = ntohs(sa.sin_port);
    return pthread_create(&server, NULL, serve, NULL) == 0 ? 0 : -1;
}

static int group_teardown(void **state)
{
    (void)state;
    /* shutdown() wakes the accept() that close() alone would not. */
    shutdown(reg.listen_fd, SHUT_RDWR);
    pthread_join(server, NULL);
    close(reg.listen_fd);
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tree_byte_cap),
        cmocka_unit_test(test_tree_entry_cap),
        cmocka_unit_test(test_layer_cap_message),
        cmocka_unit_test(test_parse_sizes),
        cmocka_unit_test(test_limits_from_env),
        cmocka_unit_test(test_pull_within_caps),
        cmocka_unit_test(test_pull_more_than_declared),
        cmocka_unit_test(test_pull_past_cap),
        cmocka_unit_test(test_layout_sizes),
        cmocka_unit_test(test_decompressor_programs_refused),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
