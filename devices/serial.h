/* A 16550A UART model (the ttyS0 a Linux guest's 8250 driver expects). It
 * knows nothing of KVM: output bytes and interrupt line changes go through
 * callbacks. Register accesses come from vCPU threads and input from the
 * event loop, so the model locks itself. */
#ifndef RUNVM_SERIAL_H
#define RUNVM_SERIAL_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "core/bus.h"
#include "core/state.h"

#define SERIAL_NR_PORTS 8  /* registers at base+0 .. base+7 */
#define SERIAL_RX_FIFO  64 /* input bytes buffered for the guest */

struct serial_callbacks {
    /* Guest transmitted bytes (may be NULL to discard). */
    void (*out)(void *opaque, const uint8_t *data, size_t len);
    /* Interrupt line level changed to level (0 or 1). */
    void (*set_irq)(void *opaque, int level);
    /* The guest emptied the receive FIFO: more input fits (may be NULL). */
    void (*rx_empty)(void *opaque);
    void *opaque;
};

struct serial {
    pthread_mutex_t lock;
    struct serial_callbacks cb;
    uint8_t ier, lcr, mcr, lsr, msr, scr, fcr;
    uint8_t dll, dlm;
    int thr_interrupt; /* THR empty interrupt pending (cleared by IIR read) */
    int irq_level;     /* last level given to set_irq */
    uint8_t rx[SERIAL_RX_FIFO];
    unsigned int rx_head, rx_count;
};

/* Resets the UART to power-on state with the given callbacks. 0 or -errno. */
int serial_init(struct serial *s, const struct serial_callbacks *cb)
    __attribute__((warn_unused_result));
void serial_free(struct serial *s);

/* Bus handlers for the 8 registers; opaque is the struct serial. */
extern const struct bus_dev_ops serial_bus_ops;

/* Queues host input for the guest; returns how many bytes fit (0 when the
 * receive FIFO is full, so the caller keeps the rest). */
size_t serial_input(struct serial *s, const uint8_t *data, size_t len);

/* Free space in the receive FIFO. */
size_t serial_rx_space(struct serial *s);

/* Appends the UART's state to w for a snapshot (every register, the
 * receive FIFO, the interrupt line). 0 or -ENOMEM. */
int serial_save(struct serial *s, struct state_w *w)
    __attribute__((warn_unused_result));

/* Restores what serial_save wrote, keeping s's callbacks, and drives the
 * interrupt line to the saved level if the line was told otherwise (a
 * fresh UART's is low). 0, or -EBADMSG for bytes no UART could have
 * written (s then unchanged). */
int serial_restore(struct serial *s, struct state_r *r)
    __attribute__((warn_unused_result));

#endif
