#include "devices/serial.h"

#include <errno.h>
#include <string.h>

/* Register offsets (PC16550D datasheet, "Register Summary"). */
#define UART_RX  0 /* read, DLAB 0: receive buffer */
#define UART_TX  0 /* write, DLAB 0: transmit holding */
#define UART_DLL 0 /* DLAB 1: divisor latch low */
#define UART_IER 1 /* DLAB 0: interrupt enable */
#define UART_DLM 1 /* DLAB 1: divisor latch high */
#define UART_IIR 2 /* read: interrupt identification */
#define UART_FCR 2 /* write: FIFO control */
#define UART_LCR 3
#define UART_MCR 4
#define UART_LSR 5
#define UART_MSR 6
#define UART_SCR 7

#define IER_RDI      0x01 /* receive data available */
#define IER_THRI     0x02 /* transmit holding register empty */
#define IER_MASK     0x0f
#define IIR_NO_INT   0x01
#define IIR_THRI     0x02
#define IIR_RDI      0x04
#define IIR_FIFO     0xc0 /* FIFOs enabled: identifies a 16550A */
#define FCR_ENABLE   0x01
#define FCR_CLEAR_RX 0x02
#define LCR_DLAB     0x80
#define MCR_DTR      0x01
#define MCR_RTS      0x02
#define MCR_OUT1     0x04
#define MCR_OUT2     0x08
#define MCR_LOOP     0x10
#define MCR_MASK     0x1f
#define LSR_DR       0x01
#define LSR_THRE     0x20
#define LSR_TEMT     0x40
#define MSR_CTS      0x10
#define MSR_DSR      0x20
#define MSR_RI       0x40
#define MSR_DCD      0x80
/* Lines a connected terminal asserts. */
#define MSR_DEFAULT (MSR_DCD | MSR_DSR | MSR_CTS)
/* 115200 baud from the 1.8432 MHz clock. */
#define DEFAULT_DIVISOR 1

int serial_init(struct serial *s, const struct serial_callbacks *cb)
{
    memset(s, 0, sizeof(*s));
    int ret = pthread_mutex_init(&s->lock, NULL);
    if (ret)
        return -ret;
    if (cb)
        s->cb = *cb;
    s->lsr = LSR_THRE | LSR_TEMT;
    s->msr = MSR_DEFAULT;
    s->dll = DEFAULT_DIVISOR;
    return 0;
}

void serial_free(struct serial *s)
{
    pthread_mutex_destroy(&s->lock);
}

/* Which interrupt is pending, by 16550 priority (receive above transmit). */
static uint8_t serial_iir(const struct serial *s)
{
    uint8_t fifo = (s->fcr & FCR_ENABLE) ? IIR_FIFO : 0;
    if ((s->ier & IER_RDI) && s->rx_count > 0)
        return IIR_RDI | fifo;
    if ((s->ier & IER_THRI) && s->thr_interrupt)
        return IIR_THRI | fifo;
    return IIR_NO_INT | fifo;
}

/* Drives the line from the pending state; call with the lock held. The
 * callback runs under the lock so levels are delivered in order. OUT2 gates
 * the line on a PC, but Linux's 8250 driver sets it, so it is not
 * modelled. */
static void serial_update_irq(struct serial *s)
{
    int level = !(serial_iir(s) & IIR_NO_INT);
    if (level != s->irq_level) {
        s->irq_level = level;
        if (s->cb.set_irq)
            s->cb.set_irq(s->cb.opaque, level);
    }
}

static void serial_update_lsr(struct serial *s)
{
    if (s->rx_count > 0)
        s->lsr |= LSR_DR;
    else
        s->lsr &= (uint8_t)~LSR_DR;
}

