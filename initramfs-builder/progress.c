#include "initramfs-builder/progress.h"

#include <stdarg.h>
#include <stdio.h>

static int quiet;

void progress_set_quiet(int q)
{
    quiet = q;
}

void progress(const char *fmt, ...)
{
    va_list ap;
    if (quiet)
        return;
    va_start(ap, fmt);
    fputs("initramfs-builder: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

void progress_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("initramfs-builder: error: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}
