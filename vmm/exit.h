/* What a vCPU does after KVM_RUN returns: a pure function of the kvm_run
 * structure and the device buses, so fake exits unit-test it. */
#ifndef RUNVM_EXIT_H
#define RUNVM_EXIT_H

#include <stddef.h>

#include <linux/kvm.h>

#include "core/bus.h"

enum exit_action {
    EXIT_CONTINUE = 0, /* handled; run the vCPU again */
    EXIT_STOP,         /* the guest ended: reset, shutdown, triple fault */
    EXIT_ERROR,        /* KVM or the guest failed in a way runvm reports */
};

/* Port I/O read of an address no device claims yields this per byte, like
 * an empty ISA bus... except that 0xff would make Linux wait on phantom
 * RTC "update in progress" bits, so runvm answers 0 as Firecracker does. */
#define EXIT_PIO_UNCLAIMED_BYTE 0x00

struct exit_ctx {
    const struct bus *pio;
    const struct bus *mmio;
    size_t run_size; /* bytes mapped for kvm_run (bounds io.data_offset) */
};

struct exit_result {
    enum exit_action action;
    const char *why; /* static text for EXIT_STOP / EXIT_ERROR, else NULL */
    unsigned long long detail; /* reason code, address or port */
};

/* Handles the exit in run: dispatches I/O to the buses (filling read data
 * in run), and says whether to go on. Never touches memory outside
 * [run, run + ctx->run_size). */
struct exit_result exit_handle(const struct exit_ctx *ctx, struct kvm_run *run);

#endif
