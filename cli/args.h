/* Command-line helpers shared by runvm's two front ends (cli/main.c for
 * --kernel/--initrd, cli/cli.c for --lang), so that both word their
 * errors the same way and exit with the same status. */
#ifndef RUNVM_ARGS_H
#define RUNVM_ARGS_H

#define ARGS_EXIT_USAGE 2 /* a bad command line, as getopt users do */

/* Parses a decimal number in [min, max]: digits only (no sign, no
 * spaces, no suffix). 0, -EINVAL (not a number) or -ERANGE. */
int args_parse_ul(const char *s, unsigned long min, unsigned long max,
                  unsigned long *out) __attribute__((warn_unused_result));

/* "runvm: MESSAGE (see runvm --help)" on stderr, then exit 2. */
void args_usage_error(const char *fmt, ...)
    __attribute__((format(printf, 1, 2), noreturn));

/* args_parse_ul for the value of an option FLAG, or a usage error that
 * names the flag, the value and the range. */
unsigned long args_number(const char *flag, const char *s, unsigned long min,
                          unsigned long max);

#endif
