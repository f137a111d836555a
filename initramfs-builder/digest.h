/* Content digests ("sha256:<64 hex>", OCI image-spec descriptor.md). */
#ifndef RUNVM_BUILDER_DIGEST_H
#define RUNVM_BUILDER_DIGEST_H

#include <stddef.h>

#define DIGEST_STR_LEN (7 + 64) /* "sha256:" + hex */

/* True when `d` is a well-formed sha256 digest (the only one supported). */
int digest_valid(const char *d);

/* Writes "sha256:<hex>" of the bytes into out[DIGEST_STR_LEN + 1]. */
void digest_buffer(const void *data, size_t len, char *out);

/* Hashes a file into out[DIGEST_STR_LEN + 1]; returns 0 or -errno. */
int digest_file(const char *path, char *out)
    __attribute__((warn_unused_result));

/* Checks a buffer against `want`; on mismatch prints what/want/got and
 * returns -EBADMSG. */
int digest_check_buffer(const void *data, size_t len, const char *want,
                        const char *what) __attribute__((warn_unused_result));

/* Same for a file. */
int digest_check_file(const char *path, const char *want, const char *what)
    __attribute__((warn_unused_result));

#endif
