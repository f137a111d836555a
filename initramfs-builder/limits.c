/* Caps on what one image may cost the host; see limits.h. */
#include "initramfs-builder/limits.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void limits_default(struct builder_limits *l)
{
    l->max_blob = LIMITS_DEFAULT_MAX_BLOB;
    l->max_unpacked = LIMITS_DEFAULT_MAX_UNPACKED;
    l->max_entries = LIMITS_DEFAULT_MAX_ENTRIES;
}

/* Decimal digits at the start of `s` into *out; returns how many, 0 for
 * none or on overflow. */
static size_t parse_digits(const char *s, uint64_t *out)
{
    uint64_t v = 0;
    size_t n = 0;
    for (; isdigit((unsigned char)s[n]); n++) {
        if (__builtin_mul_overflow(v, 10, &v) ||
            __builtin_add_overflow(v, (uint64_t)(s[n] - '0'), &v))
            return 0;
    }
    *out = v;
    return n;
}

int limits_parse_count(const char *s, uint64_t *out)
{
    uint64_t v;
    size_t n = parse_digits(s, &v);
    if (n == 0 || s[n] != '\0' || v == 0)
        return -EINVAL;
    *out = v;
    return 0;
}

int limits_parse_size(const char *s, uint64_t *out)
{
    static const char units[] = "KMGT";
    uint64_t v;
    size_t n = parse_digits(s, &v);
    if (n == 0 || v == 0)
        return -EINVAL;
    const char *u = s + n;
    if (*u) {
        const char *p = strchr(units, toupper((unsigned char)*u));
        if (!p)
            return -EINVAL;
        u++;
        if (*u != '\0' && strcmp(u, "iB") != 0)
            return -EINVAL;
        unsigned shift = 10 * (unsigned)(p - units + 1);
        if (v > UINT64_MAX >> shift)
            return -EINVAL;
        v <<= shift;
    }
    *out = v;
    return 0;
}

int limits_from_env(struct builder_limits *l, char *why, size_t len)
{
    const struct {
        const char *name;
        int size; /* a size, else a count */
        uint64_t *cap;
    } vars[] = {
        {"RUNVM_BUILDER_MAX_BLOB_SIZE", 1, &l->max_blob},
        {"RUNVM_BUILDER_MAX_UNPACKED_SIZE", 1, &l->max_unpacked},
        {"RUNVM_BUILDER_MAX_ENTRIES", 0, &l->max_entries},
    };
    for (size_t i = 0; i < sizeof(vars) / sizeof(vars[0]); i++) {
        const char *v = getenv(vars[i].name);
        uint64_t parsed;
        if (!v || !*v)
            continue;
        int err = vars[i].size ? limits_parse_size(v, &parsed)
                               : limits_parse_count(v, &parsed);
        if (err) {
            snprintf(why, len, "%s=%s: expected %s", vars[i].name, v,
                     vars[i].size ? "a size such as 512M or 4G"
                                  : "a positive number");
            return err;
        }
        *vars[i].cap = parsed;
    }
    return 0;
}

void limits_format_size(uint64_t bytes, char *buf, size_t len)
{
    static const char *const units[] = {"KiB", "MiB", "GiB",
                                        "TiB", "PiB", "EiB"};
    if (bytes < 1024) {
        snprintf(buf, len, "%llu bytes", (unsigned long long)bytes);
        return;
    }
    size_t u = 0;
    uint64_t whole = bytes >> 10;
    while (whole >= 1024 && u + 1 < sizeof(units) / sizeof(units[0])) {
        whole >>= 10;
        u++;
    }
    uint64_t unit = 1ull << (10 * (u + 1));
    if (bytes % unit == 0)
        snprintf(buf, len, "%llu %s", (unsigned long long)whole, units[u]);
    else
        snprintf(buf, len, "%.1f %s", (double)bytes / (double)unit, units[u]);
}

void limits_tree_cap_text(const struct tree *t, char *buf, size_t len)
{
    char size[32];
    switch (t->cap_hit) {
    case TREE_CAP_BYTES:
        limits_format_size(t->max_bytes, size, sizeof(size));
        snprintf(buf, len,
                 "the image unpacks to more than %s of file contents, "
                 "the cap (raise it with " LIMITS_UNPACKED_HOW ")",
                 size);
        break;
    case TREE_CAP_ENTRIES:
        snprintf(buf, len,
                 "the image has more than %llu entries, the cap (raise "
                 "it with " LIMITS_ENTRIES_HOW ")",
                 (unsigned long long)t->max_entries);
        break;
    default: snprintf(buf, len, "%s", strerror(EDQUOT)); break;
    }
}
