/* A fuzz input read front to back as a program of operations. Every read
 * succeeds: past the end it yields zeros (or no bytes), so any input is a
 * valid program and the fuzzer never wastes a run on a framing error of
 * the harness's own. Integers are little-endian. */
#ifndef RUNVM_FUZZ_CURSOR_H
#define RUNVM_FUZZ_CURSOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct cursor {
    const uint8_t *p;
    size_t left;
};

static inline void cursor_init(struct cursor *c, const uint8_t *p, size_t n)
{
    c->p = p;
    c->left = n;
}

static inline bool cursor_empty(const struct cursor *c)
{
    return c->left == 0;
}

static inline uint8_t cursor_u8(struct cursor *c)
{
    if (c->left == 0)
        return 0;
    c->left--;
    return *c->p++;
}

static inline uint16_t cursor_u16(struct cursor *c)
{
    uint16_t lo = cursor_u8(c);
    return (uint16_t)(lo | (uint16_t)cursor_u8(c) << 8);
}

static inline uint32_t cursor_u32(struct cursor *c)
{
    uint32_t lo = cursor_u16(c);
    return lo | (uint32_t)cursor_u16(c) << 16;
}

static inline uint64_t cursor_u64(struct cursor *c)
{
    uint64_t lo = cursor_u32(c);
    return lo | (uint64_t)cursor_u32(c) << 32;
}

/* Takes up to max bytes: *out points at them (inside the input). Returns
 * how many were taken. */
static inline size_t cursor_bytes(struct cursor *c, size_t max,
                                  const uint8_t **out)
{
    size_t n = max < c->left ? max : c->left;
    *out = c->p;
    c->p += n;
    c->left -= n;
    return n;
}

#endif
