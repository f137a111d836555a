/* Kernel command line builder: space-separated fragments in a fixed
 * buffer, refusing (never truncating) what does not fit. Arch-neutral. */
#ifndef RUNVM_CMDLINE_H
#define RUNVM_CMDLINE_H

#include <stddef.h>

/* Enough for any x86 COMMAND_LINE_SIZE (2048) and arm64's (4096). */
#define CMDLINE_BUF_MAX 4096

struct cmdline {
    char buf[CMDLINE_BUF_MAX]; /* always NUL-terminated */
    size_t len;                /* strlen(buf) */
};

/* Empties the command line. */
void cmdline_init(struct cmdline *cl);

/* Appends fragment (one or more words), separated from what is there by
 * one space. Leading/trailing blanks in fragment are dropped; an empty
 * fragment is a no-op. 0, or -ENOSPC if the result plus its NUL would
 * exceed CMDLINE_BUF_MAX (the line is then left unchanged), or -EINVAL for
 * a control character (a newline would end the kernel's parse). */
int cmdline_append(struct cmdline *cl, const char *fragment)
    __attribute__((warn_unused_result));

/* Like cmdline_append, with printf formatting. */
int cmdline_appendf(struct cmdline *cl, const char *fmt, ...)
    __attribute__((warn_unused_result, format(printf, 2, 3)));

/* 1 if some word of the line is exactly word or starts with word followed
 * by '=' (so "console" matches "console=ttyS0"), else 0. */
int cmdline_has(const struct cmdline *cl, const char *word);

#endif
