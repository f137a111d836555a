/* Manifest and index handling (OCI image-spec manifest.md, image-index.md;
 * Docker "Image Manifest V2, Schema 2" and manifest lists), OCI image
 * layouts (image-layout.md) and `docker save` archives. */
#include "initramfs-builder/image.h"

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "initramfs-builder/digest.h"
#include "initramfs-builder/layer.h"
#include "initramfs-builder/limits.h"
#include "initramfs-builder/progress.h"

#define MT_OCI_INDEX    "application/vnd.oci.image.index.v1+json"
#define MT_OCI_MANIFEST "application/vnd.oci.image.manifest.v1+json"
#define MT_DOCKER_LIST                                                         \
    "application/vnd.docker.distribution.manifest.list.v2+json"
#define MT_DOCKER_MANIFEST                                                     \
    "application/vnd.docker.distribution.manifest.v2+json"
/* Manifests and configs are small; a bigger one is an attack or a bug. */
#define MAX_MANIFEST    (4u << 20)
#define MAX_INDEX_DEPTH 4

int image_read_file(const char *path, char **buf, size_t *len, size_t max)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0)
        return -errno;
    if (fstat(fd, &st) < 0 || (uint64_t)st.st_size > max) {
        int err = errno && st.st_size <= (off_t)max ? -errno : -EFBIG;
        close(fd);
        return err;
    }
    char *b = malloc((size_t)st.st_size + 1);
    size_t n = 0;
    if (!b) {
        close(fd);
        return -ENOMEM;
    }
    while (n < (size_t)st.st_size) {
        ssize_t r = read(fd, b + n, (size_t)st.st_size - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        n += (size_t)r;
    }
    close(fd);
    b[n] = '\0';
    *buf = b;
    *len = n;
    return 0;
}

