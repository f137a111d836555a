/* libFuzzer target: snap_decode must refuse or accept any bytes without
 * reading past them (it gets a buffer of exactly their length). What it
 * accepts has every section inside the bytes and encodes again to the
 * same bytes (the encoding is canonical); what it refuses comes with a
 * one-line reason and no sections.
 *
 * Input: one control byte, then the state file. The checksum would stop
 * nearly every mutation at the door, so bit 0 set recomputes the trailing
 * SHA-256 over the mutated bytes first, and mutations reach the checks of
 * each field. Bits 1-7, when not zero, are the caller's room for
 * sections (else SNAP_MAX_SECTIONS). */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "tests/fuzz/check.h"
#include "vmm/snapshot_file.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    unsigned int max = data[0] >> 1 ? data[0] >> 1 : SNAP_MAX_SECTIONS;
    size_t len = size - 1;
    uint8_t *buf = malloc(len ? len : 1);
    check_that(buf != NULL, "malloc");
    if (len)
        memcpy(buf, data + 1, len);
    if ((data[0] & 1) && len >= SNAP_DIGEST_LEN) {
        unsigned int mdlen;
        check_that(EVP_Digest(buf, len - SNAP_DIGEST_LEN,
                              buf + len - SNAP_DIGEST_LEN, &mdlen, EVP_sha256(),
                              NULL) == 1,
                   "reseal");
    }

    static struct snap_section s[SNAP_MAX_SECTIONS];
    struct snap_header h;
    unsigned int n = 12345;
    char err[256] = "";
    int ret = snap_decode(buf, len, &h, s, max, &n, err, sizeof(err));
    if (ret == 0) {
        check_that(n <= max && n <= SNAP_MAX_SECTIONS, "section count");
        for (unsigned int i = 0; i < n; i++) {
            check_that(s[i].data != NULL && s[i].data >= buf &&
                           s[i].data <= buf + len,
                       "section starts inside the buffer");
            check_that(s[i].len <= (size_t)(buf + len - s[i].data),
                       "section ends inside the buffer");
        }
        check_that(memchr(h.machine, '\0', sizeof(h.machine)) != NULL,
                   "machine NUL-terminated");
        struct state_w w;
        state_w_init(&w);
        check_that(snap_encode(&h, s, n, &w) == 0, "accepted file encodes");
        check_that(w.len == len && memcmp(w.buf, buf, len) == 0,
                   "accepted file encodes to the same bytes");
        state_w_free(&w);
    } else {
        check_that(ret == -EBADMSG || ret == -EPROTO || ret == -ENOEXEC,
                   "refusal is -EBADMSG, -EPROTO or -ENOEXEC");
        check_that(n == 0, "no sections from a refused file");
        check_that(err[0] != '\0' && strchr(err, '\n') == NULL,
                   "refusal says why in one line");
    }
    free(buf);
    return 0;
}
