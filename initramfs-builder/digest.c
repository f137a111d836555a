#include "initramfs-builder/digest.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "initramfs-builder/progress.h"

int digest_valid(const char *d)
{
    if (strncmp(d, "sha256:", 7) != 0 || strlen(d) != DIGEST_STR_LEN)
        return 0;
    /* Lower-case hex only, as the spec's sha256 encoding requires. */
    return strspn(d + 7, "0123456789abcdef") == 64;
}

static void hex_out(const unsigned char *md, char *out)
{
    memcpy(out, "sha256:", 7);
    for (int i = 0; i < 32; i++)
        sprintf(out + 7 + 2 * i, "%02x", md[i]);
}

void digest_buffer(const void *data, size_t len, char *out)
{
    unsigned char md[32];
    unsigned mdlen = 0;
    EVP_Digest(data, len, md, &mdlen, EVP_sha256(), NULL);
    hex_out(md, out);
}

int digest_file(const char *path, char *out)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    int err = 0;
    if (!ctx || !EVP_DigestInit_ex(ctx, EVP_sha256(), NULL)) {
        err = -ENOMEM;
        goto out;
    }
    static unsigned char buf[1 << 17];
    for (;;) {
        ssize_t n = read(fd, buf, sizeof(buf));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            err = -errno;
            goto out;
        }
        if (n == 0)
            break;
        EVP_DigestUpdate(ctx, buf, (size_t)n);
    }
    unsigned char md[32];
    unsigned mdlen = 0;
    EVP_DigestFinal_ex(ctx, md, &mdlen);
    hex_out(md, out);
out:
    EVP_MD_CTX_free(ctx);
    close(fd);
    return err;
}

int digest_check_buffer(const void *data, size_t len, const char *want,
                        const char *what)
{
    char got[DIGEST_STR_LEN + 1];
    digest_buffer(data, len, got);
    if (strcmp(got, want) == 0)
        return 0;
    progress_error("%s: digest mismatch: expected %s, got %s — the source "
                   "is corrupt or was tampered with",
                   what, want, got);
    return -EBADMSG;
}

int digest_check_file(const char *path, const char *want, const char *what)
{
    char got[DIGEST_STR_LEN + 1];
    int err = digest_file(path, got);
    if (err) {
        progress_error("%s: %s", path, strerror(-err));
        return err;
    }
    if (strcmp(got, want) == 0)
        return 0;
    progress_error("%s: digest mismatch: expected %s, got %s — the source "
                   "is corrupt or was tampered with",
                   what, want, got);
    return -EBADMSG;
}