static const char *jstr(json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

static int is_index(const char *mt)
{
    return mt &&
           (strcmp(mt, MT_OCI_INDEX) == 0 || strcmp(mt, MT_DOCKER_LIST) == 0);
}

static int is_manifest(const char *mt)
{
    return mt && (strcmp(mt, MT_OCI_MANIFEST) == 0 ||
                  strcmp(mt, MT_DOCKER_MANIFEST) == 0);
}

static int layer_type_ok(const char *mt)
{
    if (!mt)
        return 0;
    if (strstr(mt, "foreign") || strstr(mt, "nondistributable"))
        return 0;
    return strncmp(mt, "application/vnd.oci.image.layer.v1.tar", 38) == 0 ||
           strncmp(mt, "application/vnd.docker.image.rootfs.diff.tar", 44) == 0;
}

/* Splits "os/arch[/variant]". */
static void split_platform(const char *p, char *os, char *arch, char *variant,
                           size_t n)
{
    os[0] = arch[0] = variant[0] = '\0';
    sscanf(p, "%31[^/]/%31[^/]/%31s", os, arch, variant);
    (void)n;
}

static json_t *pick_platform(json_t *manifests, const char *platform,
                             const char *what)
{
    char os[32], arch[32], variant[32];
    split_platform(platform, os, arch, variant, sizeof(os));
    size_t i;
    json_t *m;
    json_array_foreach(manifests, i, m)
    {
        json_t *p = json_object_get(m, "platform");
        const char *mos = jstr(p, "os"), *march = jstr(p, "architecture");
        const char *mvar = jstr(p, "variant");
        if (!mos || !march || strcmp(mos, os) || strcmp(march, arch))
            continue;
        if (variant[0] && (!mvar || strcmp(mvar, variant)))
            continue;
        return m;
    }
    /* Say what there is, so the user can pick a --platform. */
    char avail[1024] = "";
    size_t used = 0;
    json_array_foreach(manifests, i, m)
    {
        json_t *p = json_object_get(m, "platform");
        const char *mos = jstr(p, "os"), *march = jstr(p, "architecture");
        const char *mvar = jstr(p, "variant");
        if (!mos || !march || strcmp(mos, "unknown") == 0)
            continue;
        int w = snprintf(avail + used, sizeof(avail) - used, " %s/%s%s%s", mos,
                         march, mvar ? "/" : "", mvar ? mvar : "");
        if (w < 0 || (size_t)w >= sizeof(avail) - used)
            break;
        used += (size_t)w;
    }
    progress_error("%s: platform %s not in the image index (it has:%s) — "
                   "pass --platform",
                   what, platform, used ? avail : " none");
    return NULL;
}

static int apply_manifest(struct tree *t, const struct image_store *s,
                          json_t *root, const struct image_opts *o,
                          const char *what)
{
    json_t *config = json_object_get(root, "config");
    json_t *layers = json_object_get(root, "layers");
    if (!json_is_object(config) || !json_is_array(layers)) {
        progress_error("%s: manifest without config or layers", what);
        return -EINVAL;
    }
    size_t n = json_array_size(layers), i;
    json_t *l;
    /* Validate every descriptor before pulling anything. */
    json_array_foreach(layers, i, l)
    {
        const char *d = jstr(l, "digest"), *mt = jstr(l, "mediaType");
        if (!d || !digest_valid(d)) {
            progress_error("%s: layer %zu: missing or unsupported digest "
                           "(only sha256)",
                           what, i + 1);
            return -EINVAL;
        }
        if (!layer_type_ok(mt)) {
            progress_error("%s: layer %zu: media type %s is not supported "
                           "(foreign or non-distributable layers cannot be "
                           "pulled)",
                           what, i + 1, mt ? mt : "(none)");
            return -ENOTSUP;
        }
        /* image-spec descriptor.md: "size" is required and a client
         * should not trust content of another size; older manifests may
         * lack it, and then only the cap bounds the download. */
        json_t *sz = json_object_get(l, "size");
        if (sz && (!json_is_integer(sz) || json_integer_value(sz) < 0)) {
            progress_error("%s: layer %zu: size is not a byte count", what,
                           i + 1);
            return -EINVAL;
        }
        if (sz && o->max_blob &&
            (uint64_t)json_integer_value(sz) > o->max_blob) {
            char have[32], cap[32];
            limits_format_size((uint64_t)json_integer_value(sz), have,
                               sizeof(have));
            limits_format_size(o->max_blob, cap, sizeof(cap));
            progress_error("%s: layer %zu: %s, over the cap of %s per blob "
                           "(raise it with " LIMITS_BLOB_HOW ")",
                           what, i + 1, have, cap);
            return -EFBIG;
        }
    }
    json_array_foreach(layers, i, l)
    {
        const char *d = jstr(l, "digest");
        json_t *sz = json_object_get(l, "size");
        char *path = NULL;
        int err = s->get_blob(s->ctx, d,
                              json_is_integer(sz) ? json_integer_value(sz) : -1,
                              &path);
        if (err)
            return err;
        char label[128];
        snprintf(label, sizeof(label), "layer %zu/%zu %.19s", i + 1, n, d);
        err = layer_apply_file(t, path, label);
        free(path);
        if (err)
            return err;
    }
    return 0;
}

static int resolve(struct tree *t, const struct image_store *s, const char *ref,
                   const char *hint_media, const struct image_opts *o,
                   int depth)
{
    char *buf = NULL, *media = NULL;
    size_t len = 0;
    json_error_t jerr;
    json_t *root = NULL;
    int err;
    if (depth > MAX_INDEX_DEPTH) {
        progress_error("%s: image indexes nested too deep", s->name);
        return -ELOOP;
    }
    err = s->get_manifest(s->ctx, ref, &buf, &len, &media);
    if (err)
        return err;
    if (len > MAX_MANIFEST) {
        progress_error("%s: manifest too large (%zu bytes)", s->name, len);
        err = -EFBIG;
        goto out;
    }
    if (strncmp(ref, "sha256:", 7) == 0) {
        err = digest_check_buffer(buf, len, ref, s->name);
        if (err)
            goto out;
    }
    root = json_loadb(buf, len, 0, &jerr);
    if (!json_is_object(root)) {
        progress_error("%s: manifest is not JSON: %s", s->name, jerr.text);
        err = -EINVAL;
        goto out;
    }
    /* The body's mediaType wins; older manifests only have the header. */
    const char *mt = jstr(root, "mediaType");
    if (!mt)
        mt = media && (is_index(media) || is_manifest(media)) ? media
                                                              : hint_media;
    if (!mt && json_is_array(json_object_get(root, "manifests")))
        mt = MT_OCI_INDEX;
    if (!mt && json_is_array(json_object_get(root, "layers")))
        mt = MT_OCI_MANIFEST;
    if (is_index(mt)) {
        json_t *m = pick_platform(json_object_get(root, "manifests"),
                                  o->platform, s->name);
        const char *d = m ? jstr(m, "digest") : NULL;
        if (!m) {
            err = -ENOENT;
        } else if (!d || !digest_valid(d)) {
            progress_error("%s: index entry without a sha256 digest", s->name);
            err = -EINVAL;
        } else {
            progress("pull: %s: platform %s → %.19s", s->name, o->platform, d);
            err = resolve(t, s, d, jstr(m, "mediaType"), o, depth + 1);
        }
    } else if (is_manifest(mt)) {
        err = apply_manifest(t, s, root, o, s->name);
    } else {
        progress_error("%s: unsupported manifest type %s (schema 1 images "
                       "must be re-pushed with a current client)",
                       s->name, mt ? mt : "(none)");
        err = -ENOTSUP;
    }
out:
    json_decref(root);
    free(buf);
    free(media);
    return err;
}

int image_apply(struct tree *t, const struct image_store *store,
                const char *ref, const struct image_opts *o)
{
    return resolve(t, store, ref, NULL, o, 0);
}

/* ---- OCI image layout ---------------------------------------------------*/

struct layout {
    const char *dir;
    uint64_t max_blob; /* 0: no cap */
};

static int blob_path(const struct layout *l, const char *digest, char **out)
{
    if (!digest_valid(digest))
        return -EINVAL;
    if (asprintf(out, "%s/blobs/sha256/%s", l->dir, digest + 7) < 0)
        return -ENOMEM;
    return 0;
}

static int layout_get_manifest(void *ctx, const char *ref, char **buf,
                               size_t *len, char **media)
{
    char *path;
    int err = blob_path(ctx, ref, &path);
    *media = NULL;
    if (err)
        return err;
    err = image_read_file(path, buf, len, MAX_MANIFEST);
    if (err)
        progress_error("%s: %s", path, strerror(-err));
    free(path);
    return err;
}

/* A blob of the size its descriptor declares and within the cap; checked
 * before hashing, so that a huge file costs nothing. */
static int layout_check_size(const struct layout *l, const char *path,
                             int64_t size)
{
    struct stat st;
    char have[32], cap[32];
    if (stat(path, &st) < 0) {
        progress_error("%s: %s", path, strerror(errno));
        return -errno;
    }
    if (size >= 0 && st.st_size != size) {
        progress_error("%s: %lld bytes, its descriptor declares %lld", path,
                       (long long)st.st_size, (long long)size);
        return -EBADMSG;
    }
    if (l->max_blob && (uint64_t)st.st_size > l->max_blob) {
        limits_format_size((uint64_t)st.st_size, have, sizeof(have));
        limits_format_size(l->max_blob, cap, sizeof(cap));
        progress_error("%s: %s, over the cap of %s per blob (raise it "
                       "with " LIMITS_BLOB_HOW ")",
                       path, have, cap);
        return -EFBIG;
    }
    return 0;
}

static int layout_get_blob(void *ctx, const char *digest, int64_t size,
                           char **path)
{
    int err = blob_path(ctx, digest, path);
    if (!err)
        err = layout_check_size(ctx, *path, size);
    if (!err)
        err = digest_check_file(*path, digest, *path);
    if (err) {
        free(*path);
        *path = NULL;
    }
    return err;
}

int image_apply_oci_layout(struct tree *t, const char *spec,
                           const struct image_opts *o)
{
    /* "DIR[:TAG]": a colon after the last '/' starts the tag. */
    char *dir = strdup(spec), *tag = NULL, *buf = NULL, *path = NULL;
    json_t *index = NULL;
    size_t len;
    int err;
    if (!dir)
        return -ENOMEM;
    char *colon = strrchr(dir, ':');
    if (colon && !strchr(colon, '/')) {
        *colon = '\0';
        tag = colon + 1;
    }
    if (asprintf(&path, "%s/index.json", dir) < 0) {
        free(dir);
        return -ENOMEM;
    }
    err = image_read_file(path, &buf, &len, MAX_MANIFEST);
    if (err) {
        progress_error("%s: %s — is %s an OCI image layout?", path,
                       strerror(-err), dir);
        goto out;
    }
    json_error_t jerr;
    index = json_loadb(buf, len, 0, &jerr);
    json_t *ms = json_object_get(index, "manifests");
    if (!json_is_array(ms)) {
        progress_error("%s: not an OCI index: %s", path, jerr.text);
        err = -EINVAL;
        goto out;
    }
    json_t *pick = NULL, *m;
    size_t i;
    json_array_foreach(ms, i, m)
    {
        const char *name = jstr(json_object_get(m, "annotations"),
                                "org.opencontainers.image.ref.name");
        if (tag ? name && strcmp(name, tag) == 0 : json_array_size(ms) == 1)
            pick = m;
    }
    if (!pick && !tag) {
        /* Several manifests and no tag: treat index.json as an index. */
        pick = pick_platform(ms, o->platform, spec);
        if (!pick) {
            err = -ENOENT;
            goto out;
        }
    }
    if (!pick) {
        progress_error("%s: no manifest tagged \"%s\" in %s", spec, tag, path);
        err = -ENOENT;
        goto out;
    }
    const char *d = jstr(pick, "digest");
    if (!d || !digest_valid(d)) {
        progress_error("%s: manifest descriptor without a sha256 digest", path);
        err = -EINVAL;
        goto out;
    }
    struct layout l = {dir, o->max_blob};
    struct image_store s = {layout_get_manifest, layout_get_blob, &l, spec};
    progress("pull: oci:%s: manifest %.19s", spec, d);
    err = resolve(t, &s, d, jstr(pick, "mediaType"), o, 0);
out:
    json_decref(index);
    free(buf);
    free(path);
    free(dir);
    return err;
}

/* ---- docker save archives --------------------------------------------- */

/* A layer inside the outer tar is read as a nested archive: the inner
 * reader's callback pulls bytes from the outer one, so nothing is
 * extracted to disk. */
static la_ssize_t outer_read(struct archive *inner, void *opaque,
                             const void **buf)
{
    static char block[1 << 16];
    (void)inner;
    la_ssize_t n = archive_read_data(opaque, block, sizeof(block));
    *buf = block;
    return n;
}

static struct archive *open_outer(const char *file)
{
    struct archive *a = archive_read_new();
    if (!a)
        return NULL;
    int err = layer_support_filters(a);
    if (err) {
        progress_error("%s: setting up the decompressors: %s", file,
                       strerror(-err));
        archive_read_free(a);
        return NULL;
    }
    archive_read_support_format_tar(a);
    if (archive_read_open_filename(a, file, 1 << 16) != ARCHIVE_OK) {
        progress_error("%s: %s", file, archive_error_string(a));
        archive_read_free(a);
        return NULL;
    }
    return a;
}

/* Positions `a` at member `name` and gives its size (-1: unknown);
 * returns 0 or -ENOENT. */
static int seek_member(struct archive *a, const char *name, int64_t *size)
{
    struct archive_entry *e;
    char want[4096], got[4096];
    if (tree_normalize(name, want, sizeof(want)) != 0)
        return -EINVAL;
    while (archive_read_next_header(a, &e) == ARCHIVE_OK) {
        const char *p = archive_entry_pathname(e);
        if (p && tree_normalize(p, got, sizeof(got)) == 0 &&
            strcmp(got, want) == 0) {
            *size = archive_entry_size_is_set(e) ? archive_entry_size(e) : -1;
            return 0;
        }
    }
    return -ENOENT;
}

int image_apply_docker_archive(struct tree *t, const char *file,
                               const struct image_opts *o)
{
    struct archive *a = open_outer(file);
    json_t *root = NULL;
    char *buf = NULL;
    int64_t size;
    int err = 0;
    if (!a)
        return -EIO;
    if (seek_member(a, "manifest.json", &size) != 0) {
        progress_error("%s: no manifest.json — not a `docker save` archive",
                       file);
        archive_read_free(a);
        return -EINVAL;
    }
    buf = malloc(MAX_MANIFEST + 1);
    la_ssize_t n = buf ? archive_read_data(a, buf, MAX_MANIFEST) : -1;
    archive_read_free(a);
    json_error_t jerr;
    root = n >= 0 ? json_loadb(buf, (size_t)n, 0, &jerr) : NULL;
    free(buf);
    json_t *layers = json_object_get(json_array_get(root, 0), "Layers");
    if (!json_is_array(layers)) {
        progress_error("%s: manifest.json has no Layers list", file);
        json_decref(root);
        return -EINVAL;
    }
    size_t i, count = json_array_size(layers);
    json_t *l;
    json_array_foreach(layers, i, l)
    {
        const char *name = json_string_value(l);
        a = name ? open_outer(file) : NULL;
        if (!a || seek_member(a, name, &size) != 0) {
            progress_error("%s: layer %s listed but missing", file,
                           name ? name : "(not a string)");
            err = -ENOENT;
            if (a)
                archive_read_free(a);
            break;
        }
        if (o->max_blob && size > 0 && (uint64_t)size > o->max_blob) {
            char have[32], cap[32];
            limits_format_size((uint64_t)size, have, sizeof(have));
            limits_format_size(o->max_blob, cap, sizeof(cap));
            progress_error("%s: layer %s: %s, over the cap of %s per blob "
                           "(raise it with " LIMITS_BLOB_HOW ")",
                           file, name, have, cap);
            archive_read_free(a);
            err = -EFBIG;
            break;
        }
        struct archive *in = archive_read_new();
        char label[128];
        snprintf(label, sizeof(label), "layer %zu/%zu", i + 1, count);
        tree_next_layer(t);
        err = in ? layer_support_filters(in) : -ENOMEM;
        if (!err)
            archive_read_support_format_tar(in);
        if (err) {
            progress_error("%s: %s: setting up the decompressors: %s", file,
                           name, strerror(-err));
        } else if (archive_read_open(in, a, NULL, outer_read, NULL) !=
                   ARCHIVE_OK) {
            progress_error("%s: %s: %s — is it a tar layer, " LAYER_COMPRESSIONS
                           "? (other compressions are refused)",
                           file, name, archive_error_string(in));
            err = -EIO;
        } else {
            err = layer_apply_archive(t, in, label);
        }
        archive_read_free(in);
        archive_read_free(a);
        if (err)
            break;
    }
    json_decref(root);
    return err;
}