static uint8_t serial_read_reg(struct serial *s, uint64_t offset)
{
    switch (offset) {
    case UART_RX:
        if (s->lcr & LCR_DLAB)
            return s->dll;
        if (s->rx_count == 0)
            return 0;
        {
            uint8_t c = s->rx[s->rx_head];
            s->rx_head = (s->rx_head + 1) % SERIAL_RX_FIFO;
            s->rx_count--;
            serial_update_lsr(s);
            if (s->rx_count == 0 && s->cb.rx_empty)
                s->cb.rx_empty(s->cb.opaque);
            return c;
        }
    case UART_IER: return (s->lcr & LCR_DLAB) ? s->dlm : s->ier;
    case UART_IIR: {
        uint8_t iir = serial_iir(s);
        /* Reading IIR while it reports THRI clears that interrupt. */
        if ((iir & 0x0f) == IIR_THRI)
            s->thr_interrupt = 0;
        return iir;
    }
    case UART_LCR: return s->lcr;
    case UART_MCR: return s->mcr;
    case UART_LSR: return s->lsr;
    case UART_MSR:
        if (s->mcr & MCR_LOOP) {
            /* Loopback: modem outputs feed the inputs (Linux's probe
             * checks that MCR 0x1a reads back as MSR 0x90). */
            uint8_t m = 0;
            if (s->mcr & MCR_DTR)
                m |= MSR_DSR;
            if (s->mcr & MCR_RTS)
                m |= MSR_CTS;
            if (s->mcr & MCR_OUT1)
                m |= MSR_RI;
            if (s->mcr & MCR_OUT2)
                m |= MSR_DCD;
            return m;
        }
        return s->msr;
    case UART_SCR: return s->scr;
    default: return 0;
    }
}

static void serial_rx_push(struct serial *s, uint8_t c)
{
    if (s->rx_count == SERIAL_RX_FIFO)
        return;
    s->rx[(s->rx_head + s->rx_count) % SERIAL_RX_FIFO] = c;
    s->rx_count++;
    serial_update_lsr(s);
}

static void serial_write_reg(struct serial *s, uint64_t offset, uint8_t v)
{
    switch (offset) {
    case UART_TX:
        if (s->lcr & LCR_DLAB) {
            s->dll = v;
            break;
        }
        if (s->mcr & MCR_LOOP)
            serial_rx_push(s, v);
        else if (s->cb.out)
            s->cb.out(s->cb.opaque, &v, 1);
        /* The byte left at once: the holding register is empty again. */
        s->thr_interrupt = 1;
        break;
    case UART_IER:
        if (s->lcr & LCR_DLAB) {
            s->dlm = v;
            break;
        }
        /* Enabling THRI while the register is empty raises it at once,
         * which is how Linux's driver starts a transmission. */
        if ((v & IER_THRI) && !(s->ier & IER_THRI))
            s->thr_interrupt = 1;
        s->ier = v & IER_MASK;
        break;
    case UART_FCR:
        s->fcr = v & FCR_ENABLE;
        if (v & FCR_CLEAR_RX) {
            s->rx_head = s->rx_count = 0;
            serial_update_lsr(s);
        }
        break;
    case UART_LCR: s->lcr = v; break;
    case UART_MCR: s->mcr = v & MCR_MASK; break;
    case UART_SCR: s->scr = v; break;
    default: /* LSR and MSR are read-only */ break;
    }
}

static void serial_bus_read(void *opaque, uint64_t offset, uint8_t *data,
                            uint32_t len)
{
    struct serial *s = opaque;
    pthread_mutex_lock(&s->lock);
    /* Wider accesses read consecutive registers, as on an ISA bus. */
    for (uint32_t i = 0; i < len; i++)
        data[i] =
            offset + i < SERIAL_NR_PORTS ? serial_read_reg(s, offset + i) : 0;
    serial_update_irq(s);
    pthread_mutex_unlock(&s->lock);
}

static void serial_bus_write(void *opaque, uint64_t offset, const uint8_t *data,
                             uint32_t len)
{
    struct serial *s = opaque;
    pthread_mutex_lock(&s->lock);
    for (uint32_t i = 0; i < len; i++)
        if (offset + i < SERIAL_NR_PORTS)
            serial_write_reg(s, offset + i, data[i]);
    serial_update_irq(s);
    pthread_mutex_unlock(&s->lock);
}

const struct bus_dev_ops serial_bus_ops = {
    .read = serial_bus_read,
    .write = serial_bus_write,
};

size_t serial_input(struct serial *s, const uint8_t *data, size_t len)
{
    pthread_mutex_lock(&s->lock);
    size_t n = 0;
    while (n < len && s->rx_count < SERIAL_RX_FIFO)
        serial_rx_push(s, data[n++]);
    serial_update_irq(s);
    pthread_mutex_unlock(&s->lock);
    return n;
}

