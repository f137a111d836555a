/* Docker Registry HTTP API v2 puller (distribution spec): anonymous bearer
 * tokens from the WWW-Authenticate challenge, basic auth from a docker
 * config.json, blobs cached by digest and verified. */
#ifndef RUNVM_BUILDER_REGISTRY_H
#define RUNVM_BUILDER_REGISTRY_H

#include <stddef.h>

#include "initramfs-builder/image.h"
#include "initramfs-builder/tree.h"

struct registry_ref {
    char host[256];     /* as written, with port: "127.0.0.1:5000" */
    char api_host[256]; /* where to connect: registry-1.docker.io for Hub */
    char repo[512];     /* "library/golang" */
    char ref[128];      /* tag or "sha256:..." */
    int plain_http;     /* loopback registries only */
};

/* Parses "[REGISTRY/]REPO[:TAG|@DIGEST]" the way docker does (first
 * component is a registry when it has a '.' or ':' or is "localhost";
 * Docker Hub's single names get "library/"; the tag defaults to latest).
 * Returns 0 or -EINVAL. */
int registry_parse_ref(const char *s, struct registry_ref *r)
    __attribute__((warn_unused_result));

/* True for localhost, 127.0.0.0/8 and ::1 (with or without a port). */
int registry_host_is_loopback(const char *host);

/* Pulls and applies the image "REF" (no "docker://"). `auth_file` NULL:
 * $REGISTRY_AUTH_FILE, then ~/.docker/config.json when present. */
int registry_apply(struct tree *t, const char *ref, const struct image_opts *o,
                   const char *auth_file) __attribute__((warn_unused_result));

#endif
