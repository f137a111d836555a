/* A guest program's boot-timer mark: one byte written to the boot timer,
 * which runvm records with the time (--boot-timer). On x86 that is port
 * 0x440, reached through ioperm (CONFIG_X86_IOPL_IOPERM); aarch64 has no
 * boot timer yet (arch/aarch64/platform.c), so nothing is marked there. */
#ifndef RUNVM_TESTS_BOOT_MARK_H
#define RUNVM_TESTS_BOOT_MARK_H

#include <errno.h>
#include <stdint.h>

#if defined(__x86_64__)
#include <sys/io.h>

#include "arch/x86_64/layout.h"

/* 0, or the errno that keeps this program from marking (once). */
static inline int boot_mark(uint8_t value)
{
    static int allowed = -1;
    if (allowed < 0)
        allowed = ioperm(LAYOUT_PORT_BOOT_TIMER, 1, 1) == 0 ? 0 : errno;
    if (allowed == 0)
        outb(value, LAYOUT_PORT_BOOT_TIMER);
    return allowed;
}
#else
static inline int boot_mark(uint8_t value)
{
    (void)value;
    return 0;
}
#endif

#endif
