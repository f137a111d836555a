/* CRC-32 as zlib computes it (IEEE 802.3, reflected polynomial 0xEDB88320),
 * table-driven, so the static agent needs no zlib. */
#ifndef RUNVM_CRC32_H
#define RUNVM_CRC32_H

#include <stddef.h>
#include <stdint.h>

/* Continues crc over len bytes; start with crc = 0. Same result as zlib's
 * crc32(crc, buf, len). */
uint32_t crc32_update(uint32_t crc, const void *buf, size_t len);

#endif