size_t serial_rx_space(struct serial *s)
{
    pthread_mutex_lock(&s->lock);
    size_t n = SERIAL_RX_FIFO - s->rx_count;
    pthread_mutex_unlock(&s->lock);
    return n;
}

/* ---- snapshots --------------------------------------------------------- */

/* Layout of the UART's saved state. */
#define SERIAL_STATE_VERSION 1

int serial_save(struct serial *s, struct state_w *w)
{
    pthread_mutex_lock(&s->lock);
    state_put_u32(w, SERIAL_STATE_VERSION);
    state_put_u8(w, s->ier);
    state_put_u8(w, s->lcr);
    state_put_u8(w, s->mcr);
    state_put_u8(w, s->lsr);
    state_put_u8(w, s->msr);
    state_put_u8(w, s->scr);
    state_put_u8(w, s->fcr);
    state_put_u8(w, s->dll);
    state_put_u8(w, s->dlm);
    state_put_u8(w, (uint8_t)s->thr_interrupt);
    state_put_u8(w, (uint8_t)s->irq_level);
    /* The FIFO oldest byte first: where it sat in the ring is ours. */
    state_put_u8(w, (uint8_t)s->rx_count);
    for (unsigned int i = 0; i < s->rx_count; i++)
        state_put_u8(w, s->rx[(s->rx_head + i) % SERIAL_RX_FIFO]);
    pthread_mutex_unlock(&s->lock);
    return w->err;
}

int serial_restore(struct serial *s, struct state_r *r)
{
    struct serial n = {0}; /* read and checked here, then taken over */
    if (state_get_u32(r) != SERIAL_STATE_VERSION)
        state_r_fail(r);
    n.ier = state_get_u8(r);
    n.lcr = state_get_u8(r);
    n.mcr = state_get_u8(r);
    n.lsr = state_get_u8(r);
    n.msr = state_get_u8(r);
    n.scr = state_get_u8(r);
    n.fcr = state_get_u8(r);
    n.dll = state_get_u8(r);
    n.dlm = state_get_u8(r);
    n.thr_interrupt = state_get_u8(r);
    n.irq_level = state_get_u8(r);
    n.rx_count = state_get_u8(r);
    if (n.rx_count > SERIAL_RX_FIFO)
        state_r_fail(r);
    else
        state_get_bytes(r, n.rx, n.rx_count);
    /* What the register writes can reach (serial_write_reg masks them);
     * LSR and MSR are the model's own: THRE and TEMT always (a byte
     * leaves at once), DR exactly while the FIFO holds one, the modem
     * lines a connected terminal asserts. The line's level is what the
     * pending interrupt says: it is updated after every access. */
    uint8_t lsr = LSR_THRE | LSR_TEMT | (n.rx_count ? LSR_DR : 0);
    if (state_r_done(r) < 0 || (n.ier & ~IER_MASK) || (n.mcr & ~MCR_MASK) ||
        (n.fcr & ~FCR_ENABLE) || n.lsr != lsr || n.msr != MSR_DEFAULT ||
        n.thr_interrupt > 1 || n.irq_level > 1 ||
        n.irq_level != !(serial_iir(&n) & IIR_NO_INT))
        return -EBADMSG;

    pthread_mutex_lock(&s->lock);
    s->ier = n.ier;
    s->lcr = n.lcr;
    s->mcr = n.mcr;
    s->lsr = n.lsr;
    s->msr = n.msr;
    s->scr = n.scr;
    s->fcr = n.fcr;
    s->dll = n.dll;
    s->dlm = n.dlm;
    s->thr_interrupt = n.thr_interrupt;
    memcpy(s->rx, n.rx, sizeof(s->rx));
    s->rx_head = 0;
    s->rx_count = n.rx_count;
    /* s->irq_level is what the line was told; this tells it the saved
     * level if that differs. On the PC's edge-triggered ISA line that may
     * repeat an edge the guest already saw, which its 8250 driver takes as
     * an interrupt with nothing to do (it reads IIR); it never loses one. */
    serial_update_irq(s);
    pthread_mutex_unlock(&s->lock);
    return 0;
}
