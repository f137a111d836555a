/* libFuzzer target for the layer tree: every input is a sequence of layer
 * entries (the part of a hostile image the builder interprets itself;
 * libarchive parses the tar). Each line is "K NAME[\tTARGET]" with K one of
 * d f l h o (dir, file, symlink, hard link, other; upper case: with every
 * permission bit, setuid and setgid included) or '-' (next layer).
 * Afterwards the tree must be whole (tests/fuzz/tree_check.h) and the cpio
 * writer must accept it. */
#include <ctype.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "initramfs-builder/cpio.h"
#include "initramfs-builder/progress.h"
#include "initramfs-builder/tree.h"
#include "tests/fuzz/tree_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static ssize_t data_read(void *opaque, void *buf, size_t len)
{
    const char **p = opaque;
    size_t n = strlen(*p) < len ? strlen(*p) : len;
    memcpy(buf, *p, n);
    *p += n;
    return (ssize_t)n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* tmpfs where there is one: the cpio writer fsyncs (on a disk, 5 ms
     * a run). */
    static const char *dir;
    if (!dir) {
        progress_set_quiet(1);
        dir = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    }
    char *text = malloc(size + 1);
    struct tree t;
    if (!text)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    if (tree_init(&t, dir) != 0) {
        free(text);
        return 0;
    }
    for (char *line = text, *next; line && *line; line = next) {
        next = strchr(line, '\n');
        if (next)
            *next++ = '\0';
        if (line[0] == '-') {
            tree_next_layer(&t);
            continue;
        }
        if (strlen(line) < 3)
            continue;
        char *name = line + 2, *target = strchr(name, '\t');
        if (target)
            *target++ = '\0';
        mode_t perm = isupper((unsigned char)line[0]) ? 07777 : 0755;
        struct tree_input in = {.name = name, .perm = perm, .target = target};
        switch (tolower((unsigned char)line[0])) {
        case 'd': in.kind = TK_DIR; break;
        case 'f': in.kind = TK_FILE; break;
        case 'l': in.kind = TK_SYMLINK; break;
        case 'h': in.kind = TK_HARDLINK; break;
        default: in.kind = TK_OTHER; break;
        }
        const char *payload = target ? target : "";
        if (tree_apply(&t, &in, data_read, &payload) != 0)
            break;
    }
    tree_check(&t);
    struct cpio_stats st;
    char out[64];
    snprintf(out, sizeof(out), "%s/fuzz_tree.%d.cpio", dir, (int)getpid());
    if (cpio_write_tree(&t, out, CPIO_NONE, &st) == 0)
        unlink(out);
    tree_free(&t);
    free(text);
    return 0;
}
