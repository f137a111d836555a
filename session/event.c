#include "session/event.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

int event_stop_status(enum vm_stop stop, int signo, bool guest_end_ok)
{
    switch (stop) {
    case VM_STOP_TIMEOUT: return RUNVM_EXIT_TIMEOUT;
    case VM_STOP_SIGNAL: return signo ? RUNVM_EXIT_SIGNAL_BASE + signo : 0;
    case VM_STOP_GUEST:
    case VM_STOP_PAUSE: /* paused, then ended by runvm: as the guest's end */
        return guest_end_ok ? 0 : RUNVM_EXIT_INFRA;
    default: return RUNVM_EXIT_INFRA;
    }
}

int event_exit_status(const struct msg_exit *e)
{
    if (e->status & MSG_EXIT_TIMED_OUT)
        return RUNVM_EXIT_TIMEOUT;
    if (e->phase == MSG_PHASE_BUILD)
        return RUNVM_EXIT_BUILD_FAILED;
    if (e->signaled)
        return RUNVM_EXIT_SIGNAL_BASE + (int)(e->signal & 0x7f);
    if (e->exited)
        return (int)(e->code & 0xff);
    return RUNVM_EXIT_INFRA;
}

/* Length of the valid UTF-8 sequence at p (RFC 3629), 0 if invalid. */
static size_t utf8_seq(const unsigned char *p, size_t left)
{
    unsigned char c = p[0];
    size_t n;
    uint32_t cp;
    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf) {
        n = 2;
        cp = c & 0x1f;
    } else if (c >= 0xe0 && c <= 0xef) {
        n = 3;
        cp = c & 0x0f;
    } else if (c >= 0xf0 && c <= 0xf4) {
        n = 4;
        cp = c & 0x07;
    } else {
        return 0;
    }
    if (left < n)
        return 0;
    for (size_t i = 1; i < n; i++) {
        if ((p[i] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (p[i] & 0x3f);
    }
    if ((n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) || cp > 0x10ffff ||
        (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return n;
}

bool event_utf8_valid(const unsigned char *p, size_t len)
{
    for (size_t i = 0; i < len;) {
        size_t n = utf8_seq(p + i, len - i);
        if (n == 0)
            return false;
        i += n;
    }
    return true;
}

static void put(struct msg_buf *out, const char *s)
{
    msg_buf_append(out, s, strlen(s));
}

static void putf(struct msg_buf *out, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void putf(struct msg_buf *out, const char *fmt, ...)
{
    char tmp[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    if (n > 0)
        msg_buf_append(out, tmp,
                       (size_t)n < sizeof(tmp) ? (size_t)n : sizeof(tmp) - 1);
}

void event_json_string(struct msg_buf *out, const char *s, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *p = (const unsigned char *)s;
    msg_buf_append(out, "\"", 1);
    size_t run = 0; /* bytes copied as they are, flushed in one append */
    for (size_t i = 0; i < len;) {
        unsigned char c = p[i];
        if (c >= 0x20 && c != '"' && c != '\\' && c < 0x80) {
            run++;
            i++;
            continue;
        }
        size_t n = c >= 0x80 ? utf8_seq(p + i, len - i) : 0;
        if (n > 0) {
            run += n;
            i += n;
            continue;
        }
        msg_buf_append(out, p + i - run, run);
        run = 0;
        char esc[8];
        switch (c) {
        case '"': put(out, "\\\""); break;
        case '\\': put(out, "\\\\"); break;
        case '\n': put(out, "\\n"); break;
        case '\r': put(out, "\\r"); break;
        case '\t': put(out, "\\t"); break;
        default:
            if (c < 0x20) {
                memcpy(esc, "\\u00", 4);
                esc[4] = hex[c >> 4];
                esc[5] = hex[c & 15];
                msg_buf_append(out, esc, 6);
            } else {
                put(out, "\\ufffd"); /* invalid UTF-8 byte */
            }
        }
        i++;
    }
    msg_buf_append(out, p + len - run, run);
    msg_buf_append(out, "\"", 1);
}

static void base64(struct msg_buf *out, const uint8_t *p, size_t len)
{
    static const char tab[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    char q[4];
    for (size_t i = 0; i < len; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16;
        if (i + 1 < len)
            v |= (uint32_t)p[i + 1] << 8;
        if (i + 2 < len)
            v |= p[i + 2];
        q[0] = tab[(v >> 18) & 63];
        q[1] = tab[(v >> 12) & 63];
        q[2] = i + 1 < len ? tab[(v >> 6) & 63] : '=';
        q[3] = i + 2 < len ? tab[v & 63] : '=';
        msg_buf_append(out, q, 4);
    }
}

static const char *phase_name(uint8_t phase)
{
    return phase == MSG_PHASE_BUILD ? "build" : "run";
}

void event_output(struct msg_buf *out, const struct msg_output *o)
{
    putf(out, "{\"type\":\"output\",\"phase\":\"%s\",\"stream\":\"%s\",",
         phase_name(o->phase),
         o->stream == MSG_STREAM_STDERR ? "stderr" : "stdout");
    if (event_utf8_valid(o->data.p, o->data.len)) {
        put(out, "\"data\":");
        event_json_string(out, (const char *)o->data.p, o->data.len);
    } else {
        put(out, "\"data_base64\":\"");
        base64(out, o->data.p, o->data.len);
        put(out, "\"");
    }
    put(out, "}\n");
}

void event_exit(struct msg_buf *out, const struct msg_exit *e)
{
    bool final = e->status & MSG_EXIT_FINAL;
    putf(out, "{\"type\":\"%s\",\"phase\":\"%s\",", final ? "exit" : "step",
         phase_name(e->phase));
    if (e->exited)
        putf(out, "\"exit_code\":%u,", e->code);
    else
        put(out, "\"exit_code\":null,");
    if (e->signaled)
        putf(out, "\"signal\":%u,", e->signal);
    else
        put(out, "\"signal\":null,");
    putf(out,
         "\"wall_ms\":%" PRIu64 ",\"cpu_ms\":%" PRIu64
         ",\"peak_memory_bytes\":%" PRIu64 ",\"timed_out\":%s,"
         "\"output_truncated\":%s,\"oom_killed\":%s",
         e->wall_ms, e->cpu_ms, e->peak_mem,
         e->status & MSG_EXIT_TIMED_OUT ? "true" : "false",
         e->status & MSG_EXIT_OUTPUT_TRUNCATED ? "true" : "false",
         e->status & MSG_EXIT_OOM_KILLED ? "true" : "false");
    if (final)
        putf(out, ",\"status\":%d", event_exit_status(e));
    put(out, "}\n");
}

void event_failure(struct msg_buf *out, int status, const char *message)
{
    putf(out, "{\"type\":\"exit\",\"status\":%d,\"error\":", status);
    event_json_string(out, message, strlen(message));
    put(out, "}\n");
}
