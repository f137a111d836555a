#include "devices/i8042.h"

#include <stdint.h>

static void i8042_read(void *opaque, uint64_t offset, uint8_t *data,
                       uint32_t len)
{
    (void)opaque;
    (void)offset;
    (void)len;
    (void)data; /* the bus zeroed it: status 0 = nothing to read, ready */
}

static void i8042_write(void *opaque, uint64_t offset, const uint8_t *data,
                        uint32_t len)
{
    struct i8042 *dev = opaque;
    if (offset == I8042_CMD_OFFSET && len >= 1 &&
        data[0] == I8042_CMD_RESET_CPU && dev->reset)
        dev->reset(dev->opaque);
}

const struct bus_dev_ops i8042_bus_ops = {
    .read = i8042_read,
    .write = i8042_write,
};

/* Layout of the controller's saved state: nothing but this. */
#define I8042_STATE_VERSION 1

int i8042_save(const struct i8042 *dev, struct state_w *w)
{
    (void)dev;
    state_put_u32(w, I8042_STATE_VERSION);
    return w->err;
}

int i8042_restore(struct i8042 *dev, struct state_r *r)
{
    (void)dev;
    if (state_get_u32(r) != I8042_STATE_VERSION)
        state_r_fail(r);
    return state_r_done(r);
}
