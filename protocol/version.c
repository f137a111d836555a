#include "protocol/version.h"

#include <limits.h>
#include <stdint.h>
#include <string.h>

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* The number at *p (saturating; none is 0), and *p past the part it
 * ends: up to and past the next '.'. */
static unsigned long version_part(const char **p)
{
    unsigned long v = 0;
    for (; is_digit(**p); (*p)++)
        v = v > ULONG_MAX / 10 - 1 ? ULONG_MAX : v * 10 + (unsigned)(**p - '0');
    *p += strcspn(*p, ".");
    *p += **p == '.';
    return v;
}

int version_cmp(const char *a, const char *b)
{
    while (*a || *b) {
        unsigned long x = version_part(&a), y = version_part(&b);
        if (x != y)
            return x < y ? -1 : 1;
    }
    return 0;
}

bool version_valid(const char *s, size_t max)
{
    size_t n = strlen(s);
    if (n == 0 || n > max || !is_digit(s[0]) || !is_digit(s[n - 1]))
        return false;
    for (size_t i = 0; i < n; i++)
        if (!is_digit(s[i]) && !(s[i] == '.' && is_digit(s[i + 1])))
            return false;
    return true;
}

bool lang_spec_parse(const char *s, size_t len, struct lang_spec *out)
{
    memset(out, 0, sizeof(*out));
    if (memchr(s, '\0', len))
        return false;
    const char *at = memchr(s, '@', len);
    size_t n = at ? (size_t)(at - s) : len;
    if (n == 0 || n > LANG_NAME_MAX)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || is_digit(s[i]) || s[i] == '-' ||
              s[i] == '_' || s[i] == '+'))
            return false;
    size_t vn = at ? len - n - 1 : 0;
    if (at && (vn == 0 || vn > LANG_VERSION_MAX))
        return false;
    memcpy(out->name, s, n);
    if (at)
        memcpy(out->version, at + 1, vn);
    if (!at || strcmp(out->version, "*") == 0 ||
        version_valid(out->version, LANG_VERSION_MAX))
        return true;
    memset(out, 0, sizeof(*out));
    return false;
}

bool version_match(const char *want, const char *version)
{
    if (strcmp(want, "*") == 0)
        return version_valid(version, SIZE_MAX);
    if (!version_valid(want, SIZE_MAX))
        return false;
    size_t n = strlen(want);
    return strncmp(want, version, n) == 0 &&
           (version[n] == '\0' || version[n] == '.');
}

bool version_of_toolchain(const char *t, char *out, size_t len)
{
    if (len)
        out[0] = '\0';
    for (const char *p = t; *p; p++) {
        /* A number that starts a word or follows letters ("go1.19"), not
         * one inside another number. */
        if (!is_digit(*p) || (p > t && (is_digit(p[-1]) || p[-1] == '.')))
            continue;
        const char *e = p;
        int dots = 0;
        while (is_digit(*e) || (*e == '.' && is_digit(e[1])))
            dots += *e++ == '.';
        if (dots == 0) {
            p = e - 1;
            continue;
        }
        size_t n = (size_t)(e - p);
        if (n >= len)
            return false;
        memcpy(out, p, n);
        out[n] = '\0';
        return true;
    }
    return false;
}
