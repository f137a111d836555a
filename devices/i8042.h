/* The part of an i8042 keyboard controller a Linux guest uses to reboot
 * (reboot=k): command 0xFE on port 0x64 pulses the CPU reset line. No
 * keyboard, no mouse. */
#ifndef RUNVM_I8042_H
#define RUNVM_I8042_H

#include "core/bus.h"
#include "core/state.h"

/* Offsets from the data port (0x60): data at 0, command/status at 4. */
#define I8042_DATA_OFFSET   0
#define I8042_CMD_OFFSET    4
#define I8042_NR_PORTS      5
#define I8042_CMD_RESET_CPU 0xfe

struct i8042 {
    /* Called (on a vCPU thread) when the guest asks for a CPU reset. */
    void (*reset)(void *opaque);
    void *opaque;
};

/* Bus handlers for ports 0x60-0x64; opaque is the struct i8042. Reads give
 * 0: an empty output buffer and a ready input buffer. */
extern const struct bus_dev_ops i8042_bus_ops;

/* The controller keeps no state between accesses (reads are constant, the
 * reset command acts at once), so its snapshot is only the version of its
 * layout: one that gains state can still read an old snapshot, or refuse
 * it. 0 or -ENOMEM. */
int i8042_save(const struct i8042 *dev, struct state_w *w)
    __attribute__((warn_unused_result));

/* 0, or -EBADMSG unless r holds exactly what i8042_save wrote. */
int i8042_restore(struct i8042 *dev, struct state_r *r)
    __attribute__((warn_unused_result));

#endif
