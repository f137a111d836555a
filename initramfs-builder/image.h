/* Image sources: OCI/Docker manifests and indexes resolved to a platform,
 * layers applied in order. A store (registry, OCI layout) supplies the
 * bytes; this module decides what they mean. */
#ifndef RUNVM_BUILDER_IMAGE_H
#define RUNVM_BUILDER_IMAGE_H

#include <stddef.h>
#include <stdint.h>

#include "initramfs-builder/tree.h"

struct image_store {
    /* Fetches the manifest or index named by a tag or digest; *media gets
     * the media type the store saw (malloc'd, may be NULL). */
    int (*get_manifest)(void *ctx, const char *ref, char **buf, size_t *len,
                        char **media);
    /* Makes a blob available as a local file whose digest was verified;
     * *path is malloc'd. `size` is the descriptor's (-1 when unknown): a
     * blob of another size is refused, and so is one past the store's
     * cap (image_opts.max_blob). */
    int (*get_blob)(void *ctx, const char *digest, int64_t size, char **path);
    void *ctx;
    const char *name; /* the source as the user wrote it, for messages */
};

struct image_opts {
    const char *platform; /* "os/arch[/variant]" */
    uint64_t max_blob;    /* bytes of one blob; 0 for no cap */
};

/* Resolves `ref` (tag or digest) through indexes to one manifest for the
 * platform and applies its layers in order. Returns 0 or -errno (message
 * printed). */
int image_apply(struct tree *t, const struct image_store *store,
                const char *ref, const struct image_opts *o)
    __attribute__((warn_unused_result));

/* Applies "oci:DIR[:TAG]" (an OCI image layout directory). */
int image_apply_oci_layout(struct tree *t, const char *spec,
                           const struct image_opts *o)
    __attribute__((warn_unused_result));

/* Applies "docker-archive:FILE" (the tarball `docker save` writes); a
 * layer past o->max_blob is refused. */
int image_apply_docker_archive(struct tree *t, const char *file,
                               const struct image_opts *o)
    __attribute__((warn_unused_result));

/* Reads a whole (small) file; returns 0 or -errno. */
int image_read_file(const char *path, char **buf, size_t *len, size_t max)
    __attribute__((warn_unused_result));

#endif
