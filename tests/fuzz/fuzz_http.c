/* libFuzzer target: api/http.c's request parser on arbitrary bytes. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "api/http.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct http_request req;
    int r = http_parse((const char *)data, size, 1024, &req);
    if (r == 1) {
        /* What the server relies on. */
        if (req.head_len > size || req.content_length > 1024 ||
            req.head_len + req.content_length > size ||
            req.body != (const char *)data + req.head_len ||
            req.path[0] != '/' || strlen(req.method) == 0)
            __builtin_trap();
    }
    return 0;
}
