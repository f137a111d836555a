#include "vmm/exit.h"

#include <errno.h>
#include <stdint.h>
#include <string.h>

static struct exit_result exit_io(const struct exit_ctx *ctx,
                                  struct kvm_run *run)
{
    struct exit_result res = {EXIT_CONTINUE, NULL, 0};
    uint32_t size = run->io.size, count = run->io.count;
    uint64_t total = (uint64_t)size * count;
    /* KVM places the data inside the shared page; check anyway, since a
     * bad offset here would be a write anywhere. */
    if ((size != 1 && size != 2 && size != 4) || count == 0 ||
        run->io.data_offset > ctx->run_size ||
        total > ctx->run_size - run->io.data_offset) {
        res.action = EXIT_ERROR;
        res.why = "malformed port I/O exit";
        res.detail = run->io.port;
        return res;
    }
    uint8_t *data = (uint8_t *)run + run->io.data_offset;
    for (uint32_t i = 0; i < count; i++, data += size) {
        if (run->io.direction == KVM_EXIT_IO_OUT) {
            (void)bus_write(ctx->pio, run->io.port, data, size);
        } else if (bus_read(ctx->pio, run->io.port, data, size) == -ENOENT) {
            memset(data, EXIT_PIO_UNCLAIMED_BYTE, size);
        }
    }
    return res;
}

static struct exit_result exit_mmio(const struct exit_ctx *ctx,
                                    struct kvm_run *run)
{
    struct exit_result res = {EXIT_CONTINUE, NULL, 0};
    uint32_t len = run->mmio.len;
    if (len == 0 || len > sizeof(run->mmio.data)) {
        res.action = EXIT_ERROR;
        res.why = "malformed MMIO exit";
        res.detail = run->mmio.phys_addr;
        return res;
    }
    /* Unclaimed addresses: writes vanish and reads give 0 (bus_read zeroed
     * the data), as on an empty bus. The guest is not stopped for it. */
    if (run->mmio.is_write)
        (void)bus_write(ctx->mmio, run->mmio.phys_addr, run->mmio.data, len);
    else
        (void)bus_read(ctx->mmio, run->mmio.phys_addr, run->mmio.data, len);
    return res;
}

struct exit_result exit_handle(const struct exit_ctx *ctx, struct kvm_run *run)
{
    struct exit_result res = {EXIT_CONTINUE, NULL, 0};
    switch (run->exit_reason) {
    case KVM_EXIT_IO: return exit_io(ctx, run);
    case KVM_EXIT_MMIO: return exit_mmio(ctx, run);
    case KVM_EXIT_INTR:
        /* A signal kicked the vCPU out (runvm is stopping it). */
        return res;
    case KVM_EXIT_HLT:
        /* Only without an in-kernel LAPIC; a halted CPU is the end. */
        res.action = EXIT_STOP;
        res.why = "guest halted";
        return res;
    case KVM_EXIT_SHUTDOWN:
        /* Triple fault: a PC resets; runvm ends the VM. */
        res.action = EXIT_STOP;
        res.why = "guest triple fault (reset)";
        return res;
    case KVM_EXIT_SYSTEM_EVENT:
        res.action = EXIT_STOP;
        res.detail = run->system_event.type;
        switch (run->system_event.type) {
        case KVM_SYSTEM_EVENT_SHUTDOWN: res.why = "guest shut down"; break;
        case KVM_SYSTEM_EVENT_RESET: res.why = "guest reset"; break;
        case KVM_SYSTEM_EVENT_CRASH: res.why = "guest crashed"; break;
        default: res.why = "guest system event"; break;
        }
        return res;
    case KVM_EXIT_FAIL_ENTRY:
        res.action = EXIT_ERROR;
        res.why = "KVM could not enter the guest (hardware entry failure)";
        res.detail = run->fail_entry.hardware_entry_failure_reason;
        return res;
    case KVM_EXIT_INTERNAL_ERROR:
        res.action = EXIT_ERROR;
        res.why = "KVM internal error (emulation failed)";
        res.detail = run->internal.suberror;
        return res;
    default:
        res.action = EXIT_ERROR;
        res.why = "unexpected KVM exit reason";
        res.detail = run->exit_reason;
        return res;
    }
}
