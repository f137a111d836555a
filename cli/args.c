#include "cli/args.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

int args_parse_ul(const char *s, unsigned long min, unsigned long max,
                  unsigned long *out)
{
    if (*s < '0' || *s > '9')
        return -EINVAL; /* strtoul would take a sign or spaces */
    char *end;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (*end != '\0')
        return -EINVAL;
    if (errno == ERANGE || v < min || v > max)
        return -ERANGE;
    *out = v;
    return 0;
}

void args_usage_error(const char *fmt, ...)
{
    va_list ap;
    fputs("runvm: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputs(" (see runvm --help)\n", stderr);
    exit(ARGS_EXIT_USAGE);
}

unsigned long args_number(const char *flag, const char *s, unsigned long min,
                          unsigned long max)
{
    unsigned long v = 0;
    int ret = args_parse_ul(s, min, max, &v);
    if (ret == -EINVAL)
        args_usage_error("%s %s: not a number", flag, s);
    if (ret < 0)
        args_usage_error("%s %s: out of range (%lu to %lu)", flag, s, min,
                         max);
    return v;
}
